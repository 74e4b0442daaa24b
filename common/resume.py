"""Restoring a ``--resume`` training checkpoint into a trainer: weights, optimizer state, EMA, and the
optimizer's step (the lr schedule's index) at this run's resume point (``common.training_state``)."""
from common.errors import WeightsError


def resume_training(train_network, path, epoch, ema=None):
    """Restore weights, optimizer state (momentum, global step, loss scale) and the EMA from a
    training checkpoint. The lr schedule itself is rebuilt from the config (so --epoch_size may grow)."""
    import mindspore as ms
    from common.accumulation import STATE_PREFIXES
    from common.checkpoint import TEACHER_PREFIX
    from common.weights import load_checkpoint_file
    from common.checkpoint import check_finite
    params = {k: v for k, v in load_checkpoint_file(path).items() if k != "learning_rate"}
    check_finite(((k, v.asnumpy()) for k, v in params.items()), path)  # weights and optimizer state alike
    try:
        not_loaded, _ = ms.load_param_into_net(train_network, params, strict_load=True)
    except (ValueError, RuntimeError, TypeError) as err:  # shapes of another model: MindSpore's long text
        raise WeightsError(f"{path} is not a training checkpoint of this model/optimizer: "
                           f"{_first_line(err)}") from None
    # an accumulation buffer a checkpoint lacks (saved without accumulation) is empty at an optimizer step
    # a distillation teacher is never saved: it comes from distill_teacher_ckpt again
    not_loaded = [n for n in not_loaded if "scale_sense" not in n and n != "learning_rate"
                  and not n.startswith(STATE_PREFIXES) and not n.startswith(TEACHER_PREFIX)]
    if not_loaded:
        raise WeightsError(f"{path} is not a training checkpoint of this model/optimizer; "
                           f"missing: {', '.join(not_loaded[:6])}")
    if ema is not None:
        ema.load(params, path)
    print(f"resumed from {path} after epoch {epoch}", flush=True)


def set_optimizer_step(optimizer, point, steps, group_size, rank):
    """Point the optimizer's step (the lr schedule's index) at this run's resume point."""
    import numpy as np
    import mindspore as ms
    from common.training_state import describe_mapping, optimizer_step
    step = optimizer.global_step
    step.set_data(ms.Tensor(np.full(step.shape, optimizer_step(point, steps)), step.dtype))
    line = describe_mapping(point, steps, group_size)
    if line and rank == 0:
        print(line, flush=True)


def _first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.startswith("-")]
    return lines[0][:300] if lines else type(err).__name__
