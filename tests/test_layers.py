"""common.layers.MaxPool2d against MindSpore's stock nn.MaxPool2d (the PyTorch-equivalent pool):
same outputs in training and inference, same input gradients, and exportable to ONNX."""
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
