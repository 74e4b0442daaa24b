"""Map a foreign state_dict (timm / official PyTorch / PaddleClas) onto a MindSpore net, strictly.

The nets keep the source frameworks' dotted names, so one rule covers every family:
BatchNorm's torch ``weight/bias/running_mean/running_var`` become MindSpore's
``gamma/beta/moving_mean/moving_variance``. A PaddleClas state_dict is first read as its torch
equivalent (``common.paddle``: BN statistic names, Linear weights stored ``[in, out]``). A family
renames source keys first with its record's ``weight_maps = {source: fn}`` (``fn(key) -> our
torch-style key or None``) and names the parameters a source may lack in ``checkpoint_optional``
(``common.family``). Strict: every parameter of the net is filled with the right shape and every
source key is used or explicitly ignored, otherwise ``WeightsError`` lists what did not fit.
"""
import numpy as np

from common.errors import WeightsError  # noqa: F401  (importable from here, as before)
from common.family import family_of_net
from common.paddle import paddle_to_torch_state_dict


IGNORED_SOURCE_SUFFIXES = ("num_batches_tracked", "StructuredToParameterName@@")
_BN_RENAMES = {"gamma": ("weight",), "beta": ("bias",),
               "moving_mean": ("running_mean",), "moving_variance": ("running_var",)}


def _is_batchnorm_param(net_param_names, name):
    prefix = name.rsplit(".", 1)[0]
    return f"{prefix}.moving_mean" in net_param_names


def _source_candidates(name, is_bn):
    prefix, leaf = name.rsplit(".", 1) if "." in name else ("", name)
    leaves = _BN_RENAMES[leaf] if is_bn and leaf in _BN_RENAMES else (leaf,)
    return [f"{prefix}.{alt}" if prefix else alt for alt in leaves]


def source_key_map(net, source):
    """The net's family's renaming function for ``source`` (identity when it has none)."""
    record = family_of_net(net)
    return (record.weight_maps if record else {}).get(source, lambda key: key)


def checkpoint_optional(net):
    """Parameters of ``net`` a weights file may lack (kept as configured): its family's, else none."""
    record = family_of_net(net)
    return record.checkpoint_optional if record else ()


def convert_state_dict(state, net, source="torch", skip_prefixes=()):
    """``{our parameter name: array}`` for ``net`` from the foreign ``state``.

    ``skip_prefixes`` names our parameters that may stay unfilled (a re-initialised head)."""
    if source == "paddle":
        try:
            state, _ = paddle_to_torch_state_dict(state)  # now torch-named and torch-laid-out
        except ValueError as err:  # two keys onto one: a user's file, one line
            raise WeightsError(f"weights do not fit this architecture — {err}") from None
    rename = source_key_map(net, source)
    renamed, ignored = {}, []
    for key, value in state.items():
        if key.endswith(IGNORED_SOURCE_SUFFIXES):
            continue
        new_key = rename(key)
        if new_key is None:
            ignored.append(key)
            continue
        value = np.asarray(value)
        renamed[new_key] = (key, value)
    params = {p.name: p for p in net.get_parameters()}
    optional = checkpoint_optional(net)
    out, missing, bad_shape, used = {}, [], [], set()
    for name, param in params.items():
        src = next((c for c in _source_candidates(name, _is_batchnorm_param(params, name)) if c in renamed), None)
        if src is None:
            if not _skipped(name, skip_prefixes) and name not in optional:
                missing.append(name)
            continue
        used.add(src)
        orig_key, value = renamed[src]
        value = _fit_shape(value, tuple(param.shape))
        if value is None:
            if _skipped(name, skip_prefixes):
                continue
            bad_shape.append(f"{name} {tuple(param.shape)} <- {orig_key} {renamed[src][1].shape}")
            continue
        out[name] = value.astype(np.float32) if value.dtype != np.float32 else value
    unused = sorted(renamed[k][0] for k in renamed if k not in used)
    _raise_if_mismatch(missing, bad_shape, unused)
    return out


def _skipped(name, skip_prefixes):
    return bool(skip_prefixes) and name.startswith(tuple(skip_prefixes))


def _fit_shape(value, shape):
    if value.shape == shape:
        return value
    if value.size == int(np.prod(shape)) and value.squeeze().shape == tuple(s for s in shape if s != 1):
        return value.reshape(shape)  # Linear <-> 1x1-conv classifier
    return None


def _raise_if_mismatch(missing, bad_shape, unused):
    problems = []
    for title, items in (("not in the source", missing), ("wrong shape", bad_shape), ("unused source keys", unused)):
        if items:
            shown = ", ".join(items[:8]) + (f" … (+{len(items) - 8})" if len(items) > 8 else "")
            problems.append(f"{len(items)} {title}: {shown}")
    if problems:
        raise WeightsError("weights do not fit this architecture — " + "; ".join(problems))
