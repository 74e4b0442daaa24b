"""Deep Layer Aggregation (Yu et al., CVPR 2018), MindSpore port of timm's ``dla.py``.

Parameter names equal timm's (BatchNorm's weight/bias/running_* are MindSpore's
gamma/beta/moving_*), so timm, official and PaddleClas checkpoints convert by name.
"""
import math

import mindspore.nn as nn
import mindspore.ops as ops
from mindspore.common.initializer import Normal, initializer

from common.builder import IMAGENET_MEAN, IMAGENET_STD, build_model_with_cfg
from common.input_size import joined, window_side
from common.layers import BatchNorm2d, MaxPool2d
from common.registry import register_model

__all__ = ["DLA", "default_cfgs"]


def _cfg(**kwargs):
    return {"num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
            "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
            "first_conv": "base_layer.0", "classifier": "fc", **kwargs}


default_cfgs = {name: _cfg(architecture=name) for name in (
    "dla34", "dla46_c", "dla46x_c", "dla60x_c", "dla60", "dla60x", "dla102", "dla102x", "dla102x2", "dla169")}


def conv_bn(in_channels, out_channels, kernel_size, stride=1, groups=1, relu=False):
    """Conv (symmetric padding, no bias) + BatchNorm, as the two cells of a PyTorch Sequential.

    ``relu`` fuses the ReLU into the BatchNorm and adds an Identity where the Sequential has its
    ReLU, so the cell indices (and checkpoint names) stay the PyTorch ones."""
    cells = [_conv(in_channels, out_channels, kernel_size, stride, groups), _bn(out_channels, relu)]
    return cells + [nn.Identity()] if relu else cells


def _conv(in_channels, out_channels, kernel_size, stride=1, groups=1):
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad_mode="pad", padding=kernel_size // 2,
                     group=groups, has_bias=False)


def _bn(channels, relu=False):
    return BatchNorm2d(channels, eps=1e-5, momentum=0.9, relu=relu)


