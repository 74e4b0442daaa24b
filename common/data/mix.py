"""Mixup and CutMix on whole batches, with mixed (soft) labels, as timm's ``Mixup`` does it.

Sample ``i`` of a batch is mixed with sample ``N-1-i`` (the batch flipped), with one ``lam`` per
batch: mixup blends the two images ``lam * x_i + (1 - lam) * x_{N-1-i}``; cutmix pastes a box
of the partner covering ``1 - lam`` of the image (``lam`` is corrected to the box actually cut
after clipping at the border). Labels become ``lam * onehot(y_i) + (1 - lam) * onehot(y_{N-1-i})``,
rows summing to 1; the loss (``CrossEntropySmooth``) applies label smoothing on top.

A batch is mixed with probability ``prob``; with both enabled, cutmix is chosen with probability
``switch_prob``. Runs as a ``mindspore.dataset`` batch map on numpy arrays (NCHW float images).
"""
import numpy as np

from common.errors import ConfigError


def mix_enabled(cfg):
    """Whether the config mixes batches (its mix values checked first)."""
    check_mix_config(cfg)
    return cfg.mix_prob > 0 and (cfg.mixup > 0 or cfg.cutmix > 0)


def check_mix_config(cfg):
    """One-line refusal of values the mixer cannot use."""
    for key in ("mixup", "cutmix"):
        if cfg[key] < 0:
            raise ConfigError(f"config error: '{key}' is a Beta-distribution alpha: >= 0 (0 = off), got {cfg[key]}")
    for key in ("mix_prob", "switch_prob"):
        if not 0.0 <= cfg[key] <= 1.0:
            raise ConfigError(f"config error: '{key}' is a probability in [0, 1], got {cfg[key]}")


def one_hot(labels, num_classes):
    """(N, num_classes) one-hot rows; an unlabeled image's (label -1, distill_unlabeled) row is all zero,
    so a mixed row sums to the labeled share of its image (the distillation loss weighs CE by it)."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
        raise ValueError(f"label {labels.max() if labels.max() >= num_classes else labels.min()} "
                         f"outside [0, {num_classes}) (check num_classes)")
    out = np.zeros((labels.size, num_classes), np.float32)
    labeled = labels >= 0
    out[np.arange(labels.size)[labeled], labels[labeled]] = 1.0
    return out


def cutmix_box(height, width, lam, rng):
    """(y1, y2, x1, x2) of a box of area ~ (1 - lam) centred uniformly, clipped to the image."""
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = rng.integers(height), rng.integers(width)
    y1, y2 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x1, x2 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(y1), int(y2), int(x1), int(x2)


class MixBatch:
    """Callable ``(images, labels[, keys]) -> (images, soft_labels[, keys])`` for ``Dataset.map``.

    ``keys`` (the deterministic pipeline's per-sample keys, see ``common.data.dataset``) seed the
    batch's random draws so that a resumed run mixes exactly as an uninterrupted one; without
    them a generator seeded once by ``seed`` is used."""

    def __init__(self, num_classes, mixup=0.0, cutmix=0.0, prob=1.0, switch_prob=0.5, seed=0):
        self.num_classes = int(num_classes)
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    @classmethod
    def from_config(cls, cfg, rank=0):
        check_mix_config(cfg)
        return cls(cfg.num_classes, cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.switch_prob, seed=cfg.seed * 1000 + rank)

    def draw(self, rng):
        """('none' | 'mixup' | 'cutmix', lam) for one batch."""
        if rng.random() >= self.prob or (self.mixup <= 0 and self.cutmix <= 0):
            return "none", 1.0
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix if use_cutmix else self.mixup
        return ("cutmix" if use_cutmix else "mixup"), float(rng.beta(alpha, alpha))

    def __call__(self, images, labels, keys=None):
        rng = np.random.default_rng([self.seed, int(keys[0])]) if keys is not None else self._rng
        kind, lam = self.draw(rng)
        images = np.array(images, copy=True)
        partner = images[::-1].copy()
        if kind == "mixup":
            images = (lam * images + (1.0 - lam) * partner).astype(images.dtype)
        elif kind == "cutmix":
            height, width = images.shape[-2:]
            y1, y2, x1, x2 = cutmix_box(height, width, lam, rng)
            images[..., y1:y2, x1:x2] = partner[..., y1:y2, x1:x2]
            lam = 1.0 - (y2 - y1) * (x2 - x1) / float(height * width)
        target = one_hot(labels, self.num_classes)
        soft = (lam * target + (1.0 - lam) * target[::-1]).astype(np.float32)
        return (images, soft) if keys is None else (images, soft, keys)
