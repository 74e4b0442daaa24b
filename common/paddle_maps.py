"""PaddleClas parameter names -> the reference (PyTorch) names our models use.

Our DLA uses timm's names and our PeleeNet the official PeleeNet repository's names; the
functions here turn a PaddleClas state_dict key into that torch-style key, after which the
generic torch -> MindSpore rule of ``common.convert`` applies (BatchNorm
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance).

What differs between PaddleClas and the references (checked against
PaddleClas@d178931 ``ppcls/arch/backbone/model_zoo/{dla,peleenet}.py``, timm ``dla.py`` and
Robert-JunWang/PeleeNet ``peleenet.py``):

* Module names: none. PaddleClas's ``dla.py`` is a line-for-line port of timm's ``DLA`` (same
  ``base_layer``/``level0..5``/``tree1``/``tree2``/``root``/``project``/``fc`` attributes, the
  ``project`` shortcut kept only in level-1 trees as timm does, ``fc`` a 1x1 conv with bias).
  PaddleClas's ``peleenet.py`` and flytocc/PeleeNet-paddle ``models.py`` are line-for-line ports
  of the official PeleeNet (``features.stemblock``/``denseblockN.denselayerM``/``transitionN``,
  ``classifier``). Both compute the same function as their reference: same convolutions,
  paddings, pools (max 2x2 stem/downsample, avg 2x2 transitions, global average), concatenation
  orders, residual/root shortcuts and BatchNorm epsilon (1e-5).
* BatchNorm running statistics: Paddle ``<bn>._mean`` / ``<bn>._variance`` for torch
  ``<bn>.running_mean`` / ``<bn>.running_var``; Paddle has no ``num_batches_tracked``.
* Linear layers (only PeleeNet's ``classifier``): Paddle stores the weight as [in, out], torch
  as [out, in]; ``paddle_array_to_torch`` transposes it. DLA's classifier is a conv: no change.
* ``StructuredToParameterName@@``: paddle.save's name table, not a weight (ignored).
"""
import numpy as np

# Paddle keys that carry no parameter of the network, with the reason they are dropped.
PADDLE_IGNORED_KEYS = {
    "StructuredToParameterName@@": "paddle.save's table of structured name -> internal parameter "
                                   "name (e.g. 'conv2d_12.w_0'); bookkeeping, not a weight",
}

# PaddleClas architecture names -> our registered model names.
PADDLE_ARCHS = {
    "DLA34": "dla34", "DLA46_c": "dla46_c", "DLA46x_c": "dla46x_c", "DLA60": "dla60",
    "DLA60x": "dla60x", "DLA60x_c": "dla60x_c", "DLA102": "dla102", "DLA102x": "dla102x",
    "DLA102x2": "dla102x2", "DLA169": "dla169", "PeleeNet": "peleenet",
}

_BN_STAT_SUFFIXES = (("._mean", ".running_mean"), ("._variance", ".running_var"))


def _paddle_key_to_torch(key):
    """The naming rule shared by every PaddleClas port of a torch model: BN statistics."""
    if key in PADDLE_IGNORED_KEYS:
        return None
    for paddle_suffix, torch_suffix in _BN_STAT_SUFFIXES:
        if key.endswith(paddle_suffix):
            return key[:-len(paddle_suffix)] + torch_suffix
    return key


def paddle_to_timm_dla_key(key):
    """PaddleClas ``DLA*`` key -> timm ``dla*`` key (None: not a weight, see PADDLE_IGNORED_KEYS).

    Module paths are identical (PaddleClas ported timm's DLA), so only the BatchNorm statistic
    names change: ``level2.tree1.bn1._mean`` -> ``level2.tree1.bn1.running_mean``.
    """
    return _paddle_key_to_torch(key)


def paddle_to_official_peleenet_key(key):
    """PaddleClas (or flytocc PeleeNet-paddle) ``PeleeNet`` key -> official PeleeNet key.

    Module paths are identical (both ported the official code); only the BatchNorm statistic
    names change. The classifier weight must also be transposed: see ``paddle_array_to_torch``.
    """
    return _paddle_key_to_torch(key)


def paddle_array_to_torch(key, array):
    """A Paddle array in the layout torch uses for the same parameter.

    Paddle's ``nn.Linear`` stores its weight as [in, out]; torch's as [out, in]. Every 2-D
    ``weight`` in these networks is a Linear (convolutions are 4-D, BatchNorm 1-D).
    """
    if key.endswith("weight") and np.ndim(array) == 2:
        return np.ascontiguousarray(np.transpose(array))
    return array


# Per-model key maps, by our registered name.
PADDLE_KEY_MAPS = {name: paddle_to_timm_dla_key for name in PADDLE_ARCHS.values() if name.startswith("dla")}
PADDLE_KEY_MAPS["peleenet"] = paddle_to_official_peleenet_key


def paddle_to_torch_state_dict(state, key_fn):
    """Rename and re-layout a Paddle state_dict into its torch-style equivalent.

    Returns ``(torch_state, ignored)``: ``ignored`` lists the source keys ``key_fn`` dropped.
    Two Paddle keys landing on one torch key is an error (it would silently lose a weight).
    """
    out, ignored = {}, []
    for key, array in state.items():
        new_key = key_fn(key)
        if new_key is None:
            ignored.append(key)
            continue
        if new_key in out:
            raise ValueError(f"Paddle keys map twice onto '{new_key}' (second: '{key}')")
        out[new_key] = paddle_array_to_torch(key, array)
    return out, ignored
