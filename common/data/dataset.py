"""``mindspore.dataset`` pipelines over (path, label) samples, sharded by rank.

Every split: a Python source that only reads the files (``ImageSource``: bytes, checked by
``common.data.image_file``), then ``map`` with MindSpore's C++ ``Decode`` /
``RandomCropDecodeResize`` and the configured augmentation in ``num_parallel_workers`` threads
(C++ ops: no GIL, so workers scale). The source reads the epoch's order itself (``ShardOrder``:
shuffle and shards, or a family's sampler). An unreadable image is reported once by path and left
out of the epoch by the source, so every good image of the epoch is still seen exactly once; the
epoch then has fewer samples than files (its last batch may be missing). In dataset
sink mode (Ascend/GPU) the device needs every epoch's batches, so there the next readable file
stands in for an unreadable one instead.

With ``deterministic: True`` the training pipeline is a function of (seed, epoch) only, so a run
resumed after epoch k sees exactly the batches an uninterrupted run sees in epoch k+1:
``EpochKeySampler`` takes epoch e's order (``ShardOrder``: from (seed, e)) and hands each sample a key that
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
from common.data.order import ShardOrder
from common.data.samples import dataset_samples
from common.data.transforms import create_transforms
from common.errors import DatasetError

_logger = logging.getLogger(__name__)
# deterministic path: marks a sample whose file could not be read (filtered out); -1 is an unlabeled image
_NO_LABEL = np.int32(np.iinfo(np.int32).min)
# How many list entries are checked for existence up front (a wrong data_path fails in one line).
_CHECKED_ENTRIES = 32
# Sink mode: how many following files may stand in for an unreadable one.
_MAX_SUBSTITUTES = 16
# Unreadable images named one by one; after that only counted (a wrong root must not flood the log).
_MAX_REPORTED = 100


class SkipReport:
    """Reports each unreadable file once per process, by path (one log line)."""
    _lock = threading.Lock()
    _seen = {}  # path -> the error's one line (predict writes it into the file's warning row)

    @classmethod
    def report(cls, err, path):
        with cls._lock:
            if path in cls._seen:
                return
            cls._seen[path] = str(err)
            count = len(cls._seen)
        if count <= _MAX_REPORTED:
            _logger.warning("skipping %s", err)
        if count == _MAX_REPORTED:
            _logger.warning("%d unreadable images skipped; further ones are skipped without a line each", count)

    @classmethod
    def reason(cls, path):
        """Why ``path`` was skipped (None: not reported, e.g. refused by C++ Decode)."""
        with cls._lock:
            return cls._seen.get(path)


class ImageSource:
    """Iterable source of (encoded image bytes, label): reads ``order``'s samples each epoch (no
    decoding here: the C++ map does it). An unreadable file is reported by path and left out of the
    epoch, so every good image still arrives exactly once; with ``substitute`` the next readable file
    stands in instead (dataset sink mode: the device runs a fixed number of steps per epoch, and an
    epoch short of a batch would leave it waiting). ``skip``: positions left out at the start of
    each epoch (the rest of the epoch a mid-epoch checkpoint was saved in).

    Iterable rather than random access: MindSpore then shards nothing itself (``order`` does), but
    no ``filter`` op is needed to drop a row, which cost a Python call per row. No ``__len__``:
    MindSpore 2.10 raises an error when an epoch yields fewer rows than it says; ``rows`` is the
    epoch's count before unreadable files are left out."""

    def __init__(self, samples, order=None, skip=0, substitute=False):
        self.samples, self.substitute, self.skip = samples, substitute, int(skip)
        self.order = range(len(samples)) if order is None else order
        self.rows = len(self.order) - self.skip
        # (size, mtime_ns) of each file whose bytes passed the checks (0, 0: not yet): 16 bytes per sample
        self.passed = np.zeros((len(samples), 2), np.int64)

    def read(self, index):
        """(bytes, label) of sample ``index``; ``DatasetError`` naming the path if unreadable."""
        path, label = self.samples[index]
        image, stamp = read_encoded(path, tuple(self.passed[index].tolist()))
        if stamp is not None:
            self.passed[index] = stamp
        return image, np.int32(label)

    def readable(self, index):
        """``read(index)``, or None once the error is reported."""
        try:
            return self.read(index)
        except DatasetError as err:
            SkipReport.report(err, self.samples[index][0])
            return None

    def __iter__(self):
        indices = iter(self.order)  # a new epoch's order
        for _ in range(self.skip):
            next(indices, None)
        last_index, last_row = None, None
        for index in indices:
            # MultiGrain's sampler repeats each index (3 augmentations of one image): read it once
            row = last_row if index == last_index else self.readable(index)
            last_index, last_row = index, row
            if row is None and self.substitute:
                row = self.substitute_for(index)
            if row is not None:
                yield row

    def substitute_for(self, index):
        for offset in range(1, _MAX_SUBSTITUTES):
            row = self.readable((index + offset) % len(self.samples))
            if row is not None:
                return row
        raise DatasetError(f"{_MAX_SUBSTITUTES} unreadable images in a row from {self.samples[index][0]}")


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
    """``inner``'s indices (a ``ShardOrder`` or a family's sampler), epoch by epoch from
    ``start_epoch``, as keys ``slot * n + index`` where ``slot = e * per_epoch + position`` numbers
    the sample's place in the whole run. ``inner.set_epoch`` chooses each epoch's order."""

    def __init__(self, num_images, inner, start_epoch=0, skip=0):
        self.n, self.inner, self.epoch = int(num_images), inner, int(start_epoch)
        self.skip = int(skip)  # positions of each epoch left out: the rest of an epoch (mid-epoch resume)
        self.per_epoch = len(inner)
        super().__init__(num_samples=self.per_epoch - self.skip)

    def epoch_indices(self, epoch):
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)
        return np.fromiter(iter(self.inner), np.int64)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        for position, index in enumerate(self.epoch_indices(epoch)):
            if position < self.skip:
                continue
            yield int((epoch * self.per_epoch + position) * self.n + index)

    def __len__(self):
        return self.per_epoch - self.skip


