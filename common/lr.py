"""Per-step learning-rate schedules, each with an optional linear warm-up.

Every schedule is a pure function ``f(..., *, lr, steps_per_epoch, epochs) -> list[float]`` with one
value per training step; ``create_lr_schedule(name, ...)`` picks one by name. Decay schedules run
over the steps after warm-up; step/piecewise count whole epochs from the start of training.
"""
import math

__all__ = ["create_lr_schedule", "cosine_lr", "step_lr", "piecewise_lr", "poly_lr", "linear_lr",
           "exponential_lr", "constant_lr", "SCHEDULES"]


def _with_warmup(decay, *, lr, steps_per_epoch, epochs, warmup_epochs=0, warmup_lr=0.0):
    """Linear warm-up from ``warmup_lr`` to ``lr``, then ``decay(step, t, T)``.

    ``step`` is the global step, ``t`` the step counted from the end of warm-up, ``T`` the number
    of decay steps."""
    total = int(steps_per_epoch * epochs)
    warmup = min(int(steps_per_epoch * warmup_epochs), total)
    decay_steps = max(total - warmup, 1)
    out = []
    for step in range(total):
        if step < warmup:
            out.append(warmup_lr + (lr - warmup_lr) * step / warmup)
        else:
            out.append(decay(step, step - warmup, decay_steps))
    return out


def cosine_lr(*, lr, steps_per_epoch, epochs, min_lr=0.0, warmup_epochs=0, warmup_lr=0.0):
    return _with_warmup(lambda s, t, T: min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t / T)),
                        lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def step_lr(*, lr, steps_per_epoch, epochs, decay_epochs=30, gamma=0.1, warmup_epochs=0, warmup_lr=0.0):
    return _with_warmup(lambda s, t, T: lr * gamma ** (s // steps_per_epoch // decay_epochs),
                        lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def piecewise_lr(*, lr, steps_per_epoch, epochs, milestones=(30, 60, 90), gamma=0.1, warmup_epochs=0,
                 warmup_lr=0.0):
    def decay(s, t, T):
        epoch = s // steps_per_epoch
        return lr * gamma ** sum(1 for m in milestones if epoch >= m)
    return _with_warmup(decay, lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def poly_lr(*, lr, steps_per_epoch, epochs, min_lr=0.0, power=2.0, warmup_epochs=0, warmup_lr=0.0):
    return _with_warmup(lambda s, t, T: min_lr + (lr - min_lr) * (1 - t / T) ** power,
                        lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def linear_lr(*, lr, steps_per_epoch, epochs, min_lr=0.0, warmup_epochs=0, warmup_lr=0.0):
    return poly_lr(lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs, min_lr=min_lr, power=1.0,
                   warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def exponential_lr(*, lr, steps_per_epoch, epochs, gamma=0.97, warmup_epochs=0, warmup_lr=0.0):
    """``lr * gamma ** (epochs since warm-up)``, continuous within an epoch."""
    return _with_warmup(lambda s, t, T: lr * gamma ** (t / steps_per_epoch),
                        lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


def constant_lr(*, lr, steps_per_epoch, epochs, warmup_epochs=0, warmup_lr=0.0):
    return _with_warmup(lambda s, t, T: lr, lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr)


SCHEDULES = {"cosine": cosine_lr, "step": step_lr, "piecewise": piecewise_lr, "poly": poly_lr,
             "linear": linear_lr, "exponential": exponential_lr, "constant": constant_lr}


def create_lr_schedule(cfg, steps_per_epoch):
    """The per-step list for a config's ``lr_scheduler`` and its keys."""
    name = cfg.lr_scheduler
    if name not in SCHEDULES:
        from common.errors import ConfigError
        raise ConfigError(f"config error: unknown lr_scheduler '{name}'; choose one of {', '.join(SCHEDULES)}")
    common = dict(lr=cfg.lr, steps_per_epoch=steps_per_epoch, epochs=cfg.epoch_size,
                  warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr)
    extra = {"cosine": dict(min_lr=cfg.min_lr), "linear": dict(min_lr=cfg.min_lr),
             "poly": dict(min_lr=cfg.min_lr, power=cfg.poly_power),
             "step": dict(decay_epochs=cfg.decay_epochs, gamma=cfg.lr_gamma),
             "piecewise": dict(milestones=tuple(cfg.lr_epochs), gamma=cfg.lr_gamma),
             "exponential": dict(gamma=cfg.lr_gamma)}.get(name, {})
    return SCHEDULES[name](**common, **extra)
