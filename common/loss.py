"""Losses shared by the families."""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops


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
