"""AutoAugment / RandAugment / random erasing are in the training pipeline when configured, and
a bad spec stops with one clear line."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore.dataset.vision as vision

from common.config import parse_args
from common.errors import ConfigError
from common.data import create_dataset, create_transforms


def _cfg(*extra, data=None):
    args = ["--image_size", "32", "--crop_pct", "1.0", "--hflip", "0.0", "--scale", "[1.0, 1.0]",
            "--ratio", "[1.0, 1.0]", "--batch_size", "8", "--num_parallel_workers", "1", "--deterministic", "True"]
    if data is not None:
        args += ["--data_path", str(data), "--cls_label_path_train", "train_list.txt"]
    return parse_args(args + list(extra))


def _kinds(cfg):
    return [type(op) for op in create_transforms(cfg, is_training=True)]


def test_nothing_extra_by_default():
    kinds = _kinds(_cfg())
    assert not {vision.AutoAugment, vision.RandAugment, vision.RandomErasing} & set(kinds)


def test_autoaugment_uses_the_imagenet_policy():
    ops = create_transforms(_cfg("--auto_augment", "autoaugment"), is_training=True)
    auto = [op for op in ops if isinstance(op, vision.AutoAugment)]
    assert len(auto) == 1 and auto[0].policy == vision.AutoAugmentPolicy.IMAGENET
    assert not any(isinstance(op, vision.AutoAugment) for op in create_transforms(
        _cfg("--auto_augment", "autoaugment"), is_training=False))


@pytest.mark.parametrize("spec, magnitude, num_ops", [("randaugment", 9, 2), ("randaugment-m7-n3", 7, 3),
                                                      ("randaugment-n1", 9, 1)])
def test_randaugment_spec(spec, magnitude, num_ops):
    ops = [op for op in create_transforms(_cfg("--auto_augment", spec), True) if isinstance(op, vision.RandAugment)]
    assert len(ops) == 1 and (ops[0].magnitude, ops[0].num_ops) == (magnitude, num_ops)


def test_random_erasing_runs_after_normalisation():
    kinds = _kinds(_cfg("--re_prob", "0.25"))
    assert kinds.index(vision.RandomErasing) > kinds.index(vision.HWC2CHW)
    erase = create_transforms(_cfg("--re_prob", "0.25"), True)[-1]
    assert erase.prob == 0.25


@pytest.mark.parametrize("spec", ["autoaugmentt", "randaugment-m40", "randaugment-x3", "rand-m9", "randaugment-n0"])
def test_bad_auto_augment_is_refused_in_one_line(spec):
    with pytest.raises(ConfigError) as err:
        create_transforms(_cfg("--auto_augment", spec), True)
    assert f"'{spec}'" in err.value.message and "\n" not in err.value.message


@pytest.mark.parametrize("key", ["re_prob", "hflip"])
def test_probability_out_of_range_is_refused(key):
    # at parse time by the key table, and again where the transforms are built (callers that skip parse_args)
    with pytest.raises(ConfigError, match=rf"'{key}' must be in \[0, 1\], got 1.5"):
        _cfg(f"--{key}", "1.5")
    cfg = _cfg()
    cfg[key] = 1.5
    with pytest.raises(ConfigError, match=f"'{key}' is a probability"):
        create_transforms(cfg, True)


def _first_images(cfg):
    return next(create_dataset(cfg, "train").create_tuple_iterator(num_epochs=1, output_numpy=True))[0]


def test_augmentations_change_the_images_the_pipeline_gives(demo_data):
    """Crop/flip are made identity, so any difference comes from the configured op."""
    plain = _first_images(_cfg(data=demo_data))
    for extra in (("--auto_augment", "autoaugment"), ("--auto_augment", "randaugment-m15-n2")):
        assert not np.allclose(_first_images(_cfg(*extra, data=demo_data)), plain), extra
    erased = _first_images(_cfg("--re_prob", "1.0", data=demo_data))
    changed = ~np.isclose(erased, plain)
    assert changed.any()
    # random erasing fills a rectangle with zeros in every channel (the default value 0)
    assert np.all(erased[changed] == 0.0)
