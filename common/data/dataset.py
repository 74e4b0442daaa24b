"""``mindspore.dataset`` pipelines over (path, label) samples, sharded by rank.

Every split: a Python source that only reads the files (``ImageSource``: bytes, checked by
``common.data.image_file``), then ``map`` with MindSpore's C++ ``Decode`` /
``RandomCropDecodeResize`` and the configured augmentation in ``num_parallel_workers`` threads
(C++ ops: no GIL, so workers scale). An unreadable image is reported once by path and dropped from
the epoch (a ``filter`` before decoding), so every good image of the epoch is still seen exactly
once; the epoch then has fewer samples than files (its last batch may be missing). In dataset
sink mode (Ascend/GPU) the device needs every epoch's batches, so there the next readable file
stands in for an unreadable one instead.

With ``deterministic: True`` the training pipeline is a function of (seed, epoch) only, so a run
resumed after epoch k sees exactly the batches an uninterrupted run sees in epoch k+1:
``EpochKeySampler`` draws epoch e's order from (seed, e) and hands each sample a key that
encodes its slot in the run; ``SeededImageSource`` decodes and augments each sample with the
dataset seed set from (seed, rank, slot), and mixup/cutmix seed each batch from its first key.
(MindSpore's own random ops draw from one stream per pipeline, which a restart would start over.)
That path runs the ops one sample at a time in one Python worker: slower (see benchmark.py).
"""
import logging
import os
import threading

import numpy as np
import mindspore.dataset as ds
import mindspore.dataset.vision as vision

from common.data.image_file import read_encoded
from common.data.mix import MixBatch, mix_enabled
from common.data.samples import DatasetError, dataset_samples
from common.data.transforms import create_transforms

_logger = logging.getLogger(__name__)
_NO_LABEL = np.int32(-1)  # marks a sample whose file could not be read; filtered out before decoding
_NO_IMAGE = np.zeros(1, np.uint8)
# How many list entries are checked for existence up front (a wrong data_path fails in one line).
_CHECKED_ENTRIES = 32
# Sink mode: how many following files may stand in for an unreadable one.
_MAX_SUBSTITUTES = 16
# Unreadable images named one by one; after that only counted (a wrong root must not flood the log).
_MAX_REPORTED = 100


class SkipReport:
    """Reports each unreadable file once per process, by path (one log line)."""
    _lock = threading.Lock()
    _seen = set()

    @classmethod
    def report(cls, err, path):
        with cls._lock:
            if path in cls._seen:
                return
            cls._seen.add(path)
            count = len(cls._seen)
        if count <= _MAX_REPORTED:
            _logger.warning("skipping %s", err)
        if count == _MAX_REPORTED:
            _logger.warning("%d unreadable images skipped; further ones are skipped without a line each", count)


class ImageSource:
    """Random-access source of (encoded image bytes, label): no decoding here (the C++ map does it).

    An unreadable file is reported by path and yields label -1, which the pipeline filters out;
    with ``substitute`` the next readable file is yielded instead (dataset sink mode: the device
    runs a fixed number of steps per epoch, and an epoch short of a batch would leave it waiting)."""

    def __init__(self, samples, substitute=False):
        self.samples, self.substitute = samples, substitute

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        for offset in range(_MAX_SUBSTITUTES if self.substitute else 1):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                return read_encoded(path), np.int32(label)
            except DatasetError as err:
                SkipReport.report(err, path)
        if self.substitute:
            raise DatasetError(f"{_MAX_SUBSTITUTES} unreadable images in a row from {self.samples[index][0]}")
        return _NO_IMAGE, _NO_LABEL


