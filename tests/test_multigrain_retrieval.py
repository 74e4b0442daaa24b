"""mAP and Recall@k on hand-checkable query/gallery sets."""
import numpy as np
import pytest

from multigrain.src.retrieval import retrieval_metrics


def unit(*degrees):
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_hand_computed_ranking():
    # Query at 0 deg; gallery ranked by angle: g0 (0 deg), g1 (30), g2 (60), g3 (90).
    gallery, gallery_labels = unit(0, 30, 60, 90), [0, 1, 0, 1]
    query = unit(0, 0, 0)
    query_labels = [0, 1, 7]                       # label 7 has no relevant item: not counted
    result = retrieval_metrics(query, query_labels, gallery, gallery_labels, ks=(1, 2, 5))
    # label 0: relevant at ranks 1, 3 -> AP = (1/1 + 2/3) / 2 = 5/6
    # label 1: relevant at ranks 2, 4 -> AP = (1/2 + 2/4) / 2 = 1/2
    assert result["mAP"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert result["recall@1"] == pytest.approx(0.5)
    assert result["recall@2"] == pytest.approx(1.0)
    assert result["recall@5"] == pytest.approx(1.0)
    assert result["num_queries"] == 2


def test_perfect_and_reversed_rankings():
    gallery = unit(0, 1, 2, 90, 91)
    labels = [0, 0, 0, 1, 1]
    perfect = retrieval_metrics(unit(0, 90), [0, 1], gallery, labels)
    assert perfect["mAP"] == 1.0 and perfect["recall@1"] == 1.0
    # A query nearest the wrong class: ranking 90, 91, 92 (label 1), then 1, 0 (label 0, ranks 4, 5).
    reversed_ = retrieval_metrics(unit(90), [0], unit(0, 1, 90, 91, 92), [0, 0, 1, 1, 1])
    assert reversed_["mAP"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert reversed_["recall@1"] == 0.0 and reversed_["recall@5"] == 1.0


def test_scale_invariance_chunking_and_errors():
    rng = np.random.RandomState(0)
    query, gallery = rng.randn(7, 4), rng.randn(11, 4)
    q_labels, g_labels = rng.randint(0, 3, 7), rng.randint(0, 3, 11)
    g_labels[:3] = [0, 1, 2]
    base = retrieval_metrics(query, q_labels, gallery, g_labels)
    assert retrieval_metrics(query * 5, q_labels, gallery * 0.1, g_labels, chunk=2) == pytest.approx(base)
    with pytest.raises(ValueError):
        retrieval_metrics(query, q_labels[:3], gallery, g_labels)
    with pytest.raises(ValueError, match="no query"):
        retrieval_metrics(query, np.full(7, 9), gallery, g_labels)


def test_a_memory_mapped_gallery_read_in_blocks_ranks_as_a_whole_one(tmp_path, monkeypatch):
    """A gallery from predict --embeddings (a .npy opened memory-mapped) is normalised block by block, and the
    query chunk shrinks with the gallery: the same metrics as the gallery held whole."""
    import multigrain.src.retrieval as retrieval
    rng = np.random.RandomState(1)
    query, gallery = rng.randn(9, 5), rng.randn(23, 5).astype(np.float32)
    q_labels, g_labels = rng.randint(0, 4, 9), rng.randint(0, 4, 23)
    g_labels[:4] = [0, 1, 2, 3]
    whole = retrieval_metrics(query, q_labels, gallery, g_labels)
    np.save(tmp_path / "g.npy", gallery)
    monkeypatch.setattr(retrieval, "_GALLERY_BLOCK", 4)     # 6 blocks, the last one short
    monkeypatch.setattr(retrieval, "_SIMILARITIES", 23 * 2)  # query chunks of 2
    mapped = np.load(tmp_path / "g.npy", mmap_mode="r")
    assert retrieval_metrics(query, q_labels, mapped, g_labels) == pytest.approx(whole, abs=1e-12)
