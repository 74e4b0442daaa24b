"""Label-smoothing cross-entropy with eps > 0 against an independent numpy formula.

timm's form (``LabelSmoothingCrossEntropy``): loss = (1 - eps) * CE(target) + eps * mean over the K
classes of -log p. For mixup's soft targets timm smooths each one-hot before mixing, which is the same
as (1 - eps) * soft + eps / K. Written here as that sum of two terms in float64, not as the smoothed
target the code builds, so a wrong on/off value (eps / (K - 1), ModelZoo's convention) or a soft-label
branch that forgets the smoothing shows up."""
import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path before the first MindSpore op)
import mindspore as ms

from common.loss import CrossEntropySmooth

K = 7


def log_softmax64(logits):
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def reference(logits, target, eps):
    """Per-sample loss; ``target`` (N, K) rows summing to 1 (one-hot for sparse labels)."""
    logp = log_softmax64(logits)
    return (1.0 - eps) * -(target * logp).sum(-1) + eps * -logp.mean(-1)


def reduce(per_sample, reduction):
    return {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]


@pytest.fixture
def logits():
    return np.random.default_rng(0).normal(0, 3, (5, K)).astype(np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.1, 0.35])
def test_sparse_labels_match_timm_formula(logits, eps, reduction):
    labels = np.array([0, 3, 6, 3, 1], np.int32)
    want = reduce(reference(logits, np.eye(K)[labels], eps), reduction)
    got = CrossEntropySmooth(eps, K, reduction)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.35])
def test_soft_labels_match_timm_formula(logits, eps):
    """Mixup/cutmix targets: two classes mixed with lam, rows sum to 1."""
    lam = np.array([0.7, 0.5, 1.0, 0.2, 0.9])
    first, second = np.array([0, 3, 6, 3, 1]), np.array([2, 3, 1, 5, 0])
    soft = lam[:, None] * np.eye(K)[first] + (1 - lam)[:, None] * np.eye(K)[second]
    want = reference(logits, soft, eps).mean()
    got = CrossEntropySmooth(eps, K)(ms.Tensor(logits), ms.Tensor(soft.astype(np.float32))).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_one_hot_soft_labels_give_the_sparse_loss(logits):
    """A soft label that is one-hot is the sparse label: both branches smooth alike."""
    labels = np.array([0, 3, 6, 3, 1], np.int32)
    loss = CrossEntropySmooth(0.2, K, "none")
    soft = loss(ms.Tensor(logits), ms.Tensor(np.eye(K, dtype=np.float32)[labels])).asnumpy()
    np.testing.assert_allclose(soft, loss(ms.Tensor(logits), ms.Tensor(labels)).asnumpy(), rtol=1e-6, atol=1e-6)


def test_the_factory_passes_the_configured_smoothing(logits):
    """The loss training builds from the config (a family without its own loss) smooths with
    ``label_smooth_factor`` over ``num_classes``."""
    from common.config import parse_args
    from common.family import hooks_for
    from common.loss import create_loss
    cfg = parse_args(["--model", "dla46_c", "--num_classes", str(K), "--label_smooth_factor", "0.3"])
    labels = np.array([0, 3, 6, 3, 1], np.int32)
    got = create_loss(cfg, None, hooks_for(cfg.model).loss)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, reference(logits, np.eye(K)[labels], 0.3).mean(), rtol=1e-5, atol=1e-6)
