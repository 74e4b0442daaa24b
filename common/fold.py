"""Fold each inference BatchNorm into the convolution before it, for export.

In eval mode ``BN(conv(x)) = gamma * (W*x - mean) / sqrt(var + eps) + beta`` is one convolution with
weight ``W * s`` and bias ``beta - mean * s`` (``s = gamma / sqrt(var + eps)`` per output channel): the
exported graph runs one op where it ran two (DLA, ResNet and PeleeNet are conv -> BN throughout; PeleeNet
chose post-activation so that this fusion is possible). Computed in float64, stored in the conv's dtype.

The pairs are found on the Cell tree: within one cell, a ``Conv2d`` child directly followed (in the order
the children were created) by a ``BatchNorm2d`` child over its output channels, which is how every family
here writes conv -> BN (``conv1``/``bn1``, ``conv``/``norm``, a SequentialCell's ``[conv, bn]``). The
BatchNorm becomes ``nn.Identity`` (or ``nn.ReLU`` where ``common.layers.BatchNorm2d`` had its ReLU fused
in). The export checks the folded net's outputs against the unfolded ones (``check_folded``), so a
family whose construct used such a pair otherwise would be refused, not exported wrong.
"""
import numpy as np

from common.errors import UserError

# The export refuses a fold whose outputs differ from the unfolded network's by more than this, relative to
# each output's largest magnitude. A wrong pairing moves outputs by O(1); float32 rounding alone moves them
# by ~1e-7 with random weights and by 1e-5 with trained ones (timm's dla46_c weights: logits 1.2e-5, the
# deepest feature map 5.5e-5, where MindSpore and PyTorch already differ by 1e-5 on the same weights).
FOLD_RTOL = 1e-3  # room for deeper trained nets (dla169); a wrong fold is far above it


def _pairs(cell):
    """(parent, conv, bn name, bn) for every conv -> BN pair among ``cell``'s descendants."""
    from mindspore import nn
    pairs = []
    children = list(cell.name_cells().items())
    for (_, first), (name, second) in zip(children, children[1:]):
        if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d) \
                and first.out_channels == second.num_features and first.data_format == "NCHW":
            pairs.append((cell, first, name, second))
    for _, child in children:
        pairs += _pairs(child)
    return pairs


def _fold_pair(conv, bn):
    import mindspore as ms
    from mindspore import Parameter
    dtype = conv.weight.dtype
    weight = conv.weight.asnumpy().astype(np.float64)
    scale = bn.gamma.asnumpy().astype(np.float64) / np.sqrt(bn.moving_variance.asnumpy().astype(np.float64) + bn.eps)
    bias = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else 0.0
    new_bias = bn.beta.asnumpy().astype(np.float64) + (bias - bn.moving_mean.asnumpy().astype(np.float64)) * scale
    conv.weight.set_data(ms.Tensor(weight * scale[:, None, None, None], dtype))
    if conv.has_bias:
        conv.bias.set_data(ms.Tensor(new_bias, dtype))
    else:  # the conv gets the bias the BN held; its name sits beside the weight's (unique in the graph)
        conv.bias = Parameter(ms.Tensor(new_bias, dtype), name=conv.weight.name.rsplit(".", 1)[0] + ".bias")
        conv.has_bias = True


def fold_batchnorms(net):
    """Fold every conv -> BN pair of ``net`` (in eval mode) in place; returns the number folded."""
    from mindspore import nn
    net.set_train(False)
    pairs = _pairs(net)
    for parent, conv, name, bn in pairs:
        _fold_pair(conv, bn)
        after = nn.ReLU() if getattr(bn, "with_relu", False) else nn.Identity()
        if isinstance(parent, nn.SequentialCell):
            parent[list(parent.name_cells()).index(name)] = after
        else:
            setattr(parent, name, after)
    net.set_train(False)
    return len(pairs)


def _flat(out):
    return [o.asnumpy() for o in out] if isinstance(out, (tuple, list)) else [out.asnumpy()]


def check_folded(reference, folded, what):
    """Refuse (one line) unless the folded outputs equal ``reference`` (the unfolded outputs, numpy)."""
    for ref, got in zip(reference, folded):
        scale = max(float(np.abs(ref).max()), 1e-12)
        error = float(np.abs(got - ref).max()) / scale
        if error > FOLD_RTOL:
            raise UserError(f"{what}: folding BatchNorm into the convolutions changed the outputs by {error:.1e} "
                            f"(relative; allowed {FOLD_RTOL:g}): export with --fold_bn False")


def fold_checked(cell, image_size, what):
    """``fold_batchnorms(cell)``, checked on one random image against the unfolded outputs.

    Both runs in PYNATIVE_MODE: quicker than compiling two graphs for one image, and GRAPH_MODE would
    rerun the graph it compiled for ``cell`` before the fold (it keeps one per top-level cell object)."""
    import mindspore as ms
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        cell.set_train(False)
        x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, image_size, image_size)).astype(np.float32))
        reference = _flat(cell(x))
        count = fold_batchnorms(cell)
        check_folded(reference, _flat(cell(x)), what)
    finally:
        ms.set_context(mode=mode)
    return count
