"""Mix loss on small hand-checkable batches: margin terms, beta's gradient, lambda, smoothed CE,
and the distance-weighted sampler against its formula (Wu et al. 2017)."""
import math

import numpy as np
import pytest

import common  # noqa: F401
import mindspore as ms
from mindspore import Tensor

from multigrain.src.mix_loss import (MarginLoss, MixLoss, distance_log_weights, gumbel_topk, margin_terms,
                                     sample_negatives, smooth_cross_entropy)

BETA, MARGIN = 1.2, 0.2


def unit(*degrees):
    """Points on the unit circle; chord between angles a and b is 2 sin(|a - b| / 2)."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def chord(degrees):
    return 2 * math.sin(math.radians(degrees) / 2)


def terms(embedding, beta=BETA, repeat=2, seed=0):
    noise = np.random.RandomState(seed).rand(len(embedding), len(embedding)).astype(np.float32)
    pos, neg = margin_terms(Tensor(embedding), Tensor(beta, ms.float32), Tensor(noise), repeat=repeat,
                            margin=MARGIN)
    return pos.asnumpy(), neg.asnumpy()


# Instance 0 = samples 0, 1; instance 1 = samples 2, 3 (repeat = 2). Instance 1 sits >= 1.73 away,
# beyond the 1.4 cut-off and beyond beta + margin, so every negative term is 0.
def test_identical_positive_pair():
    emb = unit(0, 0, 180, 240)
    pos, neg = terms(emb)
    assert pos[0, 0] == pytest.approx(max(0.0, 0.0 - BETA + MARGIN), abs=1e-6)
    # With beta below the margin the same pair is penalised: max(0, 0 - 0.1 + 0.2) = 0.1
    # (+1e-4: d = sqrt(0 + 1e-8)).
    pos, _ = terms(emb, beta=0.1)
    np.testing.assert_allclose(pos[:2, 0], 0.1 + 1e-4, atol=1e-4)
    assert (neg == 0).all()


def test_pair_exactly_at_the_margin_and_beyond():
    pos, neg = terms(unit(0, 60, 180, 240))           # chord(60) = 1 = beta - margin
    np.testing.assert_allclose(pos, 0.0, atol=1e-6)
    pos, _ = terms(unit(0, 68, 180, 240))             # chord(68) = 1.1184 -> 0.1184
    np.testing.assert_allclose(pos[:2, 0], chord(68) - BETA + MARGIN, atol=1e-5)
    np.testing.assert_allclose(pos[2:, 0], 0.0, atol=1e-6)
    # A negative at d = 1.0 (inside the cut-off): max(0, 1.2 - 1.0 + 0.2) = 0.4 for every anchor.
    _, neg = terms(unit(0, 0, 60, 60))
    np.testing.assert_allclose(neg, 0.4, atol=1e-5)


def _loss_and_beta_grad(embedding):
    loss = MarginLoss(repeat=2, margin=MARGIN, beta_init=BETA)
    fn = ms.value_and_grad(loss, grad_position=None, weights=loss.trainable_params())
    value, (grad,) = fn(Tensor(embedding))
    return float(value), float(grad.asnumpy())


def test_beta_gradient_sign(graph_mode):
    # Only positive terms active: two triplets of 0.1184 each -> loss 0.1184, dL/dbeta = -2/2.
    value, grad = _loss_and_beta_grad(unit(0, 68, 180, 240))
    assert value == pytest.approx(chord(68) - BETA + MARGIN, abs=1e-4)
    assert grad == pytest.approx(-1.0, abs=1e-5)
    # Only negative terms active: four triplets of 0.4 -> loss 0.4, dL/dbeta = +4/4.
    value, grad = _loss_and_beta_grad(unit(0, 0, 60, 60))
    assert value == pytest.approx(0.4, abs=1e-4)
    assert grad == pytest.approx(1.0, abs=1e-5)


def _smoothed_ce_numpy(logits, labels, eps):
    k = logits.shape[1]
    target = np.full(logits.shape, eps / (k - 1))          # ModelZoo CrossEntropySmooth
    target[np.arange(len(labels)), labels] = 1 - eps
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(target * log_prob).sum(axis=1).mean())


def test_smoothed_cross_entropy_matches_numpy():
    rng = np.random.RandomState(3)
    logits, labels = rng.randn(6, 5).astype(np.float32) * 3, rng.randint(0, 5, 6)
    got = float(smooth_cross_entropy(Tensor(logits), Tensor(labels.astype(np.int32)), 0.1).asnumpy())
    assert got == pytest.approx(_smoothed_ce_numpy(logits.astype(np.float64), labels, 0.1), rel=1e-5)


def test_lambda_weighting(graph_mode):
    rng = np.random.RandomState(4)
    logits, labels = rng.randn(4, 3).astype(np.float32), np.array([0, 0, 2, 1], np.int32)
    emb = unit(0, 0, 60, 60)                          # margin loss = 0.4 (see above)
    ce = _smoothed_ce_numpy(logits.astype(np.float64), labels, 0.1)
    for lam in (0.5, 0.3, 1.0):
        loss = MixLoss(3, mix_lambda=lam, smooth_factor=0.1, repeat=2)
        got = float(loss(Tensor(logits), Tensor(labels), Tensor(emb)).asnumpy())
        assert got == pytest.approx(lam * ce + (1 - lam) * 0.4, abs=1e-4)
        # Without the embedding (evaluation) it is the cross-entropy alone.
        assert float(loss(Tensor(logits), Tensor(labels)).asnumpy()) == pytest.approx(ce, rel=1e-5)
    assert [p.name for p in MixLoss(3).no_weight_decay_params()] == ["margin_loss.beta_margin"]


def test_sampling_weights_follow_the_paper():
    """q(d)^-1 = d^(2-n) (1 - d^2/4)^(-(n-3)/2), d clamped at 0.5; here n = 4."""
    d = np.array([0.3, 0.5, 1.0, 1.3], np.float32)
    log_w = distance_log_weights(Tensor(d), 4.0).asnumpy()
    clamped = np.maximum(d.astype(np.float64), 0.5)
    expected = clamped ** -2 * (1 - clamped ** 2 / 4) ** -0.5
    np.testing.assert_allclose(np.exp(log_w - log_w[1]), expected / expected[1], rtol=1e-5)


def test_gumbel_topk_draws_proportionally_without_replacement():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    rows = 20000
    rng = np.random.RandomState(5)
    log_w = Tensor(np.tile(np.log(p), (rows, 1)).astype(np.float32))
    idx, valid = gumbel_topk(log_w, 1, Tensor(rng.rand(rows, 4).astype(np.float32)))
    freq = np.bincount(idx.asnumpy()[:, 0], minlength=4) / rows
    np.testing.assert_allclose(freq, p, atol=0.015)
    assert valid.asnumpy().all()
    idx, _ = gumbel_topk(log_w, 2, Tensor(rng.rand(rows, 4).astype(np.float32)))
    idx = idx.asnumpy()
    assert (idx[:, 0] != idx[:, 1]).all()
    # P(first = i, second = j) = p_i p_j / (1 - p_i): e.g. (3, 2) -> 0.4 * 0.3 / 0.6 = 0.2.
    assert np.mean((idx[:, 0] == 3) & (idx[:, 1] == 2)) == pytest.approx(0.2, abs=0.015)


def test_negatives_respect_instances_and_cutoffs():
    # Instance 0 at 0°, instance 1 at 50° (chord 0.845, within 1.4), instance 2 at 180° (>= 1.81 from all).
    emb = unit(0, 0, 0, 50, 50, 50, 180, 180, 180)
    dist = np.sqrt(np.maximum(((emb[:, None] - emb[None]) ** 2).sum(-1), 0) + 1e-8)
    ids = Tensor(np.arange(9, dtype=np.int32) // 3)
    seen_far = set()
    for seed in range(40):
        noise = Tensor(np.random.RandomState(seed).rand(9, 9).astype(np.float32))
        idx, valid = sample_negatives(Tensor(dist.astype(np.float32)), ids, 2, noise, 2.0)
        idx, valid = idx.asnumpy(), valid.asnumpy()
        assert valid.all()
        assert all(set(idx[i]) <= {3, 4, 5} for i in range(3))        # in-range negatives only
        assert all(set(idx[i]) <= {0, 1, 2} for i in range(3, 6))
        assert all(idx[i, 0] != idx[i, 1] for i in range(9))
        for i in range(6, 9):                                           # none in range: uniform
            assert set(idx[i]) <= set(range(6))
            seen_far |= set(idx[i])
    assert seen_far == set(range(6))


def test_batch_must_hold_whole_instances():
    with pytest.raises(ValueError, match="multiple of repeat=3"):
        terms(unit(0, 0, 0, 90, 90), repeat=3)


def test_margin_loss_runs_in_graph_mode_on_random_batches(graph_mode):
    rng = np.random.RandomState(6)
    emb = rng.randn(12, 16).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    value = float(MarginLoss(repeat=3)(Tensor(emb)).asnumpy())
    assert np.isfinite(value) and value >= 0
