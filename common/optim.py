"""Optimizers by name (``cfg.optimizer``), with weight decay only on weights (not BatchNorm, biases or scalars).

``create_optimizer`` builds the optimizer registered under the config's name; a family registers its
own with ``register_optimizer`` (MultiGrain: THOR). A factory is
``fn(params, cfg, lr_per_step, loss_scale, **context) -> optimizer``; ``context`` is what a trainer of its
own hands its optimizer besides (THOR: the net it converts, the damping schedule)."""
import mindspore as ms
import mindspore.nn as nn

from common.errors import ConfigError

_OPTIMIZERS = {}  # lower-case name -> factory


def register_optimizer(name, factory=None):
    """Register ``factory`` as optimizer ``name`` (matched without case); usable as ``@register_optimizer(name)``.
    A name registered again is replaced (a module imported twice registers the same factory)."""
    if factory is None:
        return lambda fn: register_optimizer(name, fn)
    _OPTIMIZERS[name.lower()] = factory
    return factory


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


def create_optimizer(params, cfg, lr_per_step, loss_scale=1.0, **context):
    """``cfg.optimizer`` over ``params`` with the per-step learning rates."""
    factory = _OPTIMIZERS.get(str(cfg.optimizer).lower())
    if factory is None:
        names = list(_OPTIMIZERS)
        choices = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise ConfigError(f"config error: unknown optimizer '{cfg.optimizer}'; choose {choices}")
    return factory(params, cfg, lr_per_step, loss_scale, **context)


@register_optimizer("momentum")
def momentum(params, cfg, lr_per_step, loss_scale, **context):
    return nn.Momentum(param_groups(params, cfg.weight_decay), ms.Tensor(lr_per_step, ms.float32),
                       momentum=cfg.momentum, loss_scale=loss_scale)


@register_optimizer("adamw")
def adamw(params, cfg, lr_per_step, loss_scale, **context):
    if loss_scale != 1.0:
        raise ConfigError("config error: adamw does not take a fixed loss_scale here; use loss_scale_mode dynamic")
    return nn.AdamWeightDecay(param_groups(params, cfg.weight_decay), ms.Tensor(lr_per_step, ms.float32))
