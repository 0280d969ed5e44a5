"""Selectors: which images to label, given their scores and (optionally) embeddings.

Utility and selector are composed, not entangled (as in modAL): scores come from
:mod:`labelwise.scoring`; these functions only decide. Every function that breaks ties or samples
takes an explicit :class:`numpy.random.Generator`.

Scale: :func:`diverse_select` never builds an N x N matrix. It restricts the greedy search to the
``candidate_pool`` most uncertain images (M of them, default 10 x k), computes their distance to
the labelled set in chunks (M x L), then runs k greedy steps over M candidates: O(M (L + k) d)
time and O(M d + chunk) memory, independent of the pool size beyond the initial partial sort.
Its embeddings may be :class:`LazyRows`: only the M candidates' rows are ever read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DISTANCE_CHUNK = 8192


@dataclass(frozen=True)
class LazyRows:
    """An (N, d) matrix whose rows are read only when indexed (a pool's embeddings in storage).

    ``rows[indices]`` with (K,) int indices returns ``fetch(indices)``: (K, d) float32 in that
    order. The fetcher raises when a row is missing; nothing else reads it.
    """

    n: int
    dim: int
    fetch: Callable[[np.ndarray], np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"row indices must lie in [0, {self.n}); got [{idx.min()}, {idx.max()}]")
        rows = np.asarray(self.fetch(idx), dtype=np.float32)
        if rows.shape != (idx.size, self.dim):
            raise ValueError(f"fetch must return ({idx.size}, {self.dim}) rows; got {rows.shape}")
        return rows


Rows = np.ndarray | LazyRows
"""Embeddings as a matrix in memory or rows read on demand."""


def _check_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be (N,); got shape {s.shape}")
    if s.size and not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; got {int((~np.isfinite(s)).sum())} NaN/inf values")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError(f"scores must be on [0, 1]; got min {s.min():.6g}, max {s.max():.6g}")
    return s


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")


def _check_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"diversity_weight must lie in [0, 1]; got {weight}")


def unit_rows(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    """L2-normalise rows of (N, d) float data to float32 (zero rows stay zero)."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, d); got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got NaN or inf")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


