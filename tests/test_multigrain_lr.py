"""The card's schedules (ModelZoo ResNet lr_generator) against hand-computed values."""
import pytest

import common  # noqa: F401
from common.config import Config
from multigrain.src.lr_generator import get_linear_lr, get_thor_damping, get_thor_lr, multigrain_damping, \
    multigrain_lr

LR_INIT, LR_DECAY, END, DAMP, DAMP_DECAY = 0.05672, 4.9687, 70, 0.02345, 0.5467
STEPS = 10


def test_thor_lr_closed_form():
    lr = get_thor_lr(0, LR_INIT, LR_DECAY, END, STEPS, decay_epochs=39)
    assert len(lr) == END * STEPS
    # step i ends epoch (i + 1) / STEPS
    assert lr[0] == pytest.approx(LR_INIT * (1 - 0.1 / 70) ** LR_DECAY, rel=1e-6)
    assert lr[349] == pytest.approx(LR_INIT * 0.5 ** LR_DECAY, rel=1e-6)          # epoch 35 = half-way
    assert lr[349] == pytest.approx(0.0018114, rel=1e-3)                           # 0.05672 / 2^4.9687
    assert lr[388] == pytest.approx(LR_INIT * (1 - 38.9 / 70) ** LR_DECAY, rel=1e-6)
    assert lr[389] == pytest.approx(LR_INIT * (1 - 39 / 70) ** LR_DECAY * 0.5, rel=1e-6)   # halved at 39
    assert lr[399] == pytest.approx(LR_INIT * (1 - 40 / 70) ** LR_DECAY * 0.25, rel=1e-6)  # and at 40
    assert lr[-1] == 0.0
    assert list(get_thor_lr(25, LR_INIT, LR_DECAY, END, STEPS, 39)) == list(lr[25:])


def test_thor_damping_closed_form():
    damping = get_thor_damping(0, DAMP, DAMP_DECAY, END, STEPS)
    assert damping[99] == pytest.approx(DAMP * DAMP_DECAY, rel=1e-6)              # epoch 10
    assert damping[199] == pytest.approx(DAMP * DAMP_DECAY ** 2, rel=1e-6)        # epoch 20
    assert damping[4] == pytest.approx(DAMP * DAMP_DECAY ** 0.05, rel=1e-6)       # epoch 0.5


def test_linear_warmup_then_linear_decay():
    lr = get_linear_lr(0.0, 0.0, LR_INIT, 2, END, STEPS)
    assert lr[0] == 0.0
    assert lr[10] == pytest.approx(LR_INIT / 2, rel=1e-6)        # half of the 2-epoch warm-up
    assert lr[20] == pytest.approx(LR_INIT, rel=1e-6)            # peak at epoch 2
    assert lr[20 + 340] == pytest.approx(LR_INIT / 2, rel=1e-6)  # epoch 36: half-way from 2 to 70
    assert lr[-1] == pytest.approx(LR_INIT / 680, rel=1e-5)      # one step before 0


def test_card_config_dispatch():
    cfg = Config(optimizer="thor", lr_init=LR_INIT, lr_decay=LR_DECAY, lr_end_epoch=END, lr_halve_epoch=39,
                 damping_init=DAMP, damping_decay=DAMP_DECAY, lr_decay_mode="Linear", warmup_epochs=2, epoch_size=50)
    assert len(multigrain_lr(cfg, STEPS)) == END * STEPS                  # THOR indexes its own step
    assert multigrain_damping(cfg, STEPS)[99] == pytest.approx(DAMP * DAMP_DECAY, rel=1e-6)
    cfg.optimizer = "momentum"
    lr = multigrain_lr(cfg, STEPS)
    assert len(lr) == 50 * STEPS and lr[20] == pytest.approx(LR_INIT, rel=1e-6)
    cfg.lr_decay_mode = "cosine"
    with pytest.raises(ValueError):
        multigrain_lr(cfg, STEPS)
