"""Retrieval metrics on query/gallery embeddings (numpy): mAP and Recall@k.

Gallery items are ranked per query by descending cosine similarity (embeddings are
L2-normalised, so this is ascending Euclidean distance); ties keep gallery order. A gallery item
is relevant to a query when their labels are equal.

- AP of a query = mean, over its relevant items, of the precision at the rank of each one;
  mAP = mean AP over queries that have at least one relevant item.
- Recall@k = fraction of those queries with at least one relevant item among the first k
  (the definition of Wu et al. 2017 and the metric-learning literature).
"""
import numpy as np


def _normalize(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


_SIMILARITIES = 1 << 24  # float64 values per query chunk (128 MB; argsort's int64 order as much again)
_GALLERY_BLOCK = 1 << 14  # gallery rows normalised at a time


def _similarity(query, gallery):
    """``query @ normalised(gallery).T``, the gallery read block by block (never copied whole)."""
    out = np.empty((len(query), len(gallery)))
    for start in range(0, len(gallery), _GALLERY_BLOCK):
        out[:, start:start + _GALLERY_BLOCK] = query @ _normalize(gallery[start:start + _GALLERY_BLOCK]).T
    return out


def retrieval_metrics(query, query_labels, gallery, gallery_labels, ks=(1, 5), chunk=1024):
    """``{'mAP': ..., 'recall@1': ..., 'recall@5': ..., 'num_queries': ...}``."""
    query = _normalize(query)
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    if len(query) != len(query_labels) or len(gallery) != len(gallery_labels):
        raise ValueError("embeddings and labels differ in length")
    ks = tuple(int(k) for k in ks)
    aps, hits = [], {k: [] for k in ks}
    # a query chunk's similarities to the whole gallery, bounded: a gallery may be a memory-mapped .npy
    chunk = max(1, min(chunk, _SIMILARITIES // max(len(gallery), 1)))
    for start in range(0, len(query), chunk):
        similarity = _similarity(query[start:start + chunk], gallery)
        order = np.argsort(-similarity, axis=1, kind="stable")
        relevant = gallery_labels[order] == query_labels[start:start + chunk, None]
        for row in relevant:
            if not row.any():
                continue
            ranks = np.flatnonzero(row) + 1                     # 1-based ranks of relevant items
            aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
            for k in ks:
                hits[k].append(bool(row[:k].any()))
    if not aps:
        raise ValueError("no query has a relevant gallery item")
    result = {"mAP": float(np.mean(aps))}
    result.update({f"recall@{k}": float(np.mean(hits[k])) for k in ks})
    result["num_queries"] = len(aps)
    return result
