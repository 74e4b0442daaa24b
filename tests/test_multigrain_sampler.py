"""Repeated-augmentation sampler: x3 consecutive copies, disjoint rank shards, per-epoch shuffle,
independent augmentation of each copy, batch-size check."""
import numpy as np
import pytest

import common  # noqa: F401
import mindspore.dataset as ds

from multigrain.src.sampler import RepeatedAugSampler, check_batch_size


def test_each_image_three_times_in_a_row():
    sampler = RepeatedAugSampler(20, repeat=3, seed=1)
    idx = sampler.epoch_indices(0)
    assert len(idx) == 60 and len(sampler) == 60
    groups = idx.reshape(-1, 3)
    assert (groups == groups[:, :1]).all()
    assert sorted(groups[:, 0]) == list(range(20))          # every image once per epoch


def test_rank_shards_are_disjoint_and_cover_the_dataset():
    n, shards = 103, 4
    for epoch in range(3):
        per_rank = [RepeatedAugSampler(n, 3, shards, rank, seed=7).epoch_indices(epoch) for rank in range(shards)]
        images = [set(idx[::3]) for idx in per_rank]
        assert all(len(idx) == 3 * (n // shards) for idx in per_rank)
        for a in range(shards):
            for b in range(a + 1, shards):
                assert not images[a] & images[b]
        assert len(set().union(*images)) == n // shards * shards   # 3 left-over images skipped


def test_epochs_reshuffle_deterministically():
    sampler = RepeatedAugSampler(50, seed=3)
    e0, e1 = sampler.epoch_indices(0), sampler.epoch_indices(1)
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, RepeatedAugSampler(50, seed=3).epoch_indices(0))
    assert list(RepeatedAugSampler(6, shuffle=False).epoch_indices(0)) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4,
                                                                           4, 4, 5, 5, 5]


def test_in_a_pipeline_copies_are_augmented_independently_and_epochs_advance():
    data = {"x": np.arange(8, dtype=np.float32)}
    sampler = RepeatedAugSampler(8, repeat=3, num_shards=2, shard_id=1, seed=5)
    dataset = ds.NumpySlicesDataset(data, sampler=sampler)
    dataset = dataset.map(lambda x: x + np.float32(np.random.rand() * 0.5), input_columns=["x"])
    dataset = dataset.batch(6)
    assert dataset.get_dataset_size() == 2
    iterator = dataset.create_tuple_iterator(num_epochs=2, output_numpy=True)
    for epoch in range(2):
        values = np.concatenate([batch[0] for batch in iterator])
        images = np.floor(values).astype(int)
        np.testing.assert_array_equal(images, RepeatedAugSampler(8, 3, 2, 1, seed=5).epoch_indices(epoch))
        noise = (values - images).reshape(-1, 3)
        assert all(len(set(np.round(row, 6))) == 3 for row in noise)   # three different augmentations


def test_batch_size_must_be_a_multiple_of_repeat():
    assert check_batch_size(30, 3) == 30
    with pytest.raises(ValueError, match=r"multiple of repeat_aug=3.*got batch_size=32; use 30 or 33"):
        check_batch_size(32, 3)
    with pytest.raises(ValueError, match="multiple of repeat_aug=3"):
        RepeatedAugSampler(100, repeat=3, batch_size=40)
    with pytest.raises(ValueError):
        RepeatedAugSampler(10, num_shards=2, shard_id=2)
