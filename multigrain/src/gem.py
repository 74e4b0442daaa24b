"""Generalized-mean (GeM) pooling, MultiGrain's pooling layer.

``GeM(x) = (mean_hw(max(x, eps) ** p)) ** (1 / p)`` per channel (Radenović et al.; Berman et al.
2019, MultiGrain). p = 1 is average pooling, p -> inf max pooling.

MultiGrain trains with a fixed p = 3 and may raise p at test time (p = 4 at 500 px in the paper).
So p is held in a *non-trainable* Parameter: optimizers never see it (``trainable_params()``
excludes it), it is saved in checkpoints and MINDIR exports, and ``set_p`` changes it without
recompiling a graph-mode network, because the compiled graph reads the parameter's value.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Parameter, Tensor


class GeM(nn.Cell):
    """GeM pooling over H, W of an NCHW tensor; returns (N, C)."""

    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.eps = float(eps)
        self.p = Parameter(Tensor(float(p), ms.float32), name="p", requires_grad=False)

    def set_p(self, p):
        """Change the pooling exponent (e.g. 4.0 for evaluation at higher resolution)."""
        p = float(p)
        if p <= 0:
            raise ValueError(f"GeM exponent p must be positive, got {p}")
        self.p.set_data(Tensor(p, ms.float32))

    def get_p(self):
        return float(self.p.asnumpy())

    def construct(self, x):
        # maximum / div rather than clamp(min=) / 1.0 / p: the ONNX exporter converts these
        x = ops.maximum(x, self.eps)
        x = ops.pow(x, self.p)
        x = x.mean(axis=(2, 3))
        return ops.pow(x, ops.div(ops.ones_like(self.p), self.p))