class DlaBasic(nn.Cell):
    """Two 3x3 convs with a residual (DLA-34)."""

    def __init__(self, inplanes, planes, stride=1, **_):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = _bn(planes, relu=True)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()

    def construct(self, x, shortcut=None):
        if shortcut is None:
            shortcut = x
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class DlaBottleneck(nn.Cell):
    """1x1 → 3x3 (grouped for DLA-X) → 1x1 bottleneck with a residual."""
    expansion = 2

    def __init__(self, inplanes, outplanes, stride=1, cardinality=1, base_width=64):
        super().__init__()
        mid_planes = int(math.floor(outplanes * (base_width / 64)) * cardinality) // self.expansion
        self.conv1 = _conv(inplanes, mid_planes, 1)
        self.bn1 = _bn(mid_planes, relu=True)
        self.conv2 = _conv(mid_planes, mid_planes, 3, stride, groups=cardinality)
        self.bn2 = _bn(mid_planes, relu=True)
        self.conv3 = _conv(mid_planes, outplanes, 1)
        self.bn3 = _bn(outplanes)
        self.relu = nn.ReLU()

    def construct(self, x, shortcut=None):
        if shortcut is None:
            shortcut = x
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class DlaRoot(nn.Cell):
    """Aggregation node: 1x1 conv over the concatenated children, optional residual to the first."""

    def __init__(self, in_channels, out_channels, shortcut):
        super().__init__()
        self.conv = _conv(in_channels, out_channels, 1)
        self.bn = _bn(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = shortcut

    def construct(self, children):
        x = self.bn(self.conv(ops.concat(children, 1)))
        if self.shortcut:
            x = x + children[0]
        return self.relu(x)


class DlaTree(nn.Cell):
    """Hierarchical deep aggregation tree. Children travel as tuples (graph-mode friendly)."""

    def __init__(self, levels, block, in_channels, out_channels, stride=1, cardinality=1, base_width=64,
                 level_root=False, root_dim=0, root_shortcut=False):
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        self.downsample = MaxPool2d(stride, stride) if stride > 1 else nn.Identity()
        self.project = nn.Identity()
        block_args = dict(cardinality=cardinality, base_width=base_width)
        if levels == 1:
            self.tree1 = block(in_channels, out_channels, stride, **block_args)
            self.tree2 = block(out_channels, out_channels, 1, **block_args)
            if in_channels != out_channels:
                self.project = nn.SequentialCell(conv_bn(in_channels, out_channels, 1))
            self.root = DlaRoot(root_dim, out_channels, root_shortcut)
        else:
            block_args["root_shortcut"] = root_shortcut
            self.tree1 = DlaTree(levels - 1, block, in_channels, out_channels, stride, root_dim=0, **block_args)
            self.tree2 = DlaTree(levels - 1, block, out_channels, out_channels,
                                 root_dim=root_dim + out_channels, **block_args)
        self.level_root = level_root
        self.levels = levels

    def construct(self, x, shortcut=None, children=()):
        bottom = self.downsample(x)
        shortcut = self.project(bottom)
        if self.level_root:
            children = children + (bottom,)
        x1 = self.tree1(x, shortcut)
        if self.levels == 1:
            x2 = self.tree2(x1)
            return self.root((x2, x1) + children)
        return self.tree2(x1, None, children + (x1,))


class DLA(nn.Cell):
    """DLA backbone + global average pool + 1x1-conv classifier (with bias)."""

    def __init__(self, levels, channels, num_classes=1000, in_chans=3, cardinality=1, base_width=64,
                 block=DlaBottleneck, shortcut_root=False, drop_rate=0.0):
        super().__init__()
        self.channels = channels
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.base_layer = nn.SequentialCell(conv_bn(in_chans, channels[0], 7, relu=True))
        self.level0 = self._make_conv_level(channels[0], channels[0], levels[0])
        self.level1 = self._make_conv_level(channels[0], channels[1], levels[1], stride=2)
        tree_args = dict(cardinality=cardinality, base_width=base_width, root_shortcut=shortcut_root)
        self.level2 = DlaTree(levels[2], block, channels[1], channels[2], 2, level_root=False, **tree_args)
        self.level3 = DlaTree(levels[3], block, channels[2], channels[3], 2, level_root=True, **tree_args)
        self.level4 = DlaTree(levels[4], block, channels[3], channels[4], 2, level_root=True, **tree_args)
        self.level5 = DlaTree(levels[5], block, channels[4], channels[5], 2, level_root=True, **tree_args)
        self.feature_info = [dict(num_chs=c, reduction=2 ** i, module=f"level{i}")
                             for i, c in enumerate(channels)]
        self.num_features = channels[-1]
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = self._make_classifier(num_classes)
        self._initialize_weights()

    @staticmethod
    def _make_conv_level(inplanes, planes, convs, stride=1):
        cells = []
        for i in range(convs):
            cells += conv_bn(inplanes, planes, 3, stride if i == 0 else 1, relu=True)
            inplanes = planes
        return nn.SequentialCell(cells)

    def _make_classifier(self, num_classes):
        if num_classes <= 0:
            return nn.Identity()
        return nn.Conv2d(self.num_features, num_classes, 1, pad_mode="valid", has_bias=True)

    def _initialize_weights(self):
        # He init as in the official DLA: N(0, sqrt(2 / (k*k*out))); BN gamma 1, beta 0 (the defaults).
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                kh, kw = cell.kernel_size
                std = math.sqrt(2.0 / (kh * kw * cell.out_channels))
                cell.weight.set_data(initializer(Normal(std), cell.weight.shape, cell.weight.dtype))

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes):
        """Replace the head; ``num_classes=0`` makes the model return pooled features."""
        self.num_classes = num_classes
        self.fc = self._make_classifier(num_classes)

    def forward_features(self, x):
        x = self.base_layer(x)
        x = self.level0(x)
        x = self.level1(x)
        x = self.level2(x)
        x = self.level3(x)
        x = self.level4(x)
        return self.level5(x)

    def forward_head(self, x, pre_logits=False):
        x = ops.mean(x, (2, 3), keep_dims=True)
        if pre_logits:
            return ops.flatten(x)
        x = self.fc(self.dropout(x))
        return ops.flatten(x)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


