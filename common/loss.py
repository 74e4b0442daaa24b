"""Losses by name: ``create_loss(cfg, net, name)`` builds the loss registered as ``name`` (a family's
``TaskHooks.loss``); a family registers its own with ``register_loss`` (MultiGrain's mix loss).

A loss factory is ``fn(cfg, net) -> cell(logits, label)``. A loss that wraps another (a distillation
loss around the family's own) is a factory that calls ``create_loss`` for the loss it wraps."""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

DEFAULT_LOSS = "cross_entropy"
_LOSSES = {}  # name -> factory(cfg, net)


def register_loss(name, factory=None):
    """Register ``factory(cfg, net) -> loss cell`` as ``name``; usable as ``@register_loss(name)``.
    A name registered again is replaced (a module imported twice registers the same factory)."""
    if factory is None:
        return lambda fn: register_loss(name, fn)
    _LOSSES[name] = factory
    return factory


def create_loss(cfg, net, name=None):
    """The loss registered as ``name`` (None: ``DEFAULT_LOSS``), built for ``cfg`` and ``net``."""
    name = name or DEFAULT_LOSS
    factory = _LOSSES.get(name)
    if factory is None:  # a family's hooks name a loss nobody registered: a bug, not a config error
        raise KeyError(f"no loss registered as '{name}'; registered: {', '.join(sorted(_LOSSES))}")
    return factory(cfg, net)


class CrossEntropySmooth(nn.Cell):
    """Cross-entropy with label smoothing, as timm/PaddleClas define it.

    Target = (1 - smooth_factor) * one_hot + smooth_factor / num_classes. Accepts sparse integer
    labels (N,) or already soft labels (N, C) such as mixup produces."""

    def __init__(self, smooth_factor=0.0, num_classes=1000, reduction="mean"):
        super().__init__()
        if not 0.0 <= smooth_factor < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smooth_factor}")
        self.on_value = ms.Tensor(1.0 - smooth_factor + smooth_factor / num_classes, ms.float32)
        self.off_value = ms.Tensor(smooth_factor / num_classes, ms.float32)
        self.smooth_factor = smooth_factor
        self.num_classes = num_classes
        self.reduction = reduction

    def construct(self, logits, label):
        logits = logits.astype(ms.float32)
        if label.ndim == 1:
            target = ops.one_hot(label.astype(ms.int32), self.num_classes, self.on_value, self.off_value)
        else:
            target = label.astype(ms.float32) * (1.0 - self.smooth_factor) + self.smooth_factor / self.num_classes
        loss = -(target * ops.log_softmax(logits, -1)).sum(-1)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


@register_loss(DEFAULT_LOSS)
def cross_entropy(cfg, net):
    """Every family's loss unless its hooks name another: cross-entropy with ``label_smooth_factor``."""
    return CrossEntropySmooth(cfg.label_smooth_factor, cfg.num_classes)
