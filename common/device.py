"""Process/device setup: the CPU fast path, the MindSpore context and data-parallel init."""
import os

# MindSpore 2.10's oneDNN picks AVX-512 kernels on CPUs that have it, and then runs every
# conv larger than 1x1 on a reference path ~100x slower. Capping the ISA at AVX2 restores
# the fast kernels. It must be in the environment before the first op runs.
CPU_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
CPU_ISA_DEFAULT = "AVX2"


def apply_cpu_fast_path(environ=None):
    """Set the oneDNN ISA cap unless the user already chose a value. Returns the value in force."""
    environ = os.environ if environ is None else environ
    return environ.setdefault(CPU_ISA_ENV, CPU_ISA_DEFAULT)


def rank_info():
    """(rank, group_size) from the launcher's environment, without initialising anything."""
    for rank_key, size_key in (("RANK_ID", "RANK_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                               ("MS_NODE_ID", "MS_WORKER_NUM")):
        if os.environ.get(size_key):
            return int(os.environ.get(rank_key, 0)), int(os.environ[size_key])
    return 0, 1


def init_context(device_target="CPU", mode="GRAPH", distribute=False, device_id=None, seed=None):
    """Set the MindSpore context and, for data parallel, the communication backend.

    Returns (rank, group_size). ``distribute`` uses HCCL on Ascend, NCCL on GPU and the
    MindSpore CPU collective under msrun; gradients are averaged across ranks."""
    import mindspore as ms
    from mindspore.communication import init, get_rank, get_group_size

    apply_cpu_fast_path()
    if seed is not None:
        ms.set_seed(int(seed))
    device_target = str(device_target)
    if device_target not in ("CPU", "GPU", "Ascend"):
        from common.errors import ConfigError
        raise ConfigError(f"config error: device_target must be CPU, GPU or Ascend, not '{device_target}'")
    ms_mode = ms.GRAPH_MODE if str(mode).upper().startswith("GRAPH") else ms.PYNATIVE_MODE
    ms.set_context(mode=ms_mode)
    try:
        ms.set_device(device_target, _device_id(device_id, device_target))
    except (RuntimeError, ValueError) as err:
        if not _already_running_on(ms, err, device_target, device_id):
            from common.errors import ConfigError
            raise ConfigError(f"config error: device_target {device_target} is not available in this MindSpore "
                              f"build ({str(err).strip().splitlines()[0][:160]}); use --device_target CPU") from None
    if not distribute:
        return 0, 1
    init()
    rank, group_size = get_rank(), get_group_size()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL,
                                 gradients_mean=True, device_num=group_size)
    return rank, group_size


def _already_running_on(ms, err, device_target, device_id):
    """MindSpore refuses set_device once a kernel has run, even for the device already in use: a second task in
    one process (export after a forward pass, a library caller) is then on the device it asks for."""
    if "runtime has been initialized" not in str(err) or ms.get_context("device_target") != device_target:
        return False
    return device_target == "CPU" or ms.get_context("device_id") == _device_id(device_id, device_target)


def _device_id(device_id, device_target):
    if device_target == "CPU":
        return None
    # The launchers export DEVICE_ID per rank (mpirun's local rank on GPU): it wins over the config.
    env_id = os.environ.get("DEVICE_ID", "")
    if env_id.strip():
        return int(env_id)
    return int(device_id or 0)
