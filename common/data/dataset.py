"""``mindspore.dataset`` pipelines over (path, label) samples, sharded by rank.

With ``deterministic: True`` the training pipeline is a function of (seed, epoch) only, so a run
resumed after epoch k sees exactly the batches an uninterrupted run sees in epoch k+1:
``EpochKeySampler`` draws epoch e's order from (seed, e) and hands each sample a key that
encodes its slot in the run; ``SeededImageSource`` augments each sample with the dataset seed
set from (seed, rank, slot), and mixup/cutmix seed each batch from its first key. (MindSpore's
own random ops draw from one stream per pipeline, which a restart would start over.)
"""
import logging

import numpy as np
import mindspore.dataset as ds
from PIL import Image

from common.data.mix import MixBatch, mix_enabled
from common.data.samples import DatasetError, dataset_samples
from common.data.transforms import create_transforms

_logger = logging.getLogger(__name__)
# How many following samples an unreadable image may be replaced by before we give up.
_MAX_SUBSTITUTES = 16


def read_rgb(path):
    """An image file as an HWC uint8 RGB array; raises ``DatasetError`` naming the path."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError(f"unreadable image {path}: {err}") from None


class ImageSource:
    """Random-access source: decodes with PIL so that a corrupt file is reported by path.

    An unreadable image is logged once (with its path) and replaced by the next readable one,
    so one bad file in a million does not stop an epoch."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.read(index)

    def read(self, index):
        for offset in range(_MAX_SUBSTITUTES):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                return read_rgb(path), np.int32(label)
            except DatasetError as err:
                _logger.warning("skipping %s", err)
                print(f"WARNING: skipping {err}", flush=True)
        raise DatasetError(f"{_MAX_SUBSTITUTES} unreadable images in a row from {self.samples[index][0]}")


def sample_seed(seed, rank, slot):
    """A 32-bit dataset seed for one sample slot of the run."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(slot)]).generate_state(1)[0])


class EpochKeySampler(ds.Sampler):
    """Epoch e's order drawn from (seed, e) alone; yields keys ``slot * n + index`` where
    ``slot = e * per_epoch + position`` numbers the sample's place in the whole run.

    ``inner`` (a Python sampler such as MultiGrain's) gives the indices instead of a permutation;
    its ``set_epoch`` is called when it has one. Counting starts at ``start_epoch`` (resume)."""

    def __init__(self, num_images, seed, rank=0, group_size=1, shuffle=True, start_epoch=0, inner=None, skip=0):
        self.n, self.seed, self.rank, self.group_size = int(num_images), int(seed), int(rank), int(group_size)
        self.shuffle, self.epoch, self.inner = shuffle, int(start_epoch), inner
        self.skip = int(skip)  # positions of each epoch left out: the rest of an epoch (mid-epoch resume)
        self.per_epoch = len(inner) if inner is not None else self.n // self.group_size
        super().__init__(num_samples=self.per_epoch - self.skip)

    def epoch_indices(self, epoch):
        if self.inner is not None:
            if hasattr(self.inner, "set_epoch"):
                self.inner.set_epoch(epoch)
            return np.fromiter(iter(self.inner), np.int64)
        order = np.random.RandomState([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        return order[self.rank * self.per_epoch:(self.rank + 1) * self.per_epoch]

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        for position, index in enumerate(self.epoch_indices(epoch)):
            if position < self.skip:
                continue
            yield int((epoch * self.per_epoch + position) * self.n + index)

    def __len__(self):
        return self.per_epoch - self.skip


class SeededImageSource(ImageSource):
    """``ImageSource`` taking ``EpochKeySampler`` keys: decodes and augments each sample with
    the dataset seed set from (seed, rank, slot); yields (image, label, key)."""

    def __init__(self, samples, transforms, seed, rank=0):
        super().__init__(samples)
        self.transforms, self.seed, self.rank = transforms, int(seed), int(rank)

    def __getitem__(self, key):
        slot, index = divmod(int(key), len(self.samples))
        image, label = self.read(index)
        ds.config.set_seed(sample_seed(self.seed, self.rank, slot))
        for op in self.transforms:
            image = op(image)
        return image, label, np.int64(key)


def create_dataset(cfg, split, rank=0, group_size=1, sampler=None, batch_size=None, shuffle=None,
                   start_epoch=0, skip_samples=0):
    """Batched (image, label) dataset for ``split``; training shards by rank, shuffles and mixes
    (mixup/cutmix: labels become (N, num_classes) soft labels).

    ``sampler`` (e.g. MultiGrain's repeated-augmentation sampler) replaces shuffle/sharding.
    ``start_epoch``: the first epoch this pipeline serves (resume; used by the deterministic order).
    ``skip_samples``: samples of each epoch left out: with them the dataset serves the rest of the
    epoch a mid-epoch checkpoint was saved in (used for that one epoch)."""
    is_training = split == "train"
    samples = dataset_samples(cfg, split)
    shuffle = is_training if shuffle is None else shuffle
    workers = max(1, int(cfg.num_parallel_workers))
    transforms = create_transforms(cfg, is_training)
    batch = batch_size or (cfg.batch_size if is_training else (cfg.eval_batch_size or cfg.batch_size))
    if is_training and len(samples) // group_size < batch:
        raise DatasetError(f"{split} split has {len(samples)} images for {group_size} rank(s): "
                           f"fewer than one batch of {batch}")
    columns = ["image", "label"]
    keyed = cfg.deterministic and is_training
    if cfg.deterministic:
        ds.config.set_seed(int(cfg.seed))
        workers = 1
    if keyed:
        if sampler is not None and not isinstance(sampler, ds.Sampler):
            raise DatasetError("deterministic: True needs a Python ds.Sampler (with __iter__), "
                               f"not {type(sampler).__name__}")
        key_sampler = EpochKeySampler(len(samples), cfg.seed, rank, group_size, shuffle, start_epoch, inner=sampler,
                                      skip=skip_samples)
        dataset = ds.GeneratorDataset(SeededImageSource(samples, transforms, cfg.seed, rank), columns + ["key"],
                                      sampler=key_sampler, num_parallel_workers=1, python_multiprocessing=False)
    else:
        if skip_samples:
            from common.data.resume import ShardSampler, SkipSampler
            inner = sampler if sampler is not None else ShardSampler(len(samples), rank, group_size, shuffle, cfg.seed)
            sampler = SkipSampler(inner, skip_samples)
        kwargs = dict(sampler=sampler) if sampler is not None else dict(
            shuffle=shuffle, num_shards=group_size if group_size > 1 else None,
            shard_id=rank if group_size > 1 else None)
        dataset = ds.GeneratorDataset(ImageSource(samples), columns, num_parallel_workers=workers,
                                      python_multiprocessing=False, **kwargs)
        dataset = dataset.map(transforms, input_columns="image", num_parallel_workers=workers)
    dataset = dataset.batch(batch, drop_remainder=is_training, num_parallel_workers=workers)
    if is_training and mix_enabled(cfg):
        mix_columns = columns + ["key"] if keyed else columns
        dataset = dataset.map(MixBatch.from_config(cfg, rank), input_columns=mix_columns,
                              output_columns=mix_columns, num_parallel_workers=1)
    return dataset.project(columns) if keyed else dataset
