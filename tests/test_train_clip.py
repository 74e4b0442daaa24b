"""Gradient clipping (``clip_grad``/``clip_value``) through the shared trainer (``common.trainer.model_trainer``).

A BatchNorm-free net (one Dense layer, softmax cross-entropy) takes one optimizer step of plain SGD
(momentum 0, no weight decay); the expected weights are computed in numpy from the closed-form gradient
(X^T (softmax - onehot) / N), clipped by hand: by global L2 norm (g * c / max(|g|, c)) or element-wise.
The bound is chosen so that clipping is active. The same step is checked with a fixed loss scale (the
gradients reach the optimizer scaled: the bound must be too) and with gradient accumulation 2 x batch 8
(the accumulated mean is clipped once, which differs from clipping each batch)."""
from types import SimpleNamespace

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)

N, FEATURES, CLASSES, LR = 16, 6, 3, 0.5


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, FEATURES)).astype(np.float32) * 3
    y = rng.integers(0, CLASSES, N).astype(np.int32)
    w = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    b = rng.normal(size=CLASSES).astype(np.float32)
    return x, y, w, b


def _grads(x, y, w, b):
    """Mean softmax cross-entropy gradient of a Dense layer, by hand."""
    logits = x.astype(np.float64) @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    d = p / len(y)
    return d.T @ x, d.sum(0)


def _clip(grads, mode, bound):
    if mode == "value":
        return [np.clip(g, -bound, bound) for g in grads]
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * bound / max(norm, bound) for g in grads]


def _train(mode, bound, batch, accumulation=1, loss_scale=1.0, names=False, reducer=None):
    """Weights after one optimizer step of the project's train step (``names``: the names its checkpoint
    would hold, untrained)."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore import nn
    from common.config import DEFAULTS, Config
    from common.trainer import TrainSetup, model_trainer
    from common.training_state import ResumePoint

    x, y, w, b = _data()
    cfg = Config({k: v[0] for k, v in DEFAULTS.items()}).replace(
        momentum=0.0, weight_decay=0.0, clip_grad=mode, clip_value=bound, loss_scale=loss_scale)
    net = nn.Dense(FEATURES, CLASSES)
    net.weight.set_data(ms.Tensor(w))
    net.bias.set_data(ms.Tensor(b))
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    setup = TrainSetup(hooks=SimpleNamespace(create_train_network=None), out_dir="", ckpt_dir="", rank=0,
                       group_size=1, point=ResumePoint(), accumulation=accumulation, net=net, loss=loss,
                       train_ds=None, rest_ds=None, batches=N // batch, steps=1, lr_cfg=None, lr_warning="",
                       lr=[LR] * 4)
    trainer = model_trainer(cfg, setup)
    if names:
        return [p.name for p in trainer.train_network.get_parameters()]
    if reducer is not None:  # stands for data parallel's all-reduce (DistributedGradReducer)
        trainer.train_network.grad_reducer = reducer
    data = ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(batch)
    trainer.fit(1, data, [], 0, False)
    return net.weight.asnumpy(), net.bias.asnumpy()


def _expected(mode, bound):
    x, y, w, b = _data()
    gw, gb = _grads(x, y, w, b)
    if mode != "none":
        gw, gb = _clip([gw, gb], mode, bound)
    return w - LR * gw, b - LR * gb


def _norm():
    x, y, w, b = _data()
    return np.sqrt(sum((g ** 2).sum() for g in _grads(x, y, w, b)))


@pytest.mark.parametrize("mode,loss_scale", [("norm", 1.0), ("norm", 1024.0), ("value", 1.0), ("value", 256.0)])
def test_clip_equals_numpy(mode, loss_scale):
    bound = _norm() / 4 if mode == "norm" else 0.05
    got = _train(mode, bound, batch=N, loss_scale=loss_scale)
    want = _expected(mode, bound)
    unclipped = _expected("none", bound)
    assert np.abs(unclipped[0] - want[0]).max() > 1e-2  # clipping is active: the check can fail
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, atol=1e-6, rtol=0)


def test_clip_accumulated_step_once():
    """2 x batch 8 accumulated equals batch 16 clipped once (not each batch clipped, then averaged)."""
    bound = _norm() / 4
    got = _train("norm", bound, batch=8, accumulation=2)
    want = _expected("norm", bound)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, atol=1e-6, rtol=0)
    x, y, w, b = _data()
    halves = [_clip(list(_grads(x[i:i + 8], y[i:i + 8], w, b)), "norm", bound) for i in (0, 8)]
    per_batch = w - LR * (halves[0][0] + halves[1][0]) / 2
    assert np.abs(per_batch - want[0]).max() > 1e-3  # clipping each batch would be told apart


@pytest.mark.parametrize("accumulation", [1, 2])
def test_clipping_keeps_checkpoint_names(accumulation):
    """A clipped run's checkpoint resumes with clipping off and back (the wrapper adds no name prefix)."""
    plain = _train("none", 1.0, 8, accumulation, names=True)
    assert _train("norm", 1.0, 8, accumulation, names=True) == plain
    assert "moments.weight" in plain


def test_clip_acts_after_the_all_reduce():
    """Data parallel: the train cell all-reduces the gradients (its ``grad_reducer``) before the clip. A
    reducer that sums 2 ranks' equal gradients (2g) stands in for it: the step must be clip(2g), not
    2 clip(g) (clipping each rank's own gradients before the sum)."""
    from mindspore import nn, ops

    class SumOfTwoRanks(nn.Cell):
        def construct(self, grads):
            return tuple(ops.mul(g, 2.0) for g in grads)

    bound = _norm() / 4
    got = _train("norm", bound, batch=N, reducer=SumOfTwoRanks())
    x, y, w, b = _data()
    summed = [2 * g for g in _grads(x, y, w, b)]
    want = [v - LR * g for v, g in zip((w, b), _clip(summed, "norm", bound))]
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, atol=1e-6, rtol=0)
    before = w - LR * 2 * _clip(list(_grads(x, y, w, b)), "norm", bound)[0]
    assert np.abs(before - want[0]).max() > 1e-3  # clipping before the reduce would be told apart
