"""MultiGrain (Berman et al. 2019): ResNet-50 trunk, GeM pooling, classifier + retrieval embedding.

The trunk follows the MindSpore ModelZoo ResNet-50 layout and parameter names (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.down_sample_layer.0``, classifier ``end_point``), so ModelZoo
ResNet-50 checkpoints load into it. It is ResNet v1.5 (stride on the 3x3 conv), with symmetric
padding everywhere (``pad_mode='pad'``), BatchNorm eps 1e-5 / momentum 0.9 (= PyTorch 0.1).

Outputs:
- ``net(x)``: classifier logits, fc on the *un-normalised* GeM-pooled 2048-d embedding, so the
  standard ``Model.train/eval`` and export work unchanged;
- ``net.forward_train(x)``: ``(logits, normalized_embedding)`` for the mix loss;
- ``net.forward_embedding(x)``: the L2-normalised embedding used for retrieval;
  ``EmbeddingHead(net)`` wraps it as a cell for export.
"""
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore.common.initializer import HeNormal

from common.builder import IMAGENET_MEAN, IMAGENET_STD, build_model_with_cfg
from common.input_size import joined, window_side
from common.layers import BatchNorm2d, MaxPool2d
from common.registry import register_model
from multigrain.src.gem import GeM

default_cfgs = {
    "multigrain_resnet50": dict(input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                crop_pct=0.875, interpolation="bilinear", first_conv="conv1",
                                classifier="end_point", num_classes=1001, gem_p=3.0,
                                architecture="multigrain_resnet50"),
}
default_cfgs["multigrain"] = dict(default_cfgs["multigrain_resnet50"], architecture="multigrain")  # the alias


def _conv(in_channels, out_channels, kernel_size, stride=1):
    padding = kernel_size // 2
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                     pad_mode="pad" if padding else "valid", padding=padding, has_bias=False,
                     weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def _bn(channels, zero_init=False, relu=False):
    return BatchNorm2d(channels, eps=1e-5, momentum=0.9, relu=relu, gamma_init="zeros" if zero_init else "ones")


class ResidualBlock(nn.Cell):
    """Bottleneck block (1x1 -> 3x3(stride) -> 1x1, expansion 4), ModelZoo names."""
    expansion = 4

    def __init__(self, in_channel, out_channel, stride=1, zero_init_last_bn=False):
        super().__init__()
        channel = out_channel // self.expansion
        self.conv1 = _conv(in_channel, channel, 1)
        self.bn1 = _bn(channel, relu=True)
        self.conv2 = _conv(channel, channel, 3, stride)
        self.bn2 = _bn(channel, relu=True)
        self.conv3 = _conv(channel, out_channel, 1)
        self.bn3 = _bn(out_channel, zero_init=zero_init_last_bn)
        self.relu = nn.ReLU()
        self.down_sample = stride != 1 or in_channel != out_channel
        self.down_sample_layer = None
        if self.down_sample:
            self.down_sample_layer = nn.SequentialCell([_conv(in_channel, out_channel, 1, stride),
                                                        _bn(out_channel)])

    def construct(self, x):
        identity = x
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        out = self.bn3(self.conv3(out))
        if self.down_sample:
            identity = self.down_sample_layer(identity)
        return self.relu(out + identity)


def l2_normalize(x, eps=1e-6):
    """``x / (||x||_2 + eps)`` along the last axis, as MultiGrain's ``l2n``."""
    return x / (ops.norm(x, dim=-1, keepdim=True) + eps)


def _from_torch_resnet(key):
    """timm / torchvision ResNet names -> ours (ModelZoo's): ``downsample`` is ``down_sample_layer``,
    ``fc`` is ``end_point``; so an ImageNet ResNet-50 initialises MultiGrain, as in the paper."""
    key = key.replace(".downsample.", ".down_sample_layer.")
    return "end_point." + key[len("fc."):] if key.startswith("fc.") else key


