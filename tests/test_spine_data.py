"""common.data: folders and list files, sharding, corrupt images and missing datasets."""
import numpy as np
import pytest

from common.config import parse_args
from common.data import create_dataset, dataset_samples
from common.errors import DatasetError


def cfg_for(data, *extra):
    return parse_args(["--data_path", str(data), "--image_size", "32", "--batch_size", "16",
                       "--num_parallel_workers", "1", *extra])


def test_folder_and_list_file_give_the_same_samples(demo_data):
    by_folder = dataset_samples(cfg_for(demo_data), "val")
    by_list = dataset_samples(cfg_for(demo_data, "--cls_label_path_val", "val_list.txt"), "val")
    assert sorted(by_folder) == sorted(by_list)
    assert len(by_folder) == 359 and {label for _, label in by_folder} == set(range(10))


def test_train_batches_are_normalised_chw(demo_data):
    ds = create_dataset(cfg_for(demo_data), "train")
    image, label = next(ds.create_tuple_iterator(output_numpy=True))
    assert image.shape == (16, 3, 32, 32) and image.dtype == np.float32
    assert label.dtype == np.int32 and set(label) <= set(range(10))
    assert -3 < image.mean() < 3 and image.std() > 0.3  # normalised, not 0..255


def test_shards_are_disjoint_and_cover_the_split(demo_data):
    """The two shards together hold every image; equal shard sizes pad one shard with a single
    repeat (like torch's DistributedSampler). Multisets, since some digits images are identical."""
    from collections import Counter
    cfg = cfg_for(demo_data, "--batch_size", "1")

    def images(**kw):
        ds = create_dataset(cfg, "val", shuffle=False, **kw)
        return Counter(img.tobytes() for img, _ in ds.create_tuple_iterator(output_numpy=True))
    shards = [images(rank=r, group_size=2) for r in range(2)]
    full = images()
    assert sum(shards[0].values()) == sum(shards[1].values()) == 180  # ceil(359 / 2)
    assert not full - (shards[0] + shards[1])
    assert sum(((shards[0] + shards[1]) - full).values()) == 1


@pytest.mark.parametrize("extra, needle", [
    ([], "dataset folder not found"),
    (["--cls_label_path_train", "missing_list.txt"], "list file not found"),
])
def test_missing_dataset_is_one_clear_error(tmp_path, extra, needle):
    with pytest.raises(DatasetError, match=needle):
        create_dataset(cfg_for(tmp_path / "nowhere", *extra), "train")


def test_empty_dataset_is_one_clear_error(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        create_dataset(cfg_for(tmp_path), "train")


def test_corrupt_image_is_reported_by_path_and_skipped(demo_data, tmp_path, caplog):
    (tmp_path / "train" / "0").mkdir(parents=True)
    good = sorted((demo_data / "train" / "0").glob("*.png"))[:3]
    for i, src in enumerate(good):
        (tmp_path / "train" / "0" / f"ok{i}.png").write_bytes(src.read_bytes())
    bad = tmp_path / "train" / "0" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    ds = create_dataset(cfg_for(tmp_path, "--batch_size", "3"), "train")
    batches = list(ds.create_tuple_iterator(output_numpy=True))
    assert len(batches) == 1 and batches[0][0].shape[0] == 3
    assert [r.getMessage() for r in caplog.records].count(f"skipping unreadable image {bad}: damaged PNG header") == 1
