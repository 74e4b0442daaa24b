"""Weights into a net, and checkpoints out of it safely.

``load_weights(net, path)`` is the one door for a weights file (``create_model(checkpoint_path=...)``,
``common.runtime.build_net``, backbone mode in ``common.features``); ``scripts/convert_weights.py`` takes
the same steps and saves what step 3 matched instead of loading it. Each step is called once, in order:

1. read:   ``common.weights.read_weights``: the file's tensors under its own names (format by content);
2. rename: ``common.convert.to_net_names``: under our parameter names and layouts (the family's maps;
           a MindSpore checkpoint keeps its own);
3. fit:    ``match_weights`` (here): every parameter gets its tensor, or the file is refused in one line
           naming what did not fit; ``load_weights`` then loads it and logs what it left out.

Step 3 also checks the tensors themselves, once for every format: each loaded tensor is finite
(``check_finite``: a NaN/inf file is refused before it is evaluated or trained on), a native
checkpoint's extra tensors are named in a warning, and a file of another architecture is refused
naming the file and the model it was given to. ``--resume`` restores a whole training checkpoint
(``common.resume``) and runs the same finiteness check over it.
"""
import dataclasses
import logging
import os
import time
from dataclasses import field

import numpy as np
import mindspore as ms

from common.convert import to_net_names
from common.errors import WeightsError
from common.family import family_of_net
from common.weights import load_checkpoint_file, read_weights

_logger = logging.getLogger(__name__)
# What the trainer records with a training checkpoint besides epoch_num/step_num (0 when absent:
# checkpoints from before they existed): step_in_epoch > 0 marks a mid-epoch checkpoint.
TRAINING_COUNTERS = ("step_in_epoch", "steps_per_epoch", "device_num", "batch_size", "gradient_accumulation_steps")
# Keys a training checkpoint holds besides the network: optimizer slots and counters.
_TRAINING_STATE_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "global_step", "learning_rate",
                            "beta1_power", "beta2_power", "momentum", "scale_sense", "current_iterator_step",
                            "last_overflow_iterator_step", "epoch_num", "step_num", "ema.",
                            "accumulated_grads.", "accumulation_count", *TRAINING_COUNTERS)


def is_training_state(name):
    """A checkpoint entry that is no network weight: optimizer state, counters, EMA, best.ckpt's metric."""
    return name.startswith(_TRAINING_STATE_PREFIXES) or name == "top_1_accuracy"


def classifier_param_names(net):
    """Full names of the classifier's parameters (empty when the net has no ``get_classifier``)."""
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    return [p.name for p in head.get_parameters()] if head is not None else []


def checkpoint_optional(net):
    """Parameters of ``net`` a weights file may lack (kept as configured): its family's, else none."""
    record = family_of_net(net)
    return record.checkpoint_optional if record else ()


def load_weights(net, path, arch=None, allow_new_head=False, unused=()):
    """Fill every parameter of ``net`` from ``path`` (.ckpt, .safetensors, .pth(.tar), .pdparams).

    With ``allow_new_head`` a classifier of another class count is left re-initialised and the
    skipped keys are logged (finetuning); otherwise any mismatch raises ``WeightsError`` naming it.
    ``unused`` names parameters a backbone does not keep (its head): they may be absent or of any
    shape, and what the file has for them is dropped (logged).
    Returns the list of classifier parameter names left as initialised. A Paddle path given
    without its suffix (``pretrained_model: ./DLA34_pretrained``) finds the ``.pdparams`` file."""
    found = read_weights(path)                                    # 1. the file, read once
    renamed = to_net_names(found.tensors, net, found.fmt)         # 2. our names
    fit = match_weights(net, renamed, found.path, arch, allow_new_head=allow_new_head, unused=unused)  # 3.
    _load(net, fit, found.path)
    return fit.skipped


@dataclasses.dataclass
class Fit:
    """What ``match_weights`` found: the tensors to load, and the parameters it leaves out."""
    weights: dict = field(default_factory=dict)  # our name -> array of the parameter's shape
    skipped: list = field(default_factory=list)  # classifier of another class count: re-initialised
    dropped: list = field(default_factory=list)  # ``unused`` parameters the file has: not loaded
    kept: list = field(default_factory=list)     # checkpoint_optional parameters the file lacks


