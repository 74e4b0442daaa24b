"""Mixed precision on CPU (MindSpore 2.10): O0/O2/O3 train with fixed and dynamic loss scale,
the way engine.train builds its Model; O1 and unknown levels are refused in one line."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.train import Model

from common.config import parse_args
from common.errors import ConfigError
from common.loss import CrossEntropySmooth
from common.optim import create_optimizer
from common.trainer import _loss_scale_manager


class SmallNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, pad_mode="pad", padding=1, has_bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Dense(8, 10)

    def construct(self, x):
        return self.fc(self.relu(self.bn(self.conv(x))).mean((2, 3)))


def _data():
    rng = np.random.default_rng(0)
    return ds.NumpySlicesDataset({"image": rng.standard_normal((8, 3, 16, 16)).astype(np.float32),
                                  "label": rng.integers(0, 10, 8).astype(np.int32)}, shuffle=False).batch(4)


class Losses(ms.train.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_step_end(self, run_context):
        out = run_context.original_args().net_outputs
        self.values.append(float((out[0] if isinstance(out, (tuple, list)) else out).asnumpy()))


def _train(amp_level, mode="fixed", scale=1.0):
    """Two steps of the engine's Model (same manager/optimizer wiring); returns (losses, model)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    cfg = parse_args(["--amp_level", amp_level, "--loss_scale_mode", mode, "--loss_scale", str(scale),
                      "--lr", "0.01", "--weight_decay", "0"])
    manager, opt_scale = _loss_scale_manager(cfg)
    net = SmallNet()
    optimizer = create_optimizer(net.trainable_params(), cfg, [0.01, 0.01], loss_scale=opt_scale)
    model = Model(net, loss_fn=CrossEntropySmooth(0.0, 10), optimizer=optimizer, amp_level=amp_level,
                  loss_scale_manager=manager)
    losses = Losses()
    model.train(1, _data(), callbacks=[losses], dataset_sink_mode=False)
    return losses.values, model


@pytest.mark.slow
def test_o2_o3_train_on_cpu_in_half_precision_close_to_fp32():
    reference, _ = _train("O0")
    for level in ("O2", "O3"):
        losses, _ = _train(level, "fixed", 128.0)
        assert all(np.isfinite(losses)), level
        # fp16 arithmetic: close to the fp32 loss, but not bit-equal
        np.testing.assert_allclose(losses[0], reference[0], rtol=2e-2)
        assert losses[0] != reference[0], f"{level} did not change the arithmetic"


def test_dynamic_loss_scale_is_refused_on_cpu():
    """MindSpore's Model takes only a fixed, non-dropping loss scale on CPU."""
    with pytest.raises(ValueError, match="supported on device `CPU`"):
        ms.set_context(mode=ms.GRAPH_MODE)
        from mindspore.amp import DynamicLossScaleManager
        net = SmallNet()
        Model(net, loss_fn=CrossEntropySmooth(0.0, 10), optimizer=nn.Momentum(net.trainable_params(), 0.1, 0.9),
              amp_level="O2", loss_scale_manager=DynamicLossScaleManager())
    with pytest.raises(ConfigError, match="loss_scale_mode dynamic is not supported on CPU"):
        _loss_scale_manager(parse_args(["--loss_scale_mode", "dynamic", "--device_target", "CPU"]))


@pytest.mark.parametrize("level", ["O1", "auto", "O4"])
def test_unsupported_amp_levels_are_refused(level):
    with pytest.raises(ConfigError) as err:
        _loss_scale_manager(parse_args(["--amp_level", level]))
    assert "amp_level must be one of O0, O2, O3" in err.value.message


@pytest.mark.parametrize("argv, needle", [(["--loss_scale_mode", "auto"], "loss_scale_mode must be fixed or dynamic"),
                                          (["--loss_scale", "0.5"], r"'loss_scale' must be in \[1, inf\)")])
def test_bad_loss_scale_is_refused(argv, needle):
    with pytest.raises(ConfigError, match=needle):  # the range at parse time, the mode when building
        _loss_scale_manager(parse_args(argv))