def feature_sides(model, image_size):
    """Side of each level's map for ``image_size`` px inputs, walking ``DLA`` (``common.input_size``).

    The stride-2 trees (levels 2-5) meet their block's 3x3/2 conv (``ceil(n / 2)``) with the
    ``MaxPool2d(2, 2)`` shortcut and root input (``floor(n / 2)``): an odd side entering them cannot
    pass. A tree's deeper levels only add stride-1 subtrees, so every variant walks alike."""
    side = window_side(image_size, 7, 1, 3)                   # base_layer
    sides = [side]                                            # level0: 3x3/1 convs
    sides.append(window_side(side, 3, 2, 1))                  # level1: a 3x3/2 conv
    for level in range(2, 6):                                 # DlaTree(stride=2)
        sides.append(joined(level, f"level{level} (a {sides[-1]}x{sides[-1]} map)",
                            **{"its 3x3/2 conv": window_side(sides[-1], 3, 2, 1),
                               "its 2x2/2 pool": window_side(sides[-1], 2, 2)}))
    return sides


def _create_dla(variant, num_classes=1000, **kwargs):
    return build_model_with_cfg(DLA, variant, default_cfgs[variant], num_classes=num_classes, **kwargs)


@register_model
def dla34(num_classes=1000, **kwargs):
    return _create_dla("dla34", num_classes, levels=[1, 1, 1, 2, 2, 1], channels=[16, 32, 64, 128, 256, 512],
                       block=DlaBasic, **kwargs)


@register_model
def dla46_c(num_classes=1000, **kwargs):
    return _create_dla("dla46_c", num_classes, levels=[1, 1, 1, 2, 2, 1], channels=[16, 32, 64, 64, 128, 256], **kwargs)


@register_model
def dla46x_c(num_classes=1000, **kwargs):
    return _create_dla("dla46x_c", num_classes, levels=[1, 1, 1, 2, 2, 1], channels=[16, 32, 64, 64, 128, 256],
                       cardinality=32, base_width=4, **kwargs)


@register_model
def dla60x_c(num_classes=1000, **kwargs):
    return _create_dla("dla60x_c", num_classes, levels=[1, 1, 1, 2, 3, 1], channels=[16, 32, 64, 64, 128, 256],
                       cardinality=32, base_width=4, **kwargs)


@register_model
def dla60(num_classes=1000, **kwargs):
    return _create_dla("dla60", num_classes, levels=[1, 1, 1, 2, 3, 1], channels=[16, 32, 128, 256, 512, 1024],
                       **kwargs)


@register_model
def dla60x(num_classes=1000, **kwargs):
    return _create_dla("dla60x", num_classes, levels=[1, 1, 1, 2, 3, 1], channels=[16, 32, 128, 256, 512, 1024],
                       cardinality=32, base_width=4, **kwargs)


@register_model
def dla102(num_classes=1000, **kwargs):
    return _create_dla("dla102", num_classes, levels=[1, 1, 1, 3, 4, 1], channels=[16, 32, 128, 256, 512, 1024],
                       shortcut_root=True, **kwargs)


@register_model
def dla102x(num_classes=1000, **kwargs):
    return _create_dla("dla102x", num_classes, levels=[1, 1, 1, 3, 4, 1], channels=[16, 32, 128, 256, 512, 1024],
                       cardinality=32, base_width=4, shortcut_root=True, **kwargs)


@register_model
def dla102x2(num_classes=1000, **kwargs):
    return _create_dla("dla102x2", num_classes, levels=[1, 1, 1, 3, 4, 1], channels=[16, 32, 128, 256, 512, 1024],
                       cardinality=64, base_width=4, shortcut_root=True, **kwargs)


@register_model
def dla169(num_classes=1000, **kwargs):
    return _create_dla("dla169", num_classes, levels=[1, 1, 2, 3, 5, 1], channels=[16, 32, 128, 256, 512, 1024],
                       shortcut_root=True, **kwargs)