def check_list_entries(samples, source):
    """A list file whose first entries all miss is a wrong ``data_path``: one line, not a log flood."""
    head = samples[:_CHECKED_ENTRIES]
    if not any(os.path.exists(path) for path, _ in head):
        raise DatasetError(f"none of the first {len(head)} images listed in {source} exists "
                           f"(first: {head[0][0]}); check data_path")


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
    the dataset seed set from (seed, rank, slot); yields (CHW image, label, key)."""

    def __init__(self, samples, transforms, seed, rank=0, image_size=224):
        super().__init__(samples)
        self.transforms, self.seed, self.rank = [vision.Decode()] + transforms, int(seed), int(rank)
        self.unreadable = np.zeros((3, image_size, image_size), np.float32)

    def __getitem__(self, key):
        slot, index = divmod(int(key), len(self.samples))
        image, label = super().__getitem__(index)
        if label < 0:
            return self.unreadable, label, np.int64(key)
        ds.config.set_seed(sample_seed(self.seed, self.rank, slot))
        try:
            for op in self.transforms:
                image = op(image)
        except RuntimeError:  # passed the file checks, refused by C++ Decode: named here too
            path = self.samples[index][0]
            SkipReport.report(DatasetError(f"unreadable image {path}: MindSpore's Decode refused it"), path)
            return self.unreadable, _NO_LABEL, np.int64(key)
        return image, label, np.int64(key)


def _readable(label):
    return bool(label >= 0)


def _batches(rows, batch, drop_remainder):
    return rows // batch if drop_remainder else -(-rows // batch)


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
    list_key = "cls_label_path_train" if is_training else "cls_label_path_val"
    if cfg[list_key]:
        check_list_entries(samples, cfg[list_key])
    shuffle = is_training if shuffle is None else shuffle
    workers = max(1, int(cfg.num_parallel_workers))
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
        source = ds.GeneratorDataset(
            SeededImageSource(samples, create_transforms(cfg, is_training), cfg.seed, rank, cfg.image_size),
            columns + ["key"], sampler=key_sampler, num_parallel_workers=1, python_multiprocessing=False)
        dataset = source.filter(_readable, input_columns=["label"], num_parallel_workers=1)
    else:
        if skip_samples:
            from common.data.resume import ShardSampler, SkipSampler
            inner = sampler if sampler is not None else ShardSampler(len(samples), rank, group_size, shuffle, cfg.seed)
            sampler = SkipSampler(inner, skip_samples)
        kwargs = dict(sampler=sampler) if sampler is not None else dict(
            shuffle=shuffle, num_shards=group_size if group_size > 1 else None,
            shard_id=rank if group_size > 1 else None)
        # Reading is ~5% of a decode's CPU, and Python reader threads contend for the GIL (2 readers
        # were slower than 1 beside 2 decode workers on 2 cores): one reader per 4 decode workers.
        sunk = is_training and cfg.dataset_sink_mode and cfg.device_target != "CPU"  # MindSpore sinks off CPU
        source = ds.GeneratorDataset(ImageSource(samples, substitute=sunk), columns,
                                     num_parallel_workers=max(1, workers // 4), python_multiprocessing=False, **kwargs)
        # A file that passes ImageSource's checks and still fails C++ Decode (rare: damaged
        # entropy-coded data that libjpeg refuses) is dropped by MindSpore, which logs it (no path).
        # Measured in 2.10: SKIP drops exactly that sample here (empty/truncated files, where SKIP
        # itself misbehaves, never reach the decoder).
        ds.config.set_error_samples_mode(ds.config.ErrorSamplesMode.SKIP)
        # one filter thread: a label test per row; MindSpore's default would start up to 8 Python threads
        dataset = source if sunk else source.filter(_readable, input_columns=["label"], num_parallel_workers=1)
        dataset = dataset.map(create_transforms(cfg, is_training, decode=True), input_columns="image",
                              num_parallel_workers=workers)
    rows = source.get_dataset_size()  # before the filter: known without reading the data
    dataset = dataset.batch(batch, drop_remainder=is_training, num_parallel_workers=workers)
    if is_training and mix_enabled(cfg):
        mix_columns = columns + ["key"] if keyed else columns
        dataset = dataset.map(MixBatch.from_config(cfg, rank), input_columns=mix_columns,
                              output_columns=mix_columns, num_parallel_workers=1)
    dataset = dataset.project(columns) if keyed else dataset
    # The filter makes MindSpore count batches by reading the whole epoch; the file count gives
    # it (an epoch with unreadable images may end a batch early).
    dataset.dataset_size = _batches(rows, batch, is_training)
    return dataset