class SeededImageSource:
    """Random-access source taking ``EpochKeySampler`` keys: decodes and augments each sample with
    the dataset seed set from (seed, rank, slot); yields (CHW image, label, key), label -1 for an
    unreadable file (a ``filter`` drops it: this 1-worker path is slow anyway)."""

    def __init__(self, samples, transforms, seed, rank=0, image_size=224):
        self.samples, self.reader = samples, ImageSource(samples)
        self.transforms, self.seed, self.rank = [vision.Decode()] + transforms, int(seed), int(rank)
        self.unreadable = np.zeros((3, image_size, image_size), np.float32)

    def __getitem__(self, key):
        slot, index = divmod(int(key), len(self.samples))
        row = self.reader.readable(index)
        if row is None:
            return self.unreadable, _NO_LABEL, np.int64(key)
        image, label = row
        ds.config.set_seed(sample_seed(self.seed, self.rank, slot))
        try:
            for op in self.transforms:
                image = op(image)
        except RuntimeError:  # passed the file checks, refused by C++ Decode: named here too
            path = self.samples[index][0]
            SkipReport.report(DatasetError(f"unreadable image {path}: MindSpore's Decode refused it"), path)
            return self.unreadable, _NO_LABEL, np.int64(key)
        return image, label, np.int64(key)

    def __len__(self):
        return len(self.samples)


def _readable(label):
    return bool(label != _NO_LABEL)


def _batches(rows, batch, drop_remainder):
    return rows // batch if drop_remainder else -(-rows // batch)


def create_dataset(cfg, split, rank=0, group_size=1, sampler=None, batch_size=None, shuffle=None,
                   start_epoch=0, skip_samples=0, samples=None):
    """Batched (image, label) dataset for ``split``; training shards by rank, shuffles and mixes
    (mixup/cutmix: labels become (N, num_classes) soft labels).

    ``sampler`` (e.g. MultiGrain's repeated-augmentation sampler) replaces shuffle/sharding.
    ``start_epoch``: the first epoch this pipeline serves (resume; used by the deterministic order).
    ``skip_samples``: samples of each epoch left out: with them the dataset serves the rest of the
    epoch a mid-epoch checkpoint was saved in (used for that one epoch).
    ``samples``: (path, label) pairs instead of the split's (predict: label = the file's position)."""
    is_training = split == "train"
    list_key = "cls_label_path_train" if is_training else "cls_label_path_val"
    given = samples is not None
    samples = samples if given else dataset_samples(cfg, split)
    if cfg[list_key] and not given:
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
    if sampler is None:
        sampler = ShardOrder(len(samples), rank, group_size, shuffle, cfg.seed, start_epoch)
    if keyed:
        if not hasattr(sampler, "__iter__"):
            raise DatasetError("deterministic: True needs a sampler that Python can iterate, "
                               f"not {type(sampler).__name__}")
        source = ds.GeneratorDataset(
            SeededImageSource(samples, create_transforms(cfg, is_training), cfg.seed, rank, cfg.image_size),
            columns + ["key"], sampler=EpochKeySampler(len(samples), sampler, start_epoch, skip_samples),
            num_parallel_workers=1, python_multiprocessing=False)
        rows = source.get_dataset_size()  # the sampler's length: known without reading the data
        dataset = source.filter(_readable, input_columns=["label"], num_parallel_workers=1)
    else:
        sunk = is_training and cfg.dataset_sink_mode and cfg.device_target != "CPU"  # MindSpore sinks off CPU
        # One Python thread reads (and checks) the files, in order; decoding runs in the C++ workers.
        reader = ImageSource(samples, sampler, skip_samples, substitute=sunk)
        rows = reader.rows
        source = ds.GeneratorDataset(reader, columns, num_parallel_workers=1, python_multiprocessing=False)
        # A file that passes ImageSource's checks and still fails C++ Decode (rare: damaged
        # entropy-coded data that libjpeg refuses) is dropped by MindSpore, which logs it (no path).
        # Measured in 2.10: SKIP drops exactly that sample here (empty/truncated files, where SKIP
        # itself misbehaves, never reach the decoder).
        ds.config.set_error_samples_mode(ds.config.ErrorSamplesMode.SKIP)
        dataset = source.map(create_transforms(cfg, is_training, decode=True), input_columns="image",
                             num_parallel_workers=workers)
    dataset = dataset.batch(batch, drop_remainder=is_training, num_parallel_workers=workers)
    if is_training and mix_enabled(cfg):
        mix_columns = columns + ["key"] if keyed else columns
        dataset = dataset.map(MixBatch.from_config(cfg, rank), input_columns=mix_columns,
                              output_columns=mix_columns, num_parallel_workers=1)
    dataset = dataset.project(columns) if keyed else dataset
    # MindSpore would count batches by reading the whole epoch (a filter, or a source without
    # __len__); the file count gives it (an epoch with unreadable images may end a batch early).
    dataset.dataset_size = _batches(rows, batch, is_training)
    return dataset
