"""Train and eval image transforms (``mindspore.dataset.vision``), shared by train/eval/predict."""
import re

import mindspore.dataset.vision as vision
from mindspore.dataset.vision import Inter

from common.errors import ConfigError

_INTERPOLATION = {"bilinear": Inter.BILINEAR, "bicubic": Inter.BICUBIC, "nearest": Inter.NEAREST}


def _interpolation(name):
    if name not in _INTERPOLATION:
        raise ConfigError(f"config error: interpolation must be one of {', '.join(_INTERPOLATION)}, not '{name}'")
    return _INTERPOLATION[name]


def eval_resize_size(image_size, crop_pct):
    """Shorter side before the center crop (224 / 0.875 = 256)."""
    return int(image_size / crop_pct)


def create_transforms(cfg, is_training, decode=False):
    """HWC uint8 RGB -> normalised CHW float32. Training adds the configured augmentation.

    ``decode``: the input is the encoded file (1-D uint8); training then crops while decoding
    (``RandomCropDecodeResize`` decodes only the crop's part of a JPEG, the ModelZoo way)."""
    size, inter = cfg.image_size, _interpolation(cfg.interpolation)
    normalize = vision.Normalize(mean=[m * 255 for m in cfg.mean], std=[s * 255 for s in cfg.std])
    if not is_training:
        return [vision.Decode()] * decode + [vision.Resize(eval_resize_size(size, cfg.crop_pct), inter),
                                             vision.CenterCrop(size), normalize, vision.HWC2CHW()]
    for key in ("hflip", "re_prob"):
        if not 0.0 <= cfg[key] <= 1.0:
            raise ConfigError(f"config error: '{key}' is a probability in [0, 1], got {cfg[key]}")
    crop = vision.RandomCropDecodeResize if decode else vision.RandomResizedCrop
    ops = [crop(size, scale=tuple(cfg.scale), ratio=tuple(cfg.ratio), interpolation=inter)]
    if cfg.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(cfg.hflip))
    ops += _auto_augment(cfg.auto_augment, inter)
    ops += [normalize, vision.HWC2CHW()]
    if cfg.re_prob > 0:
        ops.append(vision.RandomErasing(prob=cfg.re_prob))
    return ops


RANDAUGMENT_BINS = 31  # MindSpore's RandAugment default num_magnitude_bins: magnitude 0..30
_RANDAUGMENT = re.compile(r"randaugment((?:-[mn]\d+)*)")


def _auto_augment(spec, inter):
    """'' | 'autoaugment' (ImageNet policy) | 'randaugment[-mM][-nN]' (magnitude M, default 9;
    N ops per image, default 2)."""
    if not spec:
        return []
    if spec == "autoaugment":
        return [vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET, interpolation=inter)]
    match = _RANDAUGMENT.fullmatch(spec)
    if not match:
        raise ConfigError(f"config error: auto_augment must be '', 'autoaugment' or 'randaugment[-mM][-nN]' "
                          f"(e.g. randaugment-m9-n2), not '{spec}'")
    args = {part[0]: int(part[1:]) for part in match.group(1).split("-")[1:]}
    magnitude, num_ops = args.get("m", 9), args.get("n", 2)
    if magnitude >= RANDAUGMENT_BINS or num_ops < 1:
        raise ConfigError(f"config error: auto_augment '{spec}': magnitude must be 0..{RANDAUGMENT_BINS - 1} "
                          f"and the number of ops >= 1")
    return [vision.RandAugment(num_ops=num_ops, magnitude=magnitude, interpolation=inter)]
