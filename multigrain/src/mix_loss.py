"""MultiGrain's mix loss: ``lambda * CE(label smoothing) + (1 - lambda) * margin loss``.

Margin loss (Wu et al. 2017, "Sampling matters in deep embedding learning"), as in MultiGrain's
``multigrain/modules/margin.py``, on L2-normalised embeddings:

    pos(a, p) = max(0, d(a, p) - beta + margin)      for each positive pair,
    neg(a, n) = max(0, beta - d(a, n) + margin)      for each sampled negative,
    loss = sum(pos + neg) / max(1, #triplets with a non-zero term)

with a learnable boundary ``beta`` (init 1.2; no weight decay: see ``NO_WEIGHT_DECAY``) and
``d(x, y) = sqrt(||x - y||^2 + 1e-8)``. Positives are *instances*: the batch is laid out by the
repeated-augmentation sampler as consecutive groups of ``repeat`` augmented copies of one image,
so sample i belongs to instance ``i // repeat`` and has ``repeat - 1`` positives. Each anchor gets
as many negatives, drawn without replacement from the other instances with probability

    q(d) ∝ d^(2 - C) * (1 - d^2 / 4)^(-(C - 3) / 2)   (inverse of the density of distances
                                                         between points on the unit sphere in R^C),

after clamping d at ``cutoff`` (0.5) and keeping only d < ``nonzero_loss_cutoff`` (1.4); an anchor
with no such negative samples uniformly among its negatives. The draw is a Gumbel top-k on the
log-weights (exactly sampling without replacement), so it runs in graph mode and, given the
uniform noise, is deterministic.

Cross-entropy uses ModelZoo's ``CrossEntropySmooth`` convention: target 1 - eps on the label,
eps / (K - 1) on every other class.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
from mindspore import Parameter, Tensor

BETA_PARAM_NAME = "beta_margin"
# Parameter names that must be kept out of weight decay (the engine's decay filter).
NO_WEIGHT_DECAY = (BETA_PARAM_NAME,)

_NEG_INF = -1e30  # finite "minus infinity": keeps Gumbel arithmetic free of inf - inf


def smooth_cross_entropy(logits, label, smooth_factor):
    """Mean CE against one-hot targets smoothed as ModelZoo's CrossEntropySmooth."""
    num_classes = logits.shape[-1]
    on_value = 1.0 - smooth_factor
    off_value = smooth_factor / (num_classes - 1)
    target = ops.one_hot(label, num_classes, Tensor(on_value, ms.float32), Tensor(off_value, ms.float32))
    log_prob = ops.log_softmax(logits, axis=-1)
    return -(target * log_prob).sum(axis=-1).mean()


def pairwise_distance(x, eps=1e-8):
    """Euclidean distance matrix ``sqrt(max(||xi - xj||^2, 0) + eps)``."""
    square = (x * x).sum(axis=1, keepdims=True)
    dist2 = square + square.T - 2.0 * ops.matmul(x, x.T)
    return ops.sqrt(ops.relu(dist2) + eps)


def distance_log_weights(distance, dim, cutoff=0.5):
    """Log of the distance-weighted sampling weight q(d) (up to a constant), d clamped at cutoff."""
    d = ops.clamp(distance, min=cutoff)
    one_minus = ops.clamp(1.0 - 0.25 * d * d, min=1e-12)
    return (2.0 - dim) * ops.log(d) - ((dim - 3.0) / 2.0) * ops.log(one_minus)


def gumbel_topk(log_weights, num_samples, uniform):
    """Draw ``num_samples`` column indices per row without replacement, P ∝ exp(log_weights).

    ``uniform`` holds U(0, 1) noise of the same shape; entries at ``_NEG_INF`` are never drawn
    unless a row has fewer valid entries than ``num_samples`` (the caller checks ``valid``).
    Returns (indices, valid) of shape (rows, num_samples)."""
    u = ops.clamp(uniform, 1e-12, 1.0 - 1e-7)
    gumbel = -ops.log(-ops.log(u))
    scores = log_weights + gumbel
    _, indices = ops.topk(scores, num_samples)
    picked = ops.gather_elements(log_weights, 1, indices)
    return indices, picked > 0.5 * _NEG_INF


