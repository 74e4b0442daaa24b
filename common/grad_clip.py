"""Gradient clipping (``clip_grad: none | norm | value``, bound ``clip_value``), as timm and MindCV clip.

``ClipGradients`` stands where the optimizer stands in the train cell (as ``GradientAccumulation`` does),
so it sees the gradients exactly as the optimizer would:

* data parallel: ``TrainOneStepCell`` all-reduces the gradients (``grad_reducer``) before it calls the
  optimizer, so the clip acts on the averaged gradients of all ranks, the same on every rank;
* gradient accumulation: ``GradientAccumulation(ClipGradients(optimizer))`` clips the accumulated mean
  once per optimizer step, not each batch;
* loss scale: with a fixed scale the gradients reach the optimizer multiplied by it (the optimizer
  divides), so the bound is multiplied by it too: clipping ``s·g`` at ``s·c`` is clipping ``g`` at ``c``.
  A dynamic scale is removed by MindSpore before the optimizer (its ``loss_scale`` is then 1).
"""
from mindspore import nn, ops

MODES = ("none", "norm", "value")


class ClipGradients(nn.Cell):
    """``optimizer`` applied to the gradients clipped by global L2 norm (``norm``) or element-wise (``value``)
    at ``bound`` (of the unscaled gradients)."""

    def __init__(self, optimizer, mode, bound):
        super().__init__(auto_prefix=False)  # the optimizer's state keeps its checkpoint names
        self.optimizer = optimizer
        self.parameters = optimizer.parameters
        self.by_norm = mode == "norm"
        self.bound = float(bound) * float(optimizer.loss_scale)  # bound of the gradients as they arrive

    def construct(self, grads):
        if self.by_norm:
            grads = ops.clip_by_global_norm(grads, self.bound)
        else:
            grads = ops.clip_by_value(grads, -self.bound, self.bound)  # each tensor of the tuple
        return self.optimizer(grads)


def clipped(optimizer, cfg):
    """``optimizer`` itself when ``cfg.clip_grad`` is none, else wrapped in ``ClipGradients``."""
    mode = str(cfg.get("clip_grad", "none"))
    return optimizer if mode == "none" else ClipGradients(optimizer, mode, cfg.clip_value)
