"""``mindspore.dataset`` pipelines over (path, label) samples, sharded by rank."""
import logging

import numpy as np
import mindspore.dataset as ds
from PIL import Image

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
        for offset in range(_MAX_SUBSTITUTES):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                return read_rgb(path), np.int32(label)
            except DatasetError as err:
                _logger.warning("skipping %s", err)
                print(f"WARNING: skipping {err}", flush=True)
        raise DatasetError(f"{_MAX_SUBSTITUTES} unreadable images in a row from {self.samples[index][0]}")


def create_dataset(cfg, split, rank=0, group_size=1, sampler=None, batch_size=None, shuffle=None):
    """Batched (image, label) dataset for ``split``; training shards by rank and shuffles.

    ``sampler`` (e.g. MultiGrain's repeated-augmentation sampler) replaces shuffle/sharding."""
    is_training = split == "train"
    samples = dataset_samples(cfg, split)
    shuffle = is_training if shuffle is None else shuffle
    workers = max(1, int(cfg.num_parallel_workers))
    kwargs = dict(sampler=sampler) if sampler is not None else dict(
        shuffle=shuffle, num_shards=group_size if group_size > 1 else None,
        shard_id=rank if group_size > 1 else None)
    if cfg.deterministic:
        ds.config.set_seed(int(cfg.seed))
        workers = 1
    dataset = ds.GeneratorDataset(ImageSource(samples), ["image", "label"], num_parallel_workers=workers,
                                  python_multiprocessing=False, **kwargs)
    dataset = dataset.map(create_transforms(cfg, is_training), input_columns="image",
                          num_parallel_workers=workers)
    batch = batch_size or (cfg.batch_size if is_training else (cfg.eval_batch_size or cfg.batch_size))
    if is_training and len(samples) // group_size < batch:
        raise DatasetError(f"{split} split has {len(samples)} images for {group_size} rank(s): "
                           f"fewer than one batch of {batch}")
    dataset = dataset.batch(batch, drop_remainder=is_training, num_parallel_workers=workers)
    return dataset