class MultiGrain(nn.Cell):
    """ResNet trunk -> GeM -> embedding -> fc classifier; see the module docstring."""

    def __init__(self, layer_nums=(3, 4, 6, 3), num_classes=1001, gem_p=3.0, gem_eps=1e-6,
                 zero_init_last_bn=False, drop_rate=0.0):
        super().__init__()
        in_channels = (64, 256, 512, 1024)
        out_channels = (256, 512, 1024, 2048)
        strides = (1, 2, 2, 2)
        self.num_classes = num_classes
        self.num_features = out_channels[-1]
        self.conv1 = _conv(3, 64, 7, stride=2)
        self.bn1 = _bn(64, relu=True)
        self.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)  # after a ReLU: zero padding is exact
        # timm's indices: 0 the stem (after its ReLU, fused into bn1), 1-4 layer1-layer4
        stages, self.feature_info = [], [dict(num_chs=64, reduction=2, module="bn1")]
        for i, (n, cin, cout, stride) in enumerate(zip(layer_nums, in_channels, out_channels, strides)):
            blocks = [ResidualBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1, zero_init_last_bn)
                      for j in range(n)]
            stages.append(nn.SequentialCell(blocks))
            self.feature_info.append(dict(num_chs=cout, reduction=4 * 2 ** i, module=f"layer{i + 1}"))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = GeM(p=gem_p, eps=gem_eps)
        self.drop_rate = drop_rate
        # on the classification path only, never on the embedding (no parameters: checkpoint names unchanged)
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 else nn.Identity()
        self.end_point = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes):
        return nn.Dense(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self):
        return self.end_point

    def reset_classifier(self, num_classes):
        """New classifier with ``num_classes`` outputs; 0 makes ``net(x)`` return the pooled embedding."""
        self.num_classes = num_classes
        self.end_point = self._make_classifier(num_classes)

    def set_gem_p(self, p):
        """Change the GeM exponent for evaluation (training keeps the constructor's p)."""
        self.pool.set_p(p)

    def get_gem_p(self):
        return self.pool.get_p()

    def forward_features(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits=False):
        x = self.pool(x)
        return x if pre_logits else self.end_point(self.dropout(x))

    def forward_train(self, x):
        """(classifier logits, L2-normalised embedding) from one forward pass."""
        embedding = self.forward_head(self.forward_features(x), pre_logits=True)
        return self.end_point(self.dropout(embedding)), l2_normalize(embedding)

    def forward_embedding(self, x):
        """L2-normalised GeM embedding (retrieval descriptor)."""
        return l2_normalize(self.forward_head(self.forward_features(x), pre_logits=True))

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


class EmbeddingHead(nn.Cell):
    """Wraps a MultiGrain so that calling it returns the normalised embedding (for export)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x):
        return self.net.forward_embedding(x)


class MultiGrainOutputs(nn.Cell):
    """Wraps a MultiGrain so that calling it returns ``(logits, normalised embedding)``:
    classification and retrieval metrics from the same forward pass."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x):
        return self.net.forward_train(x)


def feature_sides(model, image_size, strides=(1, 2, 2, 2)):
    """Side of each ``feature_info`` map for ``image_size`` px inputs, walking the ResNet trunk
    (``common.input_size``): every downsampling is a padded conv or pool giving ``ceil(n / 2)``, and
    a block's 3x3/s conv meets its 1x1/s shortcut at the same side, so every size passes."""
    side = window_side(image_size, 7, 2, 3)                                  # conv1 -> bn1
    sides = [side]
    side = window_side(side, 3, 2, 1)                                        # maxpool
    for i, stride in enumerate(strides, 1):                                  # layer1..4, first block
        side = joined(i, f"layer{i} (a {side}x{side} map)",
                      **{f"its 3x3/{stride} conv": window_side(side, 3, stride, 1),
                         f"its 1x1/{stride} shortcut": window_side(side, 1, stride)})
        sides.append(side)
    return sides


def _create_multigrain(variant, num_classes, **kwargs):
    cfg = default_cfgs[variant]
    kwargs.setdefault("gem_p", cfg["gem_p"])
    return build_model_with_cfg(MultiGrain, variant, cfg, num_classes=num_classes, **kwargs)


@register_model
def multigrain_resnet50(num_classes=1001, **kwargs):
    """MultiGrain ResNet-50, GeM p = 3 (the ModelZoo card's 1001 classes by default)."""
    return _create_multigrain("multigrain_resnet50", num_classes, layer_nums=(3, 4, 6, 3), **kwargs)


@register_model
def multigrain(num_classes=1001, **kwargs):
    """Alias of ``multigrain_resnet50``."""
    return _create_multigrain("multigrain", num_classes, layer_nums=(3, 4, 6, 3), **kwargs)