def match_weights(net, renamed, path="", arch=None, allow_new_head=False, unused=()):
    """Each parameter of ``net`` with its tensor from ``renamed`` (``common.convert.to_net_names``),
    as a ``Fit``; a file that does not fit raises ``WeightsError`` naming what did not (``path`` and
    ``arch`` name the file and the model in it).

    One matcher for every format. A parameter may be left out only when it is ``unused`` (absent or
    of any shape: dropped), ``checkpoint_optional`` and absent (kept as configured), or, with
    ``allow_new_head``, a classifier of another class count (skipped). Where our own checkpoints
    (``renamed.native``) have always been judged differently, they still are:

    * a foreign file may lack the classifier (with ``allow_new_head``); a .ckpt may not;
    * a foreign file's extra tensor is refused (strict conversion); a .ckpt's extra tensors are
      listed only when a parameter does not fit, and its training state never;
    * the refusal's wording (``_refuse_misfit``)."""
    head = set(classifier_param_names(net)) if allow_new_head else set()
    unused, optional = set(unused), set(checkpoint_optional(net))
    params = list(net.get_parameters())
    fit, missing, bad_shape = Fit(), [], []
    for param in params:
        name, shape = param.name, tuple(param.shape)
        value = renamed.arrays.get(name)
        if name in unused:
            if value is not None:
                fit.dropped.append(name)
        elif value is None:
            if name in optional:
                fit.kept.append(name)
            elif name in head and not renamed.native:
                fit.skipped.append(name)
            else:
                missing.append(name)
        elif tuple(value.shape) != shape:
            if name in head:
                fit.skipped.append(name)
            else:
                bad_shape.append((name, tuple(value.shape), shape))
        else:
            fit.weights[name] = value
    names = {p.name for p in params}
    extra = [renamed.source.get(k, k) for k in renamed.arrays if k not in names] + renamed.unmatched
    if renamed.native:  # a training checkpoint's optimizer state and counters are no extra
        extra = [k for k in extra if not k.startswith(_TRAINING_STATE_PREFIXES)]
    if missing or bad_shape or not renamed.native:
        _refuse_misfit(net, renamed, path, arch, missing, bad_shape, extra)
    if extra:  # a native file that fits but has tensors this model does not use: named (another variant's file?)
        _logger.warning("%s has %d tensor(s) %s does not use, not loaded: %s", path, len(extra),
                        f"a {arch} model" if arch else "this model", _shown(extra))
    check_finite(((renamed.source.get(n, n), v) for n, v in fit.weights.items()), path)
    return fit


def check_finite(named_arrays, path):
    """Raise ``WeightsError`` naming ``path`` and the first (name, array) that holds NaN or inf."""
    for name, value in named_arrays:
        value = np.asarray(value)
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise WeightsError(f"{path}: tensor {name} holds NaN/inf ({bad} of {value.size} values): the file is "
                               f"poisoned (saved from a diverged run?); use an earlier checkpoint")


def _refuse_misfit(net, renamed, path, arch, missing, bad_shape, extra):
    """Raise ``WeightsError`` when anything did not fit: a native checkpoint when a parameter is
    missing or misshapen (its extra tensors are then listed too), a foreign file also for an extra
    tensor (strict conversion)."""
    if renamed.native:
        if bad_shape and all(n in classifier_param_names(net) for n, _, _ in bad_shape):
            _, got, want = bad_shape[0]
            raise WeightsError(f"{path} was made for {got[0]} classes but this model has {want[0]} "
                               f"(set num_classes to {got[0]}, or finetune with --pretrained)")
        if missing or bad_shape:
            what = f"a {arch} model" if arch else "this model"
            detail = [f"{len(missing)} missing: {', '.join(missing[:6])}"] if missing else []
            detail += [f"wrong shape: {', '.join(f'{n} {g}!={w}' for n, g, w in bad_shape[:6])}"] if bad_shape else []
            detail += [f"unexpected: {', '.join(extra[:6])}"] if extra else []
            raise WeightsError(f"{path} does not fit {what} — " + "; ".join(detail))
        return
    wrong = [f"{n} {want} <- {renamed.source.get(n, n)} {got}" for n, got, want in bad_shape]
    problems = [f"{len(items)} {title}: {_shown(items)}" for title, items in
                (("not in the source", missing), ("wrong shape", wrong), ("unused source keys", sorted(extra)))
                if items]
    if problems:
        what = f"a {arch} model" if arch else "this architecture"
        raise WeightsError(f"{path} does not fit {what} — " + "; ".join(problems))


def _shown(names, limit=8):
    return ", ".join(names[:limit]) + (f" … (+{len(names) - limit})" if len(names) > limit else "")


def _load(net, fit, path):
    """Load ``fit`` into ``net``, logging what was left out."""
    if fit.skipped:
        _logger.warning("classifier not loaded from %s (class count differs, re-initialised): %s",
                        path, ", ".join(fit.skipped))
    if fit.dropped:
        _logger.warning("%s: %d tensor(s) the backbone does not use, dropped: %s", path, len(fit.dropped),
                        _shown(sorted(fit.dropped)))
    params = {name: ms.Parameter(ms.Tensor(value), name=name) for name, value in fit.weights.items()}
    not_loaded, _ = ms.load_param_into_net(net, params, strict_load=True)
    for name in fit.kept:
        _logger.warning("%s has no %s: kept as configured (%s)", path, name, net.parameters_dict()[name].asnumpy())
    not_loaded = [n for n in not_loaded if n in fit.weights]
    if not_loaded:  # load_param_into_net does not raise when it leaves a parameter out: check its answer
        raise WeightsError(f"{path}: parameters not loaded: {', '.join(not_loaded[:8])}")


# A distillation teacher's parameters (common.distill): frozen, reloaded from its own file each run, never saved.
TEACHER_PREFIX = "distill_teacher."


def _saved(name):
    return not name.startswith(TEACHER_PREFIX)


def save_checkpoint_atomic(save_obj, path, append_dict=None):
    """``ms.save_checkpoint`` via ``write_atomic``: a kill (or power loss) mid-save keeps the
    previous file intact. MindSpore's own save deletes the target before writing, hence the detour.
    A distillation teacher's parameters are left out."""
    write_atomic(path, lambda tmp: ms.save_checkpoint(save_obj, tmp, append_dict=append_dict, choice_func=_saved))


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
