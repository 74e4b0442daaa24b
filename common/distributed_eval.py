"""Evaluation split across data-parallel ranks, summed so that it equals one process's result.

Rank r evaluates validation images r, r+G, r+2G, ... (G ranks): every image exactly once, no
padding (``num_shards`` would repeat images to even out the shards). Each rank's accuracies
times its image count are its correct counts; one all-reduce sums counts and images.
"""
import numpy as np

from common.data import create_dataset, dataset_samples


def sharded_val_dataset(cfg, rank, group_size):
    """(this rank's val dataset, its image count, the total image count)."""
    from common.errors import DatasetError
    total = len(dataset_samples(cfg, "val"))
    if total < group_size:
        raise DatasetError(f"the val split has {total} images: fewer than the {group_size} ranks evaluating it")
    indices = list(range(rank, total, group_size))
    return create_dataset(cfg, "val", sampler=indices), len(indices), total


def sum_over_ranks(result, local_count):
    """``{metric: fraction}`` of this rank's shard -> the fractions over all ranks' images."""
    import mindspore as ms
    from mindspore.ops.communication import all_reduce
    names = sorted(result)
    counts = [round(float(result[k]) * local_count) for k in names] + [local_count]
    tensor = ms.Tensor(np.array(counts, np.float32))  # exact below 2**24 images
    out = all_reduce(tensor)
    out = out[0] if isinstance(out, tuple) else out
    summed = (out if isinstance(out, ms.Tensor) else tensor).asnumpy()
    return {k: float(summed[i]) / float(summed[-1]) for i, k in enumerate(names)}  # as one process divides


class ShardedEval:
    """``reduce_fn`` for ``EvalCallback``: turns this rank's result into the all-rank one."""

    def __init__(self, local_count):
        self.local_count = local_count

    def __call__(self, result):
        return sum_over_ranks(result, self.local_count)


def _all_reduce_mean(tensors, group_size):
    import mindspore as ms
    from mindspore.ops.communication import all_reduce
    out = []
    for tensor in tensors:
        work = ms.Tensor(tensor.asnumpy().astype(np.float32))
        reduced = all_reduce(work)
        reduced = reduced[0] if isinstance(reduced, tuple) else reduced
        out.append((reduced if isinstance(reduced, ms.Tensor) else work).asnumpy() / group_size)
    return out


def average_batchnorm_stats(net, group_size):
    """A callback: at each epoch's end every rank gets the mean of the ranks' BatchNorm running
    statistics (as timm's ``distribute_bn(reduce=True)``). Without it each rank keeps the statistics
    of its own shard, and a sharded eval would mix G different networks; with it the epoch's
    checkpoint (saved after this) is the network every rank evaluates."""
    from mindspore.train import Callback
    stats = [p for p in net.get_parameters() if p.name.rsplit(".", 1)[-1] in ("moving_mean", "moving_variance")]

    class AverageBatchNormStats(Callback):
        def on_train_epoch_end(self, run_context):
            import mindspore as ms
            from mindspore import ops
            for param, mean in zip(stats, _all_reduce_mean(stats, group_size)):
                # in-place assign, not set_data (see common/ema.py: set_data on trained parameters)
                ops.assign(param, ms.Tensor(mean, param.dtype))

    return AverageBatchNormStats()
