"""Mixup / CutMix: soft labels summing to 1 that mix sample i with sample N-1-i by the same lam
as the images; the training pipeline mixes, evaluation keeps sparse labels."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
from common.config import parse_args
from common.errors import ConfigError
from common.data import create_dataset
from common.data.mix import MixBatch

N, C, H = 6, 10, 8


def batch():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((N, 3, H, H)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5], np.int32)  # all distinct: each pair names two classes
    return images, labels


def test_mixup_blends_each_sample_with_its_mirror_by_the_label_weight():
    images, labels = batch()
    mixed, soft = MixBatch(C, mixup=0.4, prob=1.0, seed=3)(images, labels)
    assert soft.shape == (N, C) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    for i in range(N):
        j = N - 1 - i
        lam = soft[i, labels[i]]
        assert 0.0 < lam < 1.0
        np.testing.assert_allclose(soft[i, labels[j]], 1.0 - lam, rtol=1e-6)
        assert np.count_nonzero(soft[i]) == 2
        np.testing.assert_allclose(mixed[i], lam * images[i] + (1 - lam) * images[j], rtol=1e-5, atol=1e-6)


def test_cutmix_label_weight_is_the_pasted_area():
    images, labels = batch()
    mixed, soft = MixBatch(C, cutmix=1.0, prob=1.0, seed=5)(images, labels)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    for i in range(N):
        j = N - 1 - i
        from_partner = np.isclose(mixed[i], images[j]) & ~np.isclose(mixed[i], images[i])
        assert np.all(np.isclose(mixed[i], images[i]) | np.isclose(mixed[i], images[j]))
        pasted = from_partner.all(0).sum() / float(H * H)  # pixels taken from the mirror sample
        np.testing.assert_allclose(soft[i, labels[j]], pasted, atol=1e-6)


def test_prob_zero_leaves_the_batch_and_gives_one_hot():
    images, labels = batch()
    mixed, soft = MixBatch(C, mixup=0.4, cutmix=1.0, prob=0.0)(images, labels)
    np.testing.assert_array_equal(mixed, images)
    np.testing.assert_array_equal(soft, np.eye(C, dtype=np.float32)[labels])


def test_switch_prob_chooses_cutmix_or_mixup():
    draws = lambda p: [MixBatch(C, mixup=0.4, cutmix=1.0, switch_prob=p).draw(np.random.default_rng(s))[0]
                       for s in range(50)]
    assert set(draws(1.0)) == {"cutmix"} and set(draws(0.0)) == {"mixup"}
    assert set(draws(0.5)) == {"cutmix", "mixup"}


@pytest.mark.parametrize("argv, parse_needle, needle", [
    (["--mixup", "-1"], r"'mixup' must be in \[0, inf\), got -1", "'mixup' is a Beta"),
    (["--mix_prob", "1.5"], r"'mix_prob' must be in \[0, 1\], got 1.5", "'mix_prob' is a probability")])
def test_bad_mix_values_are_refused(demo_data, argv, parse_needle, needle):
    base = ["--data_path", str(demo_data), "--num_classes", "10", "--image_size", "32"]
    with pytest.raises(ConfigError, match=parse_needle):  # the key table, at parse time
        parse_args(base + argv)
    cfg = parse_args(base)  # and where the batch map is built, for callers that skip parse_args
    cfg[argv[0][2:]] = float(argv[1])
    with pytest.raises(ConfigError, match=needle):
        create_dataset(cfg, "train")


def _cfg(demo_data, *extra):
    return parse_args(["--data_path", str(demo_data), "--cls_label_path_train", "train_list.txt",
                       "--cls_label_path_val", "val_list.txt", "--num_classes", "10", "--image_size", "32",
                       "--batch_size", "8", "--num_parallel_workers", "1", "--deterministic", "True",
                       "--crop_pct", "1.0", *extra])


def _first_batch(cfg, split="train"):
    return next(create_dataset(cfg, split).create_tuple_iterator(num_epochs=1, output_numpy=True))


def test_training_pipeline_mixes_pairs_and_eval_stays_sparse(demo_data):
    plain_images, plain_labels = _first_batch(_cfg(demo_data))
    images, labels = _first_batch(_cfg(demo_data, "--mixup", "0.4", "--mix_prob", "1.0"))
    assert plain_labels.shape == (8,) and labels.shape == (8, 10)
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-6)
    # the deterministic pipeline augments each sample the same with and without mixing, so the
    # mixed batch is the plain batch blended with its mirror by the label weights
    onehot = np.eye(10, dtype=np.float32)[plain_labels]
    lam = next(float(labels[i] @ onehot[i]) for i in range(8) if plain_labels[i] != plain_labels[7 - i])
    np.testing.assert_allclose(labels, lam * onehot + (1 - lam) * onehot[::-1], atol=1e-6)
    np.testing.assert_allclose(images, lam * plain_images + (1 - lam) * plain_images[::-1], rtol=1e-4, atol=1e-4)
    val_images, val_labels = _first_batch(_cfg(demo_data, "--mixup", "0.4", "--cutmix", "1.0"), "val")
    assert val_labels.dtype == np.int32 and val_labels.shape == (8,)


def test_top1_accepts_the_eval_labels():
    """Model.eval's accuracy metric takes the sparse int labels the eval pipeline gives."""
    from mindspore.train import Top1CategoricalAccuracy
    metric = Top1CategoricalAccuracy()
    metric.clear()
    logits = np.eye(4, 10, dtype=np.float32)
    metric.update(logits, np.array([0, 1, 5, 3], np.int32))
    assert metric.eval() == pytest.approx(0.75)
