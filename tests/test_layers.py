"""common.layers against MindSpore's stock cells: MaxPool2d against nn.MaxPool2d (the PyTorch-equivalent
pool): same outputs in training and inference, same input gradients, and exportable to ONNX;
BatchNorm2d (fused kernel) against nn.BatchNorm2d + nn.ReLU: same losses, gradients and running stats."""
import re

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before MindSpore runs)
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from common.layers import MaxPool2d


class _InputGrad(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.grad = ops.GradOperation(sens_param=True)

    def construct(self, x, sens):
        return self.grad(self.net)(x, sens)


def _forward_and_grad(net, x, sens, training):
    net.set_train(training)
    return net(x).asnumpy(), _InputGrad(net)(x, sens).asnumpy()


@pytest.mark.parametrize("kernel,stride,padding,inputs", [
    (2, 2, 0, "relu"),      # PeleeNet stem, DLA downsampling: zeros (ties) included
    (2, 2, 0, "signed"),    # no padding: any sign
    (3, 2, 1, "positive"),  # ResNet stem (after a ReLU): zero padding is exact
])
def test_maxpool_matches_stock_pool_forward_and_gradient(graph_mode, kernel, stride, padding, inputs):
    rng = np.random.default_rng(kernel + padding)
    x = rng.standard_normal((2, 8, 15 + padding, 16)).astype(np.float32)
    if inputs == "relu":
        x = np.maximum(x, 0)
    elif inputs == "positive":
        x = np.abs(x) + 0.01
    stock = nn.MaxPool2d(kernel, stride, pad_mode="pad", padding=padding) if padding else nn.MaxPool2d(kernel, stride)
    ours = MaxPool2d(kernel, stride, padding)
    x = ms.Tensor(x)
    for training in (True, False):
        stock.set_train(training)
        ref_out = stock(x).asnumpy()
        sens = ms.Tensor(rng.standard_normal(ref_out.shape).astype(np.float32))
        ref_out, ref_grad = _forward_and_grad(stock, x, sens, training)
        out, grad = _forward_and_grad(ours, x, sens, training)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(grad, ref_grad)
    assert ours.train_with_argmax  # CPU: the fast-gradient pool is the one exercised in training


def test_multigrain_exports_to_onnx_with_the_same_outputs(graph_mode, tmp_path):
    """The padded stem pool and GeM (clamp, 1/p) used to stop the ONNX exporter."""
    import onnxruntime as ort
    from common import create_model
    net = create_model("multigrain_resnet50", num_classes=10)
    net.set_train(False)
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    ms.export(net, ms.Tensor(x), file_name=str(tmp_path / "mg"), file_format="ONNX")
    session = ort.InferenceSession(str(tmp_path / "mg.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    ref = net(ms.Tensor(x)).asnumpy()
    assert np.abs(onnx_out - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1.0)


class _StockBatchNormRelu(nn.Cell):
    """The reference: MindSpore's own BatchNorm2d, then ReLU when asked."""

    def __init__(self, channels, relu):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.9)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def construct(self, x):
        return self.relu(self.norm(x))


class _WeightedSum(nn.Cell):
    """A scalar loss whose gradient reaches every output element differently."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x, weights):
        return (self.net(x) * weights).sum()


def _train_twice_then_eval(norm_cell, bn, x_steps, weights):
    """Loss and gradients (x, gamma, beta) of two training steps, then running stats and eval output."""
    loss_cell = _WeightedSum(norm_cell)
    grad_fn = ms.value_and_grad(loss_cell, grad_position=0, weights=[bn.gamma, bn.beta])
    out = []
    norm_cell.set_train(True)
    for x in x_steps:
        loss, (dx, (dgamma, dbeta)) = grad_fn(ms.Tensor(x), ms.Tensor(weights))
        out += [loss.asnumpy(), dx.asnumpy(), dgamma.asnumpy(), dbeta.asnumpy()]
    norm_cell.set_train(False)
    return out + [bn.moving_mean.asnumpy(), bn.moving_variance.asnumpy(), norm_cell(ms.Tensor(x_steps[0])).asnumpy()]


def _assert_fused_matches_stock(relu, x_steps, weights, gamma=None, beta=None):
    """Our BatchNorm2d (fused kernel in use) and the stock cells, same start, same steps: same numbers."""
    from common.layers import BatchNorm2d

    channels = x_steps[0].shape[1]
    stock = _StockBatchNormRelu(channels, relu)
    ours = BatchNorm2d(channels, relu=relu)
    assert ours.fused_train is not None, "the fused kernel did not build (see the log)"
    for bn in (stock.norm, ours):
        if gamma is not None:
            bn.gamma.set_data(ms.Tensor(gamma))
            bn.beta.set_data(ms.Tensor(beta))
    expected = _train_twice_then_eval(stock, stock.norm, x_steps, weights)
    got = _train_twice_then_eval(ours, ours, x_steps, weights)
    names = ["loss", "dx", "dgamma", "dbeta"] * len(x_steps) + ["moving_mean", "moving_variance", "eval output"]
    for name, want, have in zip(names, expected, got):
        np.testing.assert_allclose(have, want, rtol=2e-4, atol=2e-4 * float(np.abs(want).max()), err_msg=name)


@pytest.mark.parametrize("relu", [False, True])
def test_fused_batchnorm_matches_stock_batchnorm_in_training_and_eval(graph_mode, relu):
    rng = np.random.default_rng(7)
    channels = 6
    # the first step's mean far from 0 against the spread checks the variance's accuracy
    x_steps = [rng.standard_normal((4, channels, 5, 7)).astype(np.float32) * 3 + 20,
               rng.standard_normal((4, channels, 5, 7)).astype(np.float32)]
    weights = rng.standard_normal((4, channels, 5, 7)).astype(np.float32)
    _assert_fused_matches_stock(relu, x_steps, weights, gamma=np.linspace(0.5, 2.0, channels).astype(np.float32),
                                beta=np.linspace(-1.0, 1.0, channels).astype(np.float32))


def test_fused_batchnorm_large_tensor_splits_channels_and_matches(graph_mode):
    """Past 2**17 elements the kernel splits channels over threads: still the stock result."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 64, 72)).astype(np.float32) * 2 + 1
    _assert_fused_matches_stock(True, [x], rng.standard_normal(x.shape).astype(np.float32))


def test_kernel_build_without_compiler_says_why(tmp_path):
    from common.cpu_kernels import build_library

    with pytest.raises(RuntimeError, match=re.escape("no C++ compiler 'no-such-c++' on PATH")):
        build_library(cache_dir=str(tmp_path), compiler="no-such-c++")


def test_batchnorm_without_the_kernel_is_stock_batchnorm(graph_mode, monkeypatch):
    """MS_ZOO_CPU_KERNELS=0 (or no compiler) leaves MindSpore's ops: same training output."""
    from common import cpu_kernels
    from common.layers import BatchNorm2d

    monkeypatch.setenv("MS_ZOO_CPU_KERNELS", "0")
    cpu_kernels.batch_norm_train_op.cache_clear()
    try:
        ours = BatchNorm2d(3, relu=True)
    finally:
        monkeypatch.delenv("MS_ZOO_CPU_KERNELS")
        cpu_kernels.batch_norm_train_op.cache_clear()
    assert ours.fused_train is None
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    stock = _StockBatchNormRelu(3, True)
    for cell in (stock, ours):
        cell.set_train(True)
    np.testing.assert_allclose(ours(ms.Tensor(x)).asnumpy(), stock(ms.Tensor(x)).asnumpy(), rtol=1e-5, atol=1e-6)
