"""Train and eval image transforms (``mindspore.dataset.vision``), shared by train/eval/predict."""
import mindspore.dataset.vision as vision
from mindspore.dataset.vision import Inter

_INTERPOLATION = {"bilinear": Inter.BILINEAR, "bicubic": Inter.BICUBIC, "nearest": Inter.NEAREST}


def _interpolation(name):
    if name not in _INTERPOLATION:
        raise ValueError(f"interpolation must be one of {', '.join(_INTERPOLATION)}, not '{name}'")
    return _INTERPOLATION[name]


def eval_resize_size(image_size, crop_pct):
    """Shorter side before the center crop (224 / 0.875 = 256)."""
    return int(image_size / crop_pct)


def create_transforms(cfg, is_training):
    """HWC uint8 RGB -> normalised CHW float32. Training adds the configured augmentation."""
    size, inter = cfg.image_size, _interpolation(cfg.interpolation)
    normalize = vision.Normalize(mean=[m * 255 for m in cfg.mean], std=[s * 255 for s in cfg.std])
    if not is_training:
        return [vision.Resize(eval_resize_size(size, cfg.crop_pct), inter), vision.CenterCrop(size),
                normalize, vision.HWC2CHW()]
    ops = [vision.RandomResizedCrop(size, scale=tuple(cfg.scale), ratio=tuple(cfg.ratio), interpolation=inter)]
    if cfg.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(cfg.hflip))
    ops += _auto_augment(cfg.auto_augment, inter)
    ops += [normalize, vision.HWC2CHW()]
    if cfg.re_prob > 0:
        ops.append(vision.RandomErasing(prob=cfg.re_prob))
    return ops


def _auto_augment(spec, inter):
    """'' | 'autoaugment' (ImageNet policy) | 'randaugment[-mM-nN]' (magnitude M, N ops)."""
    if not spec:
        return []
    if spec == "autoaugment":
        return [vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET, interpolation=inter)]
    if spec.startswith("randaugment"):
        args = {part[0]: int(part[1:]) for part in spec.split("-")[1:] if part[:1] in ("m", "n")}
        return [vision.RandAugment(num_ops=args.get("n", 2), magnitude=args.get("m", 9), interpolation=inter)]
    raise ValueError(f"auto_augment must be '', 'autoaugment' or 'randaugment[-m9-n2]', not '{spec}'")
