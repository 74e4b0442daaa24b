"""The order in which an epoch reads its samples, when no family sampler gives one.

Epoch e's permutation is drawn from (seed, e) alone, the same on every rank; rank r takes
positions r, r+G, r+2G, ... of it, padded by wrapping round so that every rank gets
``ceil(n / G)`` samples (equal step counts), as ``num_shards`` and torch's DistributedSampler do.
Being a function of (seed, epoch), a run resumed at epoch k reads epoch k's order, and the rest
of an interrupted epoch is the rest of that epoch's order.

The source reads this order itself (``ImageSource`` is iterable): it can then leave an unreadable
file out without a ``filter`` op, which cost a Python call per row (as much CPU as reading the file).
"""
import numpy as np


class ShardOrder:
    """One rank's sample indices per epoch: shuffled from (seed, epoch) or 0..n-1, sharded, padded.
    Each iteration is the next epoch, starting at ``start_epoch``."""

    def __init__(self, num_images, rank=0, group_size=1, shuffle=True, seed=0, start_epoch=0):
        self.n, self.rank, self.group_size = int(num_images), int(rank), int(group_size)
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), int(start_epoch)
        self.per_rank = -(-self.n // self.group_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def epoch_indices(self, epoch):
        order = np.random.RandomState([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        padded = np.resize(order, self.per_rank * self.group_size)  # wraps round: repeats the first few
        return padded[self.rank::self.group_size]

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter(self.epoch_indices(epoch).tolist())

    def __len__(self):
        return self.per_rank
