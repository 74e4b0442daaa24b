"""Learning-rate schedules against their closed forms."""
import math

import pytest

from common.lr import (constant_lr, cosine_lr, create_lr_schedule, exponential_lr, linear_lr, piecewise_lr,
                       poly_lr, step_lr)
from common.config import parse_args
from common.errors import ConfigError

SPE, EPOCHS, LR = 10, 6, 0.4


def test_lengths_and_warmup_is_linear():
    lrs = cosine_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, warmup_epochs=2, warmup_lr=0.0)
    assert len(lrs) == SPE * EPOCHS
    for step in range(20):
        assert lrs[step] == pytest.approx(LR * step / 20)
    assert lrs[20] == pytest.approx(LR)  # first decay step is the peak


def test_cosine_closed_form():
    lrs = cosine_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, min_lr=0.01)
    total = SPE * EPOCHS
    for step in (0, 7, 30, 59):
        assert lrs[step] == pytest.approx(0.01 + 0.5 * (LR - 0.01) * (1 + math.cos(math.pi * step / total)))


def test_step_and_piecewise():
    lrs = step_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, decay_epochs=2, gamma=0.5)
    assert [lrs[e * SPE] for e in range(EPOCHS)] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1, 0.1])
    lrs = piecewise_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, milestones=(1, 4), gamma=0.1)
    assert [lrs[e * SPE + 3] for e in range(EPOCHS)] == pytest.approx([0.4, 0.04, 0.04, 0.04, 0.004, 0.004])


def test_poly_linear_exponential_constant():
    total = SPE * EPOCHS
    poly = poly_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, power=2.0)
    assert poly[15] == pytest.approx(LR * (1 - 15 / total) ** 2)
    lin = linear_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, min_lr=0.1)
    assert lin[30] == pytest.approx(0.4 + (0.1 - 0.4) * 30 / total)
    exp = exponential_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS, gamma=0.9)
    assert exp[25] == pytest.approx(LR * 0.9 ** 2.5)
    assert set(constant_lr(lr=LR, steps_per_epoch=SPE, epochs=EPOCHS)) == {LR}


def test_warmup_then_decay_counts_from_end_of_warmup():
    lrs = poly_lr(lr=1.0, steps_per_epoch=SPE, epochs=EPOCHS, power=1.0, warmup_epochs=1)
    decay_steps = SPE * (EPOCHS - 1)
    assert lrs[SPE + 10] == pytest.approx(1 - 10 / decay_steps)


def test_create_from_config_and_unknown_name():
    cfg = parse_args(["--lr_scheduler", "piecewise", "--lr", "1", "--lr_epochs", "[2]", "--epoch_size", "3"])
    assert create_lr_schedule(cfg, 2) == pytest.approx([1, 1, 1, 1, 0.1, 0.1])
    cfg.lr_scheduler = "triangle"
    with pytest.raises(ConfigError, match="unknown lr_scheduler 'triangle'"):
        create_lr_schedule(cfg, 2)
