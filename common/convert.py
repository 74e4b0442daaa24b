"""Step 2 of ``common.checkpoint.load_weights``: a weights file's tensors under our parameter names.

Our own checkpoint (.ckpt) is already ours: names and layouts unchanged. A foreign file (timm /
official PyTorch / PaddleClas) is renamed: the nets keep the source frameworks' dotted names, so one
rule covers every family: BatchNorm's torch ``weight/bias/running_mean/running_var`` become
MindSpore's ``gamma/beta/moving_mean/moving_variance``. A PaddleClas state_dict is first read as its
torch equivalent (``common.paddle``: BN statistic names, Linear weights stored ``[in, out]``). A family
renames source keys first with its record's ``weight_maps = {source: fn}`` (``fn(key) -> our
torch-style key or None``, ``common.family``). Foreign tensors are also brought to our layout (a
Linear head into a 1x1-conv one and back) and to float32. Nothing is refused here: what does not fit
is for step 3 (``common.checkpoint.match_weights``) to name.
"""
import dataclasses
from dataclasses import field

import numpy as np

from common.errors import WeightsError
from common.family import family_of_net
from common.paddle import paddle_key_map, paddle_to_torch_state_dict

# Source keys that carry no weight: torch's BatchNorm counter, paddle.save's name table.
IGNORED_SOURCE_SUFFIXES = ("num_batches_tracked", "StructuredToParameterName@@")
_BN_FROM_TORCH = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_NAMING = {"safetensors": "torch"}  # safetensors files are timm's: torch names; the others name their own framework


@dataclasses.dataclass
class Renamed:
    """A weights file's tensors under our names, for ``common.checkpoint.match_weights``."""
    arrays: dict                                    # our name -> numpy array
    native: bool = False                            # a MindSpore checkpoint: its own names, its rules
    source: dict = field(default_factory=dict)      # our name -> the file's key, where they differ
    unmatched: list = field(default_factory=list)   # file keys torch's naming gives no name of ours


def to_net_names(state, net, fmt):
    """``state`` (a file's ``{key: array}``, format ``fmt`` as ``common.weights`` reads it, or the
    naming 'torch' / 'paddle') as a ``Renamed`` for ``net``."""
    if fmt == "mindspore":
        return Renamed(dict(state), native=True)
    if _NAMING.get(fmt, fmt) == "paddle":
        try:  # Paddle's names and layouts as torch's, the family's own Paddle map included
            state, _ = paddle_to_torch_state_dict(state, paddle_key_map(_architecture(net)))
        except ValueError as err:  # two keys onto one: a user's file, one line
            raise WeightsError(f"weights do not fit this architecture — {err}") from None
        family_map = None
    else:
        record = family_of_net(net)
        family_map = record.weight_maps.get("torch") if record else None
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    batchnorms = {name[:-len(".moving_mean")] for name in shapes if name.endswith(".moving_mean")}
    out = Renamed({})
    for key, value in state.items():
        if key.endswith(IGNORED_SOURCE_SUFFIXES):
            continue
        torch_key = family_map(key) if family_map else key
        if torch_key is None:  # the family says: no weight of ours
            continue
        name = _from_torch_name(torch_key, batchnorms)
        if name is None or name in out.arrays:  # not a torch BN name, or a second key onto one name
            out.unmatched.append(key)
            continue
        out.arrays[name] = _our_layout(np.asarray(value), shapes.get(name))
        if name != key:
            out.source[name] = key
    return out


def _architecture(net):
    return (getattr(net, "pretrained_cfg", None) or {}).get("architecture")


def _from_torch_name(key, batchnorms):
    """Our name for a torch-style key: BatchNorm leaves renamed (None for a leaf torch's BatchNorm
    does not have), everything else unchanged."""
    prefix, _, leaf = key.rpartition(".")
    if prefix not in batchnorms:
        return key
    return f"{prefix}.{_BN_FROM_TORCH[leaf]}" if leaf in _BN_FROM_TORCH else None


def _our_layout(value, shape):
    """``value`` as float32, reshaped to ``shape`` when it holds the same numbers in another layout
    (a Linear classifier for a 1x1-conv one); unchanged when it does not fit (step 3 says so)."""
    if shape is None:
        return value
    if value.shape != shape and value.size == int(np.prod(shape)) \
            and value.squeeze().shape == tuple(s for s in shape if s != 1):
        value = value.reshape(shape)
    return value.astype(np.float32) if value.dtype != np.float32 else value
