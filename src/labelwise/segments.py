"""Per-image reductions over boxes stored back to back (pure numpy).

A *segment* array ``seg`` of shape (B,) gives, for each of B boxes, the index in [0, N) of the
image it belongs to; every function here takes it non-decreasing (each image's boxes
contiguous, as :class:`~labelwise.columnar.PackedDetections` stores them). Images without
boxes are allowed: they get the documented empty value. Each image's result depends only on
its own boxes, in their stored order.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS: tuple[str, ...] = ("min", "mean", "topk_mean", "sum")


def counts(seg: np.ndarray, n: int) -> np.ndarray:
    """(N,) int64 boxes per image."""
    return np.bincount(seg, minlength=n).astype(np.int64)[:n]


def starts(seg: np.ndarray, n: int) -> np.ndarray:
    """(N,) int64 index of each image's first box (= the next image's start when it has none)."""
    return np.concatenate([[0], np.cumsum(counts(seg, n))[:-1]]).astype(np.int64)


def sums(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """Per-image sums: (B,) -> (N,) or (B, C) -> (N, C) float64, in box order; 0 when empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        return np.bincount(seg, weights=v, minlength=n)[:n]
    out = np.zeros((n, v.shape[1]), np.float64)
    have = counts(seg, n) > 0
    if have.any():
        out[have] = np.add.reduceat(v, starts(seg, n)[have], axis=0)
    return out


def minimum(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """(B,) -> (N,) float64 per-image minimum; NaN when empty."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(n, np.nan)
    have = counts(seg, n) > 0
    if have.any():
        out[have] = np.minimum.reduceat(v, starts(seg, n)[have])
    return out


def first_of_sorted(keys: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """(N,) int64 index (into the B boxes) of each image's box with the lowest ``keys`` value,
    the first such box on ties (``np.argmin`` per image); -1 when empty."""
    order = np.lexsort((np.asarray(keys), seg))
    out = np.full(n, -1, np.int64)
    have = counts(seg, n) > 0
    out[have] = order[starts(seg, n)[have]]
    return out


def lowest_k(keys: np.ndarray, seg: np.ndarray, n: int, k: int) -> np.ndarray:
    """(B,) bool: each image's ``k`` boxes with the lowest ``keys`` (earlier boxes first on
    ties), all of them when it has fewer."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    order = np.lexsort((np.asarray(keys), seg))
    rank = np.arange(len(order)) - starts(seg, n)[seg[order]]
    keep = np.zeros(len(order), bool)
    keep[order[rank < k]] = True
    return keep


def aggregate(values: np.ndarray, seg: np.ndarray, n: int, how: str, top_k: int) -> np.ndarray:
    """(B,) box scores on [0, 1] -> (N,) image scores on [0, 1]; NaN for images without boxes.

    ``min``: the least certain box; ``mean``: the average box; ``topk_mean``: the mean of the
    ``top_k`` lowest; ``sum``: ``1 / (1 + sum(1 - s))`` (many uncertain boxes add up).
    """
    v = np.asarray(values, dtype=np.float64)
    c = counts(seg, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "min":
            return minimum(v, seg, n)
        if how == "mean":
            return np.where(c > 0, sums(v, seg, n) / c, np.nan)
        if how == "topk_mean":
            if top_k < 1:
                raise ValueError(f"top_k must be >= 1; got {top_k}")
            keep = lowest_k(v, seg, n, top_k)
            return np.where(c > 0, sums(v[keep], seg[keep], n) / np.minimum(c, top_k), np.nan)
        if how == "sum":
            return np.where(c > 0, 1.0 / (1.0 + sums(1.0 - v, seg, n)), np.nan)
    raise ValueError(f"aggregation must be one of {list(AGGREGATIONS)}; got {how!r}")
