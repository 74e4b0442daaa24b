"""Load weights of any supported format into a net, strictly, and save checkpoints safely."""
import logging
import os
import time

import numpy as np
import mindspore as ms

from common.convert import WeightsError, checkpoint_optional, convert_state_dict
from common.weights import load_checkpoint_file, naming_of, read_state_dict  # noqa: F401  (importable from here)

_logger = logging.getLogger(__name__)
# What the trainer records with a training checkpoint besides epoch_num/step_num (0 when absent:
# checkpoints from before they existed): step_in_epoch > 0 marks a mid-epoch checkpoint.
TRAINING_COUNTERS = ("step_in_epoch", "steps_per_epoch", "device_num", "batch_size", "gradient_accumulation_steps")
# Keys a training checkpoint holds besides the network: optimizer slots and counters.
_TRAINING_STATE_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "global_step", "learning_rate",
                            "beta1_power", "beta2_power", "momentum", "scale_sense", "current_iterator_step",
                            "last_overflow_iterator_step", "epoch_num", "step_num", "ema.",
                            "accumulated_grads.", "accumulation_count", *TRAINING_COUNTERS)


def classifier_param_names(net):
    """Full names of the classifier's parameters (empty when the net has no ``get_classifier``)."""
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    return [p.name for p in head.get_parameters()] if head is not None else []


def load_weights(net, path, arch=None, allow_new_head=False, unused=()):
    """Fill every parameter of ``net`` from ``path`` (.ckpt, .safetensors, .pth(.tar), .pdparams).

    With ``allow_new_head`` a classifier of another class count is left re-initialised and the
    skipped keys are logged (finetuning); otherwise any mismatch raises ``ValueError`` naming it.
    ``unused`` names parameters a backbone does not keep (its head): they may be absent or of any
    shape, and what the file has for them is dropped (logged).
    Returns the list of parameter names left as initialised. A Paddle path given without its
    suffix (``pretrained_model: ./DLA34_pretrained``) finds the ``.pdparams`` file."""
    if not os.path.exists(path) and os.path.isfile(path + ".pdparams"):
        path += ".pdparams"
    state, fmt = read_state_dict(path)
    unused = set(unused)
    head = classifier_param_names(net) if allow_new_head else []
    if fmt == "mindspore":
        weights, skipped = _match_native(state, net, head, path, arch, unused)
    else:
        source = naming_of(fmt)
        full = convert_state_dict(state, net, source, skip_prefixes=tuple(head) + tuple(unused))
        skipped = [n for n in head if n not in full]
        weights = full
    if skipped:
        _logger.warning("classifier not loaded from %s (class count differs, re-initialised): %s",
                        path, ", ".join(skipped))
    dropped = sorted(n for n in unused if n in weights or n in skipped)
    if dropped:
        _logger.warning("%s: %d tensor(s) the backbone does not use, dropped: %s", path, len(dropped),
                        ", ".join(dropped[:8]) + (f" … (+{len(dropped) - 8})" if len(dropped) > 8 else ""))
    weights = {k: v for k, v in weights.items() if k not in unused}
    skipped = [n for n in skipped if n not in unused]
    params = {name: ms.Parameter(ms.Tensor(value), name=name) for name, value in weights.items()}
    not_loaded, _ = ms.load_param_into_net(net, params, strict_load=True)
    not_loaded = [n for n in not_loaded if n not in unused]
    optional = checkpoint_optional(net)
    for name in [n for n in not_loaded if n in optional]:
        _logger.warning("%s has no %s: kept as configured (%s)", path, name, net.parameters_dict()[name].asnumpy())
    not_loaded = [n for n in not_loaded if n not in skipped and n not in optional]
    if not_loaded:  # load_param_into_net does not raise on missing parameters: check its answer
        raise WeightsError(f"{path}: parameters not loaded: {', '.join(not_loaded[:8])}")
    return skipped


