"""Layers shared by the model families where MindSpore's stock cell is slow or does not export.

``MaxPool2d`` computes what ``nn.MaxPool2d(kernel, stride, pad_mode="pad", padding=p)`` (PyTorch's
``MaxPool2d(kernel, stride, padding=p)``) computes, but trains faster on CPU and exports to ONNX.
Measured with MindSpore 2.10 on the 2-core CPU, batch 16 (docs/performance.md):

- MindSpore's ``MaxPoolGrad`` re-runs the pooling through oneDNN's slow NCHW kernel before it
  scatters the gradient: PeleeNet's 2x2/2 stem pool (16x32x112x112) costs 96 ms per training step
  against 11 ms forward. ``MaxPoolWithArgmax`` keeps the argmax from the forward pass, so its
  gradient is a scatter: forward + backward 39-50 ms instead of 100-130 ms, identical gradients
  (ties go to the first maximum, as in PyTorch). Used while training on CPU.
- A padded pool (ResNet's 3x3/2, padding 1) goes through ``MaxPool3DWithArgmax`` (155-185 ms
  forward at 16x64x112x112), which ONNX cannot export, and ``nn.Pad`` costs 230-320 ms on the same
  tensor. Concatenating zero borders (18-21 ms) and pooling ``valid`` takes ~60 ms forward and
  130-170 ms forward + backward (argmax) against 190-230 ms. Zero padding equals PyTorch's -inf
  padding for inputs >= 0 only, so ``padding > 0`` is for pools after a ReLU, where the zoo uses it.

``BatchNorm2d`` is ``nn.BatchNorm2d`` (same parameters, same results) with an optional fused ReLU;
while training on CPU in float32 it runs our kernel (common/kernels/batch_norm.cc): one pass per
channel for statistics and output, one for the gradient, the ReLU folded in. MindSpore's BatchNorm
+ BatchNormGrad + ReLU + ReluGrad take ~235 ms of PeleeNet's training step at batch 16; fusing them
made the step 6-8 % faster in interleaved A/B pairs (docs/performance.md). Evaluation, export and
GPU/Ascend use MindSpore's ops.
"""
import logging

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from common.cpu_kernels import batch_norm_train_op

__all__ = ["BatchNorm2d", "MaxPool2d", "zero_pad2d"]


def zero_pad2d(x, padding):
    """Zero-pad H and W of an NCHW tensor on both sides (concatenation: far cheaper than Pad on CPU)."""
    n, c, h, w = x.shape
    rows = ops.zeros((n, c, padding, w), x.dtype)
    x = ops.concat((rows, x, rows), 2)
    cols = ops.zeros((n, c, h + 2 * padding, padding), x.dtype)
    return ops.concat((cols, x, cols), 3)


def _without_deprecation_notice(make):
    """MindSpore 2.10 calls MaxPoolWithArgmax deprecated in favour of MaxPoolWithArgmaxV2, whose CPU
    gradient is ~25x slower (16x32x56x56, same values): keep the op, drop the per-run notice."""
    from common.ms_private import MovedInternal, mindspore_logger
    try:
        logger = mindspore_logger()
    except MovedInternal:  # a notice too many is no reason to stop a run (tests/test_ms_private.py says it moved)
        logger = logging.getLogger("mindspore")
    quiet = logging.Filter()
    quiet.filter = lambda record: "'MaxPoolWithArgmax' is deprecated" not in record.getMessage()
    logger.addFilter(quiet)
    try:
        return make()
    finally:
        logger.removeFilter(quiet)


class MaxPool2d(nn.Cell):
    """Max pool with symmetric zero padding (inputs must be >= 0 when padding > 0), NCHW."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        stride = kernel_size if stride is None else stride
        self.padding = padding
        self.pool = ops.MaxPool(kernel_size=kernel_size, strides=stride, pad_mode="VALID")
        # the argmax pool only where it was measured: CPU; GPU/Ascend keep their native gradients
        self.train_with_argmax = ms.get_context("device_target") == "CPU"
        self.pool_with_argmax = _without_deprecation_notice(
            lambda: ops.MaxPoolWithArgmax(kernel_size=kernel_size, strides=stride, pad_mode="VALID"))

    def construct(self, x):
        if self.padding:
            x = zero_pad2d(x, self.padding)
        if self.training and self.train_with_argmax:
            return self.pool_with_argmax(x)[0]
        return self.pool(x)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (momentum as MindSpore counts it: 0.9 = PyTorch's 0.1), ReLU after it if ``relu``."""

    def __init__(self, num_features, eps=1e-5, momentum=0.9, relu=False, **kwargs):
        super().__init__(num_features, eps=eps, momentum=momentum, **kwargs)
        self.with_relu = relu
        self.eps_tensor = ms.Tensor([eps], ms.float32)
        cpu = ms.get_context("device_target") == "CPU" and self.use_batch_statistics is None
        self.fused_train = batch_norm_train_op(relu) if cpu else None

    def construct(self, x):
        if self.training and self.fused_train is not None and x.dtype == ms.float32 and x.ndim == 4:
            y, mean, _, var = self.fused_train(x, self.gamma, self.beta, self.eps_tensor)
            # running statistics as nn.BatchNorm2d keeps them (unbiased variance); self.momentum
            # holds 1 - momentum, the weight of the new batch
            count = x.shape[0] * x.shape[2] * x.shape[3]
            new = self.momentum
            # the updates hang on the output (depend): left isolated, MindSpore warns "side effect
            # nodes were eliminated" for every BatchNorm when it compiles the eval graph
            y = ops.depend(y, ops.assign(self.moving_mean,
                                         self.moving_mean * (1 - new) + ops.stop_gradient(mean) * new))
            y = ops.depend(y, ops.assign(self.moving_variance, self.moving_variance * (1 - new)
                                         + ops.stop_gradient(var) * (new * count / max(count - 1, 1))))
            return y
        y = super().construct(x)
        return ops.relu(y) if self.with_relu else y
