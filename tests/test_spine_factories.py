"""The loss and optimizer factories: a name picks what a registry holds, a family adds its own (MultiGrain:
its mix loss and THOR), and a loss that wraps another builds its base through the same factory (the way a
distillation loss will). Values against numpy's formula."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
from mindspore import nn

from common import loss, optim
from common.config import Config
from common.errors import ConfigError
from common.family import hooks_for

LOGITS = np.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 3.0]], np.float32)
LABELS = np.array([0, 2], np.int32)


def _smoothed_ce(logits, labels, eps):
    """timm/PaddleClas label smoothing: (1 - eps) * one_hot + eps / K, against log-softmax."""
    k = logits.shape[1]
    target = np.full(logits.shape, eps / k) + (1 - eps) * np.eye(k)[labels]
    log_prob = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-(target * log_prob).sum(1).mean())


def _value(cell):
    return float(cell(ms.Tensor(LOGITS), ms.Tensor(LABELS)).asnumpy())


def test_the_default_loss_is_cross_entropy_with_the_configs_smoothing():
    cfg = Config(label_smooth_factor=0.1, num_classes=4)
    assert _value(loss.create_loss(cfg, None)) == pytest.approx(_smoothed_ce(LOGITS, LABELS, 0.1), rel=1e-5)


def test_a_wrapping_loss_builds_its_base_through_the_factory(monkeypatch):
    monkeypatch.setitem(loss._LOSSES, "halved", None)  # restored after the test

    class Halved(nn.Cell):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def construct(self, logits, label):
            return 0.5 * self.base(logits, label)

    loss.register_loss("halved", lambda cfg, net: Halved(loss.create_loss(cfg, net)))
    cfg = Config(label_smooth_factor=0.0, num_classes=4)
    assert _value(loss.create_loss(cfg, None, "halved")) == pytest.approx(0.5 * _smoothed_ce(LOGITS, LABELS, 0.0),
                                                                         rel=1e-5)
    with pytest.raises(KeyError, match="no loss registered as 'nope'; registered: .*cross_entropy"):
        loss.create_loss(cfg, None, "nope")


def test_multigrain_trains_with_the_mix_loss_it_registers():
    from multigrain.src.mix_loss import MixLoss
    hooks = hooks_for("multigrain_resnet50")
    cfg = Config(num_classes=4, mix_lambda=0.5, label_smooth_factor=0.1, repeat_aug=3, margin=0.2, beta_init=1.2,
                 sampling_cutoff=0.5, nonzero_loss_cutoff=1.4, seed=0)
    assert isinstance(loss.create_loss(cfg, None, hooks.loss), MixLoss)
    dla_cfg = Config(label_smooth_factor=0.0, num_classes=4)
    assert isinstance(loss.create_loss(dla_cfg, None, hooks_for("dla34").loss), loss.CrossEntropySmooth)


def _params():
    return nn.Dense(3, 2).trainable_params()  # a weight (decayed) and a bias (not)


def test_the_optimizer_is_the_one_registered_under_the_configs_name():
    cfg = Config(optimizer="Momentum", weight_decay=1e-4, momentum=0.8)  # names match without case
    opt = optim.create_optimizer(_params(), cfg, [0.1, 0.05])
    assert isinstance(opt, nn.Momentum) and opt.momentum.asnumpy() == pytest.approx(0.8)
    assert isinstance(optim.create_optimizer(_params(), Config(cfg, optimizer="adamw"), [0.1]), nn.AdamWeightDecay)
    with pytest.raises(ConfigError, match="adamw does not take a fixed loss_scale"):
        optim.create_optimizer(_params(), Config(cfg, optimizer="adamw"), [0.1], loss_scale=8.0)
    with pytest.raises(ConfigError, match=r"unknown optimizer 'sgd'; choose momentum, adamw|momentum or adamw"):
        optim.create_optimizer(_params(), Config(cfg, optimizer="sgd"), [0.1])


def test_a_family_adds_an_optimizer_and_thor_refuses_the_shared_trainer(monkeypatch):
    monkeypatch.setitem(optim._OPTIMIZERS, "plain", None)  # restored after the test
    optim.register_optimizer("plain", lambda params, cfg, lr, loss_scale, **context: ("plain", lr, context))
    cfg = Config(optimizer="plain", model="dla34", weight_decay=0.0)
    assert optim.create_optimizer(_params(), cfg, [0.3], net="n") == ("plain", [0.3], {"net": "n"})
    hooks_for("multigrain_resnet50")  # loads MultiGrain's hooks, which register THOR
    with pytest.raises(ConfigError, match="optimizer thor trains MultiGrain models only .*, not dla34"):
        optim.create_optimizer(_params(), Config(cfg, optimizer="thor"), [0.1])