def instance_positive_indices(batch_size, repeat):
    """(B, repeat - 1) indices of the other copies of each sample's image (consecutive groups)."""
    idx = ops.arange(batch_size, dtype=ms.int32).reshape(-1, 1)
    offsets = ops.arange(1, repeat, dtype=ms.int32).reshape(1, -1)
    base = (idx // repeat) * repeat
    return base + (idx % repeat + offsets) % repeat


def sample_negatives(distance, instance_ids, num_samples, uniform, dim, cutoff=0.5, nonzero_loss_cutoff=1.4):
    """Distance-weighted negatives per anchor; returns (indices, valid) of shape (B, num_samples)."""
    distance = ops.stop_gradient(distance)
    negative = instance_ids.reshape(-1, 1) != instance_ids.reshape(1, -1)
    in_range = ops.logical_and(negative, distance < nonzero_loss_cutoff)
    log_w = distance_log_weights(distance, dim, cutoff)
    log_w = ops.where(in_range, log_w, _NEG_INF)
    log_w = log_w - log_w.max(axis=1, keepdims=True)
    has_in_range = in_range.any(axis=1, keep_dims=True)
    uniform_w = ops.where(negative, ops.zeros_like(distance), _NEG_INF)
    log_w = ops.where(has_in_range, log_w, uniform_w)
    indices, valid = gumbel_topk(log_w, num_samples, uniform)
    # Fewer candidates than samples: the original falls back to drawing with replacement;
    # reuse the first (always valid when any negative exists) draw.
    # The first draw is valid whenever the anchor has any negative at all.
    indices = ops.where(valid, indices, indices[:, :1].broadcast_to(indices.shape))
    return indices, valid[:, :1].broadcast_to(valid.shape)


def margin_terms(embedding, beta, uniform, repeat=3, margin=0.2, cutoff=0.5, nonzero_loss_cutoff=1.4):
    """Per-triplet positive and negative margin terms, each (B, repeat - 1); negatives that could
    not be drawn (a batch with a single instance) contribute 0.

    ``embedding`` must already be L2-normalised; ``uniform`` is (B, B) U(0, 1) noise."""
    batch_size, dim = embedding.shape
    if batch_size % repeat:
        raise ValueError(f"margin loss needs a batch of whole instance groups: batch {batch_size} is not a "
                         f"multiple of repeat={repeat}")
    distance = pairwise_distance(embedding)
    instance_ids = ops.arange(batch_size, dtype=ms.int32) // repeat
    pos_idx = instance_positive_indices(batch_size, repeat)
    neg_idx, valid = sample_negatives(distance, instance_ids, repeat - 1, uniform, float(dim),
                                      cutoff, nonzero_loss_cutoff)
    d_ap = ops.gather_elements(distance, 1, pos_idx)
    d_an = ops.gather_elements(distance, 1, neg_idx)
    pos_loss = ops.relu(d_ap - beta + margin)
    neg_loss = ops.relu(beta - d_an + margin) * valid.astype(embedding.dtype)
    return pos_loss, neg_loss


def margin_loss_value(pos_loss, neg_loss):
    """sum(pos + neg) / max(1, #triplets where either term is non-zero), as MultiGrain's MarginLoss."""
    active = ops.logical_or(pos_loss > 0, neg_loss > 0).astype(pos_loss.dtype).sum()
    return (pos_loss + neg_loss).sum() / ops.maximum(active, 1.0)


class MarginLoss(nn.Cell):
    """Distance-weighted-sampling margin loss on normalised embeddings with learnable beta."""

    def __init__(self, repeat=3, margin=0.2, beta_init=1.2, cutoff=0.5, nonzero_loss_cutoff=1.4, seed=0):
        super().__init__()
        if repeat < 2:
            raise ValueError("the margin loss needs repeated augmentation (repeat >= 2) for positive pairs")
        self.repeat = int(repeat)
        self.margin = float(margin)
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.beta_margin = Parameter(Tensor(float(beta_init), ms.float32), name=BETA_PARAM_NAME)
        self.seed = seed

    def construct(self, embedding):
        batch_size = embedding.shape[0]
        noise = ops.rand(batch_size, batch_size, seed=self.seed)
        pos_loss, neg_loss = margin_terms(embedding, self.beta_margin, noise, self.repeat, self.margin,
                                             self.cutoff, self.nonzero_loss_cutoff)
        return margin_loss_value(pos_loss, neg_loss)


class MixLoss(nn.Cell):
    """``mix_lambda * CE + (1 - mix_lambda) * margin``.

    ``loss(logits, label, embedding)`` is the training loss (``embedding`` L2-normalised);
    ``loss(logits, label)`` is the cross-entropy part alone, which is what evaluation reports."""

    def __init__(self, num_classes, mix_lambda=0.5, smooth_factor=0.1, repeat=3, margin=0.2, beta_init=1.2,
                 cutoff=0.5, nonzero_loss_cutoff=1.4, seed=0):
        super().__init__()
        if not 0.0 <= mix_lambda <= 1.0:
            raise ValueError(f"mix_lambda must be in [0, 1], got {mix_lambda}")
        self.num_classes = num_classes
        self.mix_lambda = float(mix_lambda)
        self.smooth_factor = float(smooth_factor)
        self.margin_loss = MarginLoss(repeat, margin, beta_init, cutoff, nonzero_loss_cutoff, seed)

    def no_weight_decay_params(self):
        """Parameters to exclude from weight decay (beta)."""
        return [p for p in self.trainable_params() if p.name.split(".")[-1] in NO_WEIGHT_DECAY]

    def construct(self, logits, label, embedding=None):
        ce = smooth_cross_entropy(logits, label, self.smooth_factor)
        if embedding is None or self.mix_lambda == 1.0:
            return ce
        return self.mix_lambda * ce + (1.0 - self.mix_lambda) * self.margin_loss(embedding)


class MultiGrainWithLoss(nn.Cell):
    """``(image, label) -> mix loss`` for ``nn.TrainOneStepCell`` / ``Model(network_with_loss)``."""

    def __init__(self, net, loss):
        super().__init__(auto_prefix=False)
        self.net = net
        self.loss = loss

    def construct(self, x, label):
        logits, embedding = self.net.forward_train(x)
        return self.loss(logits.astype(ms.float32), label, embedding.astype(ms.float32))