def _match_native(state, net, head, path, arch, unused=()):
    missing, bad_shape, skipped, weights = [], [], [], {}
    optional = checkpoint_optional(net)  # load_weights says which were kept as configured
    for param in net.get_parameters():
        value = state.get(param.name)
        if value is None:
            if param.name not in optional and param.name not in unused:
                missing.append(param.name)
        elif tuple(value.shape) != tuple(param.shape):
            if param.name in head or param.name in unused:
                skipped.append(param.name)
            else:
                bad_shape.append((param.name, tuple(value.shape), tuple(param.shape)))
        else:
            weights[param.name] = value
    if bad_shape and all(n in classifier_param_names(net) for n, _, _ in bad_shape):
        name, got, want = bad_shape[0]
        raise WeightsError(f"{path} was made for {got[0]} classes but this model has {want[0]} "
                         f"(set num_classes to {got[0]}, or finetune with --pretrained)")
    extra = [k for k in state if k not in weights and not k.startswith(_TRAINING_STATE_PREFIXES)
             and k not in {p.name for p in net.get_parameters()}]
    if missing or bad_shape:
        what = f"a {arch} model" if arch else "this model"
        detail = [f"{len(missing)} missing: {', '.join(missing[:6])}"] if missing else []
        detail += [f"wrong shape: {', '.join(f'{n} {g}!={w}' for n, g, w in bad_shape[:6])}"] if bad_shape else []
        detail += [f"unexpected: {', '.join(extra[:6])}"] if extra else []
        raise WeightsError(f"{path} does not fit {what} — " + "; ".join(detail))
    return weights, skipped


def save_checkpoint_atomic(save_obj, path, append_dict=None):
    """``ms.save_checkpoint`` via ``write_atomic``: a kill (or power loss) mid-save keeps the
    previous file intact. MindSpore's own save deletes the target before writing, hence the detour."""
    write_atomic(path, lambda tmp: ms.save_checkpoint(save_obj, tmp, append_dict=append_dict))


# Our temporary files: hidden, ``.<name>.tmp.<suffix>`` (MindSpore adds ``.<name>.tmp.tmp`` of its own).
_TMP_MARK = ".tmp."
_CLEANED = set()  # folders whose stale temporary files this process has removed
_STARTED = time.time()


def temp_path(path):
    """``dir/.name.tmp.ext`` for ``dir/name.ext``: same folder (so the rename is atomic), hidden."""
    directory, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    return os.path.join(directory, f".{stem}{_TMP_MARK}{ext.lstrip('.') or 'out'}")


def remove_stale_temp_files(directory):
    """Delete our temporary files that a killed or failed save left in ``directory`` (once per
    folder and process; only files last written before this process started, so another run's
    save in progress is left alone)."""
    directory = os.path.abspath(directory)
    if directory in _CLEANED or not os.path.isdir(directory):
        return
    _CLEANED.add(directory)
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name.startswith(".") and _TMP_MARK in entry.name \
                and entry.stat().st_mtime < _STARTED:
            _logger.warning("removing %s left by an interrupted save", entry.path)
            os.remove(entry.path)


def write_atomic(path, write):
    """Write ``path`` by ``write(tmp)`` into a hidden temporary file in the same folder, flush it
    to disk, then rename it over ``path``: the final name never holds a partial file, and an
    earlier file of that name survives a failed write. A write that fails for lack of space or
    permission raises ``OutputError`` (one line); the temporary files are removed."""
    from common.errors import OutputError, describe_os_error, find_in_chain
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    remove_stale_temp_files(directory)
    tmp = temp_path(path)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        for leftover in (tmp, os.path.splitext(tmp)[0] + ".tmp"):  # ours and MindSpore's own
            if os.path.isfile(leftover):
                os.remove(leftover)
        os_error = find_in_chain(err, OSError) if isinstance(err, Exception) else None
        if os_error is not None:
            raise OutputError(f"could not write {path}: {describe_os_error(os_error)}; "
                              f"any earlier file of that name is unchanged") from None
        raise
    _fsync(directory)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_training_state(path):
    """Epoch/step counters stored next to the weights by the trainer (0 when absent); the
    ``TRAINING_COUNTERS`` only when the checkpoint has them."""
    state = load_checkpoint_file(path)
    def scalar(key):
        return int(np.asarray(state[key].asnumpy()).reshape(-1)[0]) if key in state else 0
    found = {key: scalar(key) for key in TRAINING_COUNTERS if key in state}
    return {"epoch_num": scalar("epoch_num"), "step_num": scalar("step_num"), **found}
