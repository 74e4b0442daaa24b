"""PeleeNet (Wang et al., NeurIPS 2018), MindSpore port of the official PyTorch ``peleenet.py``.

Parameter names equal the official state_dict's (``features.denseblock1.denselayer1.branch1a.conv.weight``;
BatchNorm's weight/bias/running_* are MindSpore's gamma/beta/moving_*; ``classifier`` is a Linear,
stored [out, in] like ``nn.Dense``), so official checkpoints convert by name.

Numerically identical to the official model: post-activation conv-BN-ReLU everywhere, the stem's
2x2/2 max-pool and the transitions' 2x2/2 average pool without padding (floor), the stem concat
``[pool, conv]``, dense layers output ``[x, branch1, branch2]``, dropout only before the classifier.
"""
from collections import OrderedDict

import mindspore.nn as nn
import mindspore.ops as ops
from mindspore.common.initializer import HeNormal, Normal

from common.builder import IMAGENET_MEAN, IMAGENET_STD, build_model_with_cfg
from common.input_size import joined, window_side
from common.layers import BatchNorm2d, MaxPool2d
from common.registry import register_model

__all__ = ["PeleeNet", "default_cfgs"]

default_cfgs = {
    "peleenet": {"num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
                 "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                 "first_conv": "features.stemblock.stem1.conv", "classifier": "classifier", "architecture": "peleenet"},
}


class BasicConv2d(nn.Cell):
    """Conv (no bias, symmetric padding) → BatchNorm → ReLU; the official ``BasicConv2d``.

    Initialised as the official model: conv N(0, sqrt(2 / (k*k*out))) (He, fan-out), BN gamma 1, beta 0."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad_mode="pad",
                              padding=kernel_size // 2, has_bias=False,
                              weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))
        self.norm = BatchNorm2d(out_channels, eps=1e-5, momentum=0.9, relu=True)  # ReLU fused in

    def construct(self, x):
        return self.norm(self.conv(x))


class StemBlock(nn.Cell):
    """3x3/2 conv, then (2x2/2 max-pool ‖ 1x1 → 3x3/2 conv) concatenated ``[pool, conv]``, then 1x1."""

    def __init__(self, in_channels, num_init_features):
        super().__init__()
        num_stem_features = num_init_features // 2
        self.stem1 = BasicConv2d(in_channels, num_init_features, 3, stride=2)
        self.stem2a = BasicConv2d(num_init_features, num_stem_features, 1)
        self.stem2b = BasicConv2d(num_stem_features, num_init_features, 3, stride=2)
        self.stem3 = BasicConv2d(2 * num_init_features, num_init_features, 1)
        self.pool = MaxPool2d(kernel_size=2, stride=2)

    def construct(self, x):
        out = self.stem1(x)
        branch2 = self.stem2b(self.stem2a(out))
        branch1 = self.pool(out)
        return self.stem3(ops.concat((branch1, branch2), 1))


class DenseLayer(nn.Cell):
    """Two-way dense layer: a 3x3 branch and a two-3x3 branch, each adding ``growth_rate / 2`` maps."""

    def __init__(self, num_input_features, growth_rate, bottleneck_width):
        super().__init__()
        growth_rate = growth_rate // 2
        inter_channel = int(growth_rate * bottleneck_width / 4) * 4
        if inter_channel > num_input_features / 2:
            inter_channel = int(num_input_features / 8) * 4
        self.branch1a = BasicConv2d(num_input_features, inter_channel, 1)
        self.branch1b = BasicConv2d(inter_channel, growth_rate, 3)
        self.branch2a = BasicConv2d(num_input_features, inter_channel, 1)
        self.branch2b = BasicConv2d(inter_channel, growth_rate, 3)
        self.branch2c = BasicConv2d(growth_rate, growth_rate, 3)

    def construct(self, x):
        branch1 = self.branch1b(self.branch1a(x))
        branch2 = self.branch2c(self.branch2b(self.branch2a(x)))
        return ops.concat((x, branch1, branch2), 1)


def _dense_block(num_layers, num_input_features, growth_rate, bottleneck_width):
    return nn.SequentialCell(OrderedDict(
        (f"denselayer{i + 1}", DenseLayer(num_input_features + i * growth_rate, growth_rate, bottleneck_width))
        for i in range(num_layers)))


class PeleeNet(nn.Cell):
    """PeleeNet: stem, 4 dense blocks each followed by a 1x1 transition (no compression) and,
    except after the last, a 2x2 average pool; global average pool, dropout, linear classifier.

    ``growth_rate`` and ``bottleneck_width`` may be an int or a list of 4 (one per block)."""

    def __init__(self, growth_rate=32, block_config=(3, 4, 8, 6), num_init_features=32,
                 bottleneck_width=(1, 2, 4, 4), drop_rate=0.05, num_classes=1000, in_chans=3):
        super().__init__()
        n_blocks = len(block_config)
        growth_rates = [growth_rate] * n_blocks if isinstance(growth_rate, int) else list(growth_rate)
        widths = [bottleneck_width] * n_blocks if isinstance(bottleneck_width, int) else list(bottleneck_width)
        if len(growth_rates) != n_blocks or len(widths) != n_blocks:
            raise ValueError("growth_rate and bottleneck_width need one value per dense block")

        layers = [("stemblock", StemBlock(in_chans, num_init_features))]
        num_features = num_init_features
        self.feature_info = [dict(num_chs=num_init_features, reduction=4, module="features.stemblock")]
        for i, num_layers in enumerate(block_config):
            layers.append((f"denseblock{i + 1}", _dense_block(num_layers, num_features, growth_rates[i], widths[i])))
            num_features += num_layers * growth_rates[i]
            layers.append((f"transition{i + 1}", BasicConv2d(num_features, num_features, 1)))
            self.feature_info.append(dict(num_chs=num_features, reduction=4 * 2 ** i,
                                          module=f"features.transition{i + 1}"))
            if i != n_blocks - 1:
                layers.append((f"transition{i + 1}_pool", nn.AvgPool2d(kernel_size=2, stride=2)))
        self.features = nn.SequentialCell(OrderedDict(layers))

        self.num_features = num_features
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 else nn.Identity()
        self.classifier = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes):
        if num_classes <= 0:
            return nn.Identity()
        return nn.Dense(self.num_features, num_classes, weight_init=Normal(0.01), bias_init="zeros")  # as official

    def get_classifier(self):
        return self.classifier

    def reset_classifier(self, num_classes):
        """Replace the head; ``num_classes=0`` makes the model return pooled features."""
        self.num_classes = num_classes
        self.classifier = self._make_classifier(num_classes)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        x = ops.mean(x, (2, 3))
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


def feature_sides(model, image_size, blocks=4):
    """Side of each ``feature_info`` map for ``image_size`` px inputs, walking ``PeleeNet``
    (``common.input_size``): the stem concatenates a 2x2/2 max-pool (``floor(n / 2)``) with a 3x3/2 conv
    (``ceil(n / 2)``), so the stem conv's map must have an even side; each transition's 2x2/2 average
    pool halves it, down to nothing below 64 px."""
    stem = window_side(image_size, 3, 2, 1)                             # stem1
    side = joined(0, f"the stem (a {stem}x{stem} map)",
                  **{"its 2x2/2 pool": window_side(stem, 2, 2),
                     "its 3x3/2 conv": window_side(window_side(stem, 1), 3, 2, 1)})
    sides = [side]
    for i in range(1, blocks + 1):                                      # dense block + 1x1 transition
        if i > 1:                                                       # the previous transition's pool
            side = joined(i, f"transition{i - 1}_pool", **{"its 2x2/2 pool": window_side(side, 2, 2)})
        sides.append(side)
    return sides


@register_model
def peleenet(num_classes=1000, **kwargs):
    """PeleeNet as published: growth rate 32, blocks [3, 4, 8, 6], bottleneck widths [1, 2, 4, 4]."""
    return build_model_with_cfg(PeleeNet, "peleenet", default_cfgs["peleenet"], growth_rate=32,
                                block_config=(3, 4, 8, 6), num_init_features=32, bottleneck_width=(1, 2, 4, 4),
                                num_classes=num_classes, **kwargs)
