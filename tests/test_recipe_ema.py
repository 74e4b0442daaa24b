"""EMA of weights: the average after n SGD steps equals the closed form; it is swapped in for
evaluation and back, saved as its own checkpoint and restored from the training checkpoint."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.train import Model

from common.callbacks import CheckpointSaver
from common.errors import ConfigError
from common.ema import EMA, EMAUpdate

W0 = np.array([0.5, -1.0, 2.0], np.float32)
LR, DECAY, BATCH, SAMPLES = 0.1, 0.8, 2, 8


class Toy(nn.Cell):
    """Outputs its weight for every sample: with ``MeanSum`` the gradient of w is all ones."""

    def __init__(self):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(W0), name="w")

    def construct(self, x):
        return x * 0 + self.w


class MeanSum(nn.Cell):
    def construct(self, logits, label):
        return logits.sum() / logits.shape[0]


def closed_form(steps):
    """SGD on loss sum(w) moves w by -lr per step: w_t = w0 - lr*t. The EMA, started at w0:
    e_n = d^n w0 + (1-d) sum_{t=1..n} d^(n-t) w_t."""
    return DECAY ** steps * W0 + sum((1 - DECAY) * DECAY ** (steps - t) * (W0 - LR * t)
                                     for t in range(1, steps + 1))


def toy_training(tmp_path, epochs, mode=ms.GRAPH_MODE):
    ms.set_context(mode=mode)
    net = Toy()
    data = ds.NumpySlicesDataset({"x": np.zeros((SAMPLES, 3), np.float32),
                                  "y": np.zeros((SAMPLES,), np.int32)}, shuffle=False).batch(BATCH)
    model = Model(net, loss_fn=MeanSum(), optimizer=nn.SGD(net.trainable_params(), LR))
    ema = EMA(net, DECAY)
    saver = CheckpointSaver(str(tmp_path), "toy", interval=1, keep_max=2, ema=ema)
    model.train(epochs, data, callbacks=[EMAUpdate(ema), saver], dataset_sink_mode=False)
    return net, model, ema


MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])


@MODES
def test_ema_after_n_steps_equals_the_closed_form(tmp_path, mode):
    net, _, ema = toy_training(tmp_path, epochs=2, mode=mode)
    steps = 2 * SAMPLES // BATCH
    np.testing.assert_allclose(net.w.asnumpy(), W0 - LR * steps, atol=1e-6)
    np.testing.assert_allclose(ema.averages[0].asnumpy(), closed_form(steps), rtol=1e-5, atol=1e-6)


@MODES
def test_ema_is_swapped_in_for_eval_and_back(tmp_path, mode):
    net, model, ema = toy_training(tmp_path, epochs=1, mode=mode)
    steps = SAMPLES // BATCH
    x = ms.Tensor(np.zeros((1, 3), np.float32))
    with ema.swapped():
        np.testing.assert_allclose(net(x).asnumpy()[0], closed_form(steps), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net(x).asnumpy()[0], W0 - LR * steps, atol=1e-6)
    np.testing.assert_allclose(ema.averages[0].asnumpy(), closed_form(steps), rtol=1e-5, atol=1e-6)
    # training goes on from the trained (not the averaged) weights
    one_batch = ds.NumpySlicesDataset({"x": np.zeros((BATCH, 3), np.float32),
                                       "y": np.zeros((BATCH,), np.int32)}, shuffle=False).batch(BATCH)
    model.train(1, one_batch, dataset_sink_mode=False)
    np.testing.assert_allclose(net.w.asnumpy(), W0 - LR * (steps + 1), atol=1e-6)


def test_ema_checkpoints_and_restore(tmp_path):
    _, _, _ = toy_training(tmp_path, epochs=2)
    steps_per_epoch = SAMPLES // BATCH
    ema_ckpt = ms.load_checkpoint(str(tmp_path / f"ema-2_{steps_per_epoch}.ckpt"))
    np.testing.assert_allclose(ema_ckpt["w"].asnumpy(), closed_form(2 * steps_per_epoch), rtol=1e-5, atol=1e-6)
    training = ms.load_checkpoint(str(tmp_path / f"toy-1_{steps_per_epoch}.ckpt"))
    np.testing.assert_allclose(training["ema.w"].asnumpy(), closed_form(steps_per_epoch), rtol=1e-5, atol=1e-6)
    fresh = EMA(Toy(), DECAY)
    assert fresh.load(training)
    np.testing.assert_allclose(fresh.averages[0].asnumpy(), closed_form(steps_per_epoch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_bad_decay_is_refused(decay):
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        EMA(Toy(), decay)
