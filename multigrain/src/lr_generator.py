"""Learning-rate and damping schedules of the ModelZoo MultiGrain / ResNet-THOR card.

Pure functions returning per-step float32 numpy arrays (``ms.Tensor(array)`` gives the dynamic
lr an optimizer takes). ``get_thor_lr`` and ``get_thor_damping`` reproduce
``official/cv/ResNet/src/lr_generator.py`` of mindspore-ai/models step for step;
``get_linear_lr`` is that file's ``liner`` mode (linear warmup, then linear decay): the reference
port the tests compare against, not used at run time.

The card's keys and how they are used:
- THOR: ``lr = lr_init * (1 - epoch / lr_end_epoch) ** lr_decay`` with ``epoch = (step + 1) / steps``,
  halved from ``lr_halve_epoch`` (39, as ModelZoo's train.py) and again one epoch later;
  ``damping = damping_init * damping_decay ** (epoch / 10)`` over ``lr_end_epoch`` (70) epochs.
  The arrays cover ``lr_end_epoch`` epochs; training stops earlier, at ``epoch_size`` (50).
- Momentum ("Linear"): warm up linearly from 0 to ``lr_init`` over ``warmup_epochs`` (2), then
  decay linearly to 0 at ``lr_end_epoch`` (70); the array covers ``epoch_size`` epochs. This is
  ``common.lr``'s ``linear`` schedule with the keys of ``card_linear_keys`` (the one place that maps them).
"""
import numpy as np

from common.errors import ConfigError


class CardScheduleError(ConfigError, ValueError):
    """A card schedule the config cannot express (one line at the command line; a ValueError to callers)."""


def card_linear_keys(cfg):
    """The card's Linear mode as ``common.lr``'s ``linear`` schedule keys, exactly.

    Card (ModelZoo ``get_lr`` linear): 0 -> lr_init over warmup_epochs, then a straight line to 0
    at lr_end_epoch, cut at epoch_size. common.lr's ``linear`` ends its line at epoch_size, so it
    ends at the card line's value there: ``lr_init * (lr_end_epoch - epoch_size) / (lr_end_epoch - warmup)``."""
    if str(cfg.lr_decay_mode).lower() != "linear":
        raise CardScheduleError(f"config error: lr_decay_mode '{cfg.lr_decay_mode}' is not a card mode; use Linear, "
                                f"or leave it empty and set lr_scheduler")
    if cfg.get("pretrain_epoch_size"):
        raise CardScheduleError("config error: pretrain_epoch_size applies to THOR; for Momentum resume with --resume")
    if not cfg.warmup_epochs < cfg.epoch_size <= cfg.lr_end_epoch:
        raise CardScheduleError("config error: Linear needs warmup_epochs < epoch_size <= lr_end_epoch")
    span = cfg.lr_end_epoch - cfg.warmup_epochs
    return {"lr_scheduler": "linear", "lr": float(cfg.lr_init), "warmup_lr": 0.0,
            "min_lr": float(cfg.lr_init) * (cfg.lr_end_epoch - cfg.epoch_size) / span}


def get_thor_lr(global_step, lr_init, decay, total_epochs, steps_per_epoch, decay_epochs=100):
    """ModelZoo ``get_thor_lr``: polynomial decay to 0 at ``total_epochs``, halved twice near the end."""
    lr_each_step = []
    total_steps = steps_per_epoch * total_epochs
    for i in range(total_steps):
        epoch = (i + 1) / steps_per_epoch
        lr_local = lr_init * (1.0 - float(epoch) / total_epochs) ** decay
        if epoch >= decay_epochs:
            lr_local = lr_local * 0.5
        if epoch >= decay_epochs + 1:
            lr_local = lr_local * 0.5
        lr_each_step.append(lr_local)
    return np.array(lr_each_step, dtype=np.float32)[global_step:]


def get_thor_damping(global_step, damping_init, decay_rate, total_epochs, steps_per_epoch):
    """ModelZoo ``get_thor_damping``: ``damping_init * decay_rate ** (epoch / 10)`` per step."""
    total_steps = steps_per_epoch * total_epochs
    damping = [damping_init * (decay_rate ** (((step + 1) / steps_per_epoch) / 10)) for step in range(total_steps)]
    return np.array(damping, dtype=np.float32)[global_step:]


def get_linear_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, steps_per_epoch, start_epoch=0):
    """ModelZoo ``get_lr(..., lr_decay_mode='linear')``: ``lr_init -> lr_max`` over the warmup, then
    linearly to ``lr_end`` at ``total_epochs``."""
    total_steps = steps_per_epoch * total_epochs
    warmup_steps = steps_per_epoch * warmup_epochs
    lr_each_step = []
    for i in range(total_steps):
        if i < warmup_steps:
            lr = lr_init + (lr_max - lr_init) * i / warmup_steps
        else:
            lr = lr_max - (lr_max - lr_end) * (i - warmup_steps) / (total_steps - warmup_steps)
        lr_each_step.append(lr)
    return np.array(lr_each_step, dtype=np.float32)[steps_per_epoch * start_epoch:]


def multigrain_lr(cfg, steps_per_epoch, start_epoch=0):
    """The per-step lr for a card config (``optimizer`` Thor or Momentum), ``epoch_size`` epochs long
    for Momentum and ``lr_end_epoch`` long for THOR (THOR indexes it by its own step counter)."""
    start = start_epoch * steps_per_epoch
    if str(cfg.optimizer).lower() == "thor":
        return get_thor_lr(start, cfg.lr_init, cfg.lr_decay, cfg.lr_end_epoch, steps_per_epoch,
                           decay_epochs=cfg.lr_halve_epoch)
    from common.lr import linear_lr
    keys = card_linear_keys(cfg)
    lr = linear_lr(lr=keys["lr"], min_lr=keys["min_lr"], warmup_lr=keys["warmup_lr"], warmup_epochs=cfg.warmup_epochs,
                   steps_per_epoch=steps_per_epoch, epochs=cfg.epoch_size)
    return lr[start:]


def multigrain_damping(cfg, steps_per_epoch, start_epoch=0):
    """THOR damping per step over ``lr_end_epoch`` epochs (ModelZoo passes 70)."""
    return get_thor_damping(start_epoch * steps_per_epoch, cfg.damping_init, cfg.damping_decay,
                            cfg.lr_end_epoch, steps_per_epoch)
