"""Samplers for resuming mid-epoch: a dataset serving the rest of the epoch a checkpoint was saved in.

``create_dataset(skip_samples=k)`` uses them on the ordinary (not ``deterministic``) path, where
the epoch's order is random anyway: the rest of the epoch is drawn from a fresh shuffle of the
rank's shard, so the epoch ends at the step it would have ended. (The deterministic path leaves
out the same positions of the same order instead: see ``EpochKeySampler``.) The engine trains
that one shortened epoch, then the following epochs from an ordinary dataset.
"""
import numpy as np
import mindspore.dataset as ds


class ShardSampler(ds.Sampler):
    """The rank's 1/group_size of a (per-epoch shuffled) order, as ``num_shards`` without padding."""

    def __init__(self, num_images, rank=0, group_size=1, shuffle=True, seed=0):
        self.n, self.rank, self.group_size = int(num_images), int(rank), int(group_size)
        self.shuffle, self.rng = shuffle, np.random.default_rng(int(seed))  # the same order on every rank
        self.per_rank = self.n // self.group_size
        super().__init__(num_samples=self.per_rank)

    def __iter__(self):
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return iter(order[self.rank * self.per_rank:(self.rank + 1) * self.per_rank].tolist())

    def __len__(self):
        return self.per_rank


class SkipSampler(ds.Sampler):
    """``inner``'s indices of each epoch without the first ``skip``."""

    def __init__(self, inner, skip):
        self.inner, self.skip = inner, int(skip)
        super().__init__(num_samples=len(inner) - self.skip)

    def __iter__(self):
        indices = iter(self.inner)
        for _ in range(self.skip):
            next(indices, None)
        return indices

    def __len__(self):
        return len(self.inner) - self.skip
