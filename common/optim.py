"""Optimizers with weight decay only on weights (not BatchNorm, biases or scalars)."""
import mindspore as ms
import mindspore.nn as nn

from common.config import ConfigError


def param_groups(params, weight_decay):
    """Two groups: >1-D weights decay, 1-D/scalar parameters (BN, bias, learnable scalars) don't."""
    params = list(params)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    groups.append({"order_params": params})
    return groups


def create_optimizer(params, cfg, lr_per_step, loss_scale=1.0):
    """``cfg.optimizer`` over ``params`` with the per-step learning rates."""
    groups = param_groups(params, cfg.weight_decay)
    learning_rate = ms.Tensor(lr_per_step, ms.float32)
    if cfg.optimizer == "momentum":
        return nn.Momentum(groups, learning_rate, momentum=cfg.momentum, loss_scale=loss_scale)
    if cfg.optimizer == "adamw":
        if loss_scale != 1.0:
            raise ConfigError("config error: adamw does not take a fixed loss_scale here; use loss_scale_mode dynamic")
        return nn.AdamWeightDecay(groups, learning_rate)
    raise ConfigError(f"config error: unknown optimizer '{cfg.optimizer}'; choose momentum or adamw")
