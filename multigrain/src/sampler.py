"""Repeated-augmentation sampler (MultiGrain; Hoffer et al. 2019) for ``mindspore.dataset``.

Every image drawn in an epoch is yielded ``repeat`` times in a row, so a batch holds groups of
``repeat`` consecutive copies of one image. The repetition happens at the index level, so the
dataset's ``map`` augments each copy independently. The mix loss relies on this layout: sample i
of a batch belongs to instance ``i // repeat``; batches must therefore hold whole groups, hence
``batch_size % repeat == 0`` (checked by ``check_batch_size``) and no shuffle after the sampler.

Sharding: each epoch, every rank draws the same permutation of the whole dataset (``seed + epoch``)
and takes its own contiguous slice of ``len(dataset) // num_shards`` images, so the ranks see
disjoint images and equal step counts. The ``len % num_shards`` left-over images of an epoch are
skipped (a different few each epoch), never duplicated across ranks.
"""
import numpy as np
import mindspore.dataset as ds


def check_batch_size(batch_size, repeat=3):
    """Raise ValueError unless ``batch_size`` is a positive multiple of ``repeat``."""
    if batch_size <= 0 or batch_size % repeat:
        lower = max(repeat, batch_size // repeat * repeat)
        raise ValueError(f"batch_size must be a multiple of repeat_aug={repeat} (each image appears {repeat} "
                         f"times per batch), got batch_size={batch_size}; use {lower} or {lower + repeat}")
    return batch_size


class RepeatedAugSampler(ds.Sampler):
    """Index sampler: shuffled (per epoch, by seed), sharded, each index repeated ``repeat`` times."""

    def __init__(self, dataset_size, repeat=3, num_shards=1, shard_id=0, shuffle=True, seed=0,
                 batch_size=None):
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
        if dataset_size < num_shards:
            raise ValueError(f"{dataset_size} images cannot be split over {num_shards} shards")
        if batch_size is not None:
            check_batch_size(batch_size, repeat)
        self.dataset_size_total = int(dataset_size)
        self.repeat = int(repeat)
        self.num_shards = int(num_shards)
        self.shard_id = int(shard_id)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.images_per_shard = self.dataset_size_total // self.num_shards
        super().__init__(num_samples=self.images_per_shard * self.repeat)

    def set_epoch(self, epoch):
        """Choose the epoch whose permutation the next iteration uses."""
        self.epoch = int(epoch)

    def epoch_indices(self, epoch):
        """This shard's sample indices for ``epoch`` (a numpy array, copies included)."""
        if self.shuffle:
            order = np.random.RandomState(self.seed + epoch).permutation(self.dataset_size_total)
        else:
            order = np.arange(self.dataset_size_total)
        start = self.shard_id * self.images_per_shard
        images = order[start:start + self.images_per_shard]
        return np.repeat(images, self.repeat)

    def __iter__(self):
        indices = self.epoch_indices(self.epoch)
        self.epoch += 1
        for index in indices:
            yield int(index)

    def __len__(self):
        return self.images_per_shard * self.repeat