def rank_order(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of (N,) scores ascending (most uncertain first); ties in random order."""
    s = _check_scores(scores)
    tiebreak = rng.random(s.shape[0])
    return np.lexsort((tiebreak, s))


def rank_select(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The k lowest of (N,) scores, most uncertain first; (min(k, N),) int64 indices."""
    _check_k(k)
    s = _check_scores(scores)
    if s.shape[0] <= k:
        return rank_order(s, rng).astype(np.int64)
    # Partial sort first so 100k-image pools do not pay for a full sort, then order the top part.
    # Include every index tied with the k-th value so the random tie-break stays fair.
    kth = np.partition(s, k - 1)[k - 1]
    part = np.flatnonzero(s <= kth)
    order = part[rank_order(s[part], rng)]
    return order[:k].astype(np.int64)


def random_select(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct indices of n drawn uniformly; (min(k, n),) int64."""
    _check_k(k)
    return rng.choice(n, size=min(k, n), replace=False).astype(np.int64)


def min_distance(points: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Distance of each of (M, d) unit vectors to its nearest of (L, d) reference vectors.

    ``reference`` rows need not be normalised: each chunk's similarities are divided by the
    row norms (one pass, no normalised copy of the reference set). Returns (M,) float32 on
    [0, 1]: Euclidean distance between unit vectors, halved. With no reference, every distance
    is 1. Works in chunks of ``DISTANCE_CHUNK`` reference rows.
    """
    m = points.shape[0]
    if reference is None or reference.shape[0] == 0:
        return np.ones(m, np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    if ref.ndim != 2 or ref.shape[1] != points.shape[1]:
        raise ValueError(
            f"labelled embeddings must be (L, {points.shape[1]}) like the pool; got shape {ref.shape}"
        )
    best = np.full(m, -1.0, np.float32)
    for start in range(0, ref.shape[0], DISTANCE_CHUNK):
        chunk = ref[start : start + DISTANCE_CHUNK]
        norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        sims = points @ chunk.T
        sims *= inv
        np.maximum(best, sims.max(axis=1), out=best)
    return cosine_to_distance(best)


def cosine_to_distance(cos: np.ndarray) -> np.ndarray:
    """Unit-vector cosine similarity -> Euclidean distance / 2, on [0, 1]."""
    return (np.sqrt(np.clip(2.0 - 2.0 * cos, 0.0, 4.0)) / 2.0).astype(np.float32)


def distance_scale(unit: np.ndarray) -> float:
    """Typical spread of (M, d) unit vectors: twice the MEDIAN distance to their mean direction.

    A robust scale: one outlier image must not shrink every other distance to nothing (the
    maximum did exactly that on real detector features: a 0.86 outlier against 0.3 typical).
    """
    centre = unit.mean(axis=0)
    norm = float(np.linalg.norm(centre))
    if unit.shape[0] < 2 or norm == 0:
        return 1.0
    return max(2.0 * float(np.median(cosine_to_distance(unit @ (centre / norm)))), 1e-6)


def _minmax(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def rarity_weights(class_counts: np.ndarray) -> np.ndarray:
    """(C,) class weights with mean 1, proportional to 1 / (boxes of the class + 1).

    Args:
        class_counts: (C,) non-negative box counts per class (labelled boxes, or the pool's
            expected boxes when nothing is labelled yet).
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(
            f"class_counts must be a non-empty 1-D array of counts >= 0; got shape {counts.shape}"
        )
    inverse = 1.0 / (counts + 1.0)
    return inverse * (counts.size / inverse.sum())


def rare_class_gain(class_mass: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N,) rarity-weighted expected boxes: ``class_mass @ weights``.

    Args:
        class_mass: (N, C) expected boxes per class of each image (see ``scoring.class_mass``).
        weights: (C,) class weights (:func:`rarity_weights`).
    """
    mass = np.asarray(class_mass, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if mass.ndim != 2 or w.shape != (mass.shape[1],):
        raise ValueError(f"class_mass must be (N, C) and weights (C,); got {mass.shape} and {w.shape}")
    return mass @ w


def diverse_select(
    scores: np.ndarray,
    embeddings: Rows,
    k: int,
    diversity_weight: float,
    rng: np.random.Generator,
    labelled_embeddings: np.ndarray | None = None,
    candidate_pool: int | None = None,
    class_ids: np.ndarray | None = None,
    class_balance: bool = False,
) -> np.ndarray:
    """Greedy uncertainty x diversity selection; (min(k, N),) int64 indices in pick order.

    Args:
        scores: (N,) on [0, 1], lower = more uncertain.
        embeddings: (N, d) image embeddings (any scale: rows are L2-normalised here), or
            :class:`LazyRows` (only the M candidates' rows are read).
        k: how many to pick.
        diversity_weight: w in [0, 1]. Each step picks the candidate maximising
            ``(1 - w) * u + w * d`` where ``u`` is the candidate's uncertainty (1 - score,
            min-max scaled over the candidates) and ``d`` its distance to the nearest image
            already selected OR already labelled, divided by the candidates' typical spread
            (:func:`distance_scale`) and capped at 1, so both terms live on [0, 1].
            w = 0 is pure uncertainty ranking, w = 1 pure diversity (k-center greedy).
        rng: breaks ties among equal scores.
        labelled_embeddings: (L, d) embeddings of images already labelled, or None.
        candidate_pool: M, how many of the most uncertain images the greedy search considers
            (default 10 * k); with w = 1 the candidates are a random sample instead, so
            diversity is sought over the whole pool's spread.
        class_ids: (N,) predicted class per image (-1 = none), used when ``class_balance``.
        class_balance: cap each predicted class at ceil(k / classes among candidates) picks,
            relaxed only when no candidate of an uncapped class is left.
    """
    _check_k(k)
    _check_weight(diversity_weight)
    s = _check_scores(scores)
    n = s.shape[0]
    emb = embeddings if isinstance(embeddings, LazyRows) else np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"embeddings must be ({n}, d) to match scores; got shape {emb.shape}")
    if class_ids is not None and np.asarray(class_ids).shape != (n,):
        raise ValueError(f"class_ids must be ({n},); got shape {np.asarray(class_ids).shape}")
    if n == 0:
        return np.zeros(0, np.int64)
    m = min(n, candidate_pool if candidate_pool is not None else 10 * k)
    m = max(m, min(k, n))
    if diversity_weight >= 1.0:
        candidates = rng.choice(n, size=m, replace=False) if m < n else rng.permutation(n)
    else:
        candidates = rank_select(s, m, rng)
    cand_emb = unit_rows(emb[candidates])
    dist = min_distance(cand_emb, labelled_embeddings)
    scale = distance_scale(cand_emb)
    uncertainty = _minmax(1.0 - s[candidates]).astype(np.float32)
    cls = None if class_ids is None else np.asarray(class_ids)[candidates]
    cap = None
    if class_balance and cls is not None:
        cap = math.ceil(min(k, m) / max(1, np.unique(cls).size))
    taken: dict[int, int] = {}
    available = np.ones(m, bool)
    picks: list[int] = []
    for _ in range(min(k, m)):
        utility = (1.0 - diversity_weight) * uncertainty + diversity_weight * np.minimum(dist / scale, 1.0)
        allowed = available.copy()
        if cap is not None and cls is not None:
            capped = [c for c, count in taken.items() if count >= cap]
            if capped:
                within = allowed & ~np.isin(cls, capped)
                if within.any():
                    allowed = within
        utility = np.where(allowed, utility, -np.inf)
        best = int(np.argmax(utility))
        picks.append(best)
        available[best] = False
        if cls is not None:
            taken[int(cls[best])] = taken.get(int(cls[best]), 0) + 1
        dist = np.minimum(dist, cosine_to_distance(cand_emb @ cand_emb[best]))
    return candidates[np.asarray(picks, np.int64)].astype(np.int64)


def kcenter_greedy(
    embeddings: np.ndarray,
    k: int,
    rng: np.random.Generator,
    labelled_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Plain k-center greedy over the WHOLE pool (Sener & Savarese), the reference baseline.

    O(N (L + k) d): every pool image's distance to the labelled set, then k full-pool updates.
    Kept for benchmarks and cold start on small pools; :func:`diverse_select` is the scalable path.
    """
    _check_k(k)
    emb = unit_rows(embeddings)
    n = emb.shape[0]
    dist = min_distance(emb, labelled_embeddings)
    picks: list[int] = []
    if labelled_embeddings is None or len(labelled_embeddings) == 0:
        first = int(rng.integers(n))
        picks.append(first)
        dist = np.minimum(dist, cosine_to_distance(emb @ emb[first]))
    while len(picks) < min(k, n):
        dist[picks] = -1.0
        best = int(np.argmax(dist))
        picks.append(best)
        dist = np.minimum(dist, cosine_to_distance(emb @ emb[best]))
    return np.asarray(picks, np.int64)
