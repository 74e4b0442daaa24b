"""The global batch (batch_size x devices x gradient_accumulation_steps) and the lr that goes with it.

A recipe's lr belongs to the global batch it was written for (``reference_batch_size``). With
``lr_scale: linear`` the whole schedule (lr, warmup_lr, min_lr) is multiplied by
global batch / reference_batch_size (Goyal et al., 2017); without it a run on another global
batch trains with the recipe's lr as written, and one warning line says so.
"""
from common.config import Config
from common.errors import ConfigError

LR_SCALES = ("none", "linear")


def accumulation_steps(cfg):
    steps = cfg.gradient_accumulation_steps
    if steps < 1:
        raise ConfigError(f"config error: gradient_accumulation_steps must be >= 1, got {steps}")
    return steps


def global_batch(cfg, group_size):
    return cfg.batch_size * group_size * accumulation_steps(cfg)


def describe(cfg, group_size):
    """'512 (64/device x 8 devices)' with the accumulation when there is one."""
    parts = f"{cfg.batch_size}/device x {group_size} device{'s' if group_size != 1 else ''}"
    if cfg.gradient_accumulation_steps > 1:
        parts += f" x {cfg.gradient_accumulation_steps} accumulated"
    return f"{global_batch(cfg, group_size)} ({parts})"


def lr_config(cfg, group_size):
    """(the config the lr schedule is built from, a warning line or ''). ``cfg`` itself is not
    changed: config.yaml keeps the recipe's lr, and the same command reproduces the run."""
    scale = str(cfg.lr_scale or "none").lower()
    if scale not in LR_SCALES:
        raise ConfigError(f"config error: lr_scale must be one of {', '.join(LR_SCALES)}, not '{cfg.lr_scale}'")
    reference = cfg.reference_batch_size
    if reference < 0:
        raise ConfigError(f"config error: reference_batch_size must be >= 0, got {reference}")
    batch = global_batch(cfg, group_size)
    if scale == "linear":
        if not reference:
            raise ConfigError("config error: lr_scale linear needs reference_batch_size (the global batch the "
                              "recipe's lr was written for)")
        factor = batch / reference
        return Config(cfg, lr=cfg.lr * factor, warmup_lr=cfg.warmup_lr * factor, min_lr=cfg.min_lr * factor), ""
    if reference and batch != reference:
        return cfg, (f"WARNING: global batch {describe(cfg, group_size)} is not the reference_batch_size "
                     f"{reference} this recipe's lr {cfg.lr:g} was written for; the lr is used as written "
                     f"(--lr_scale linear would make it {cfg.lr * batch / reference:g})")
    return cfg, ""
