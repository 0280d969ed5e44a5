"""Selection at scale: diverse_select vs a plain full-pool greedy k-center, same data, same run."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from labelwise.selection import diverse_select, kcenter_greedy


@dataclass(frozen=True)
class SelectionBench:
    pool: int
    labelled: int
    dim: int
    k: int
    candidate_pool: int
    diverse_seconds: float
    kcenter_pool_only_seconds: float
    kcenter_with_labelled_seconds: float
    speedup_vs_pool_only: float
    speedup_vs_with_labelled: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bench_selection(
    pool: int = 100_000, labelled: int = 10_000, dim: int = 512, k: int = 50,
    diversity_weight: float = 0.5, seed: int = 0, repeats: int = 3,
) -> SelectionBench:
    """Best-of-``repeats`` seconds on random normal float32 data: ``diverse_select`` (labelled set
    included) against plain greedy k-center over the whole pool, both without the labelled set
    (the cheap, commonly quoted variant) and with it (the same problem; run once: it is slow)."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((pool, dim), dtype=np.float32)
    lab = rng.standard_normal((labelled, dim), dtype=np.float32)
    scores = rng.random(pool)

    def best(fn, repeats: int = repeats) -> float:  # type: ignore[no-untyped-def]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    diverse = best(lambda: diverse_select(scores, emb, k, diversity_weight, np.random.default_rng(seed),
                                          labelled_embeddings=lab))
    pool_only = best(lambda: kcenter_greedy(emb, k, np.random.default_rng(seed)))
    with_labelled = best(lambda: kcenter_greedy(emb, k, np.random.default_rng(seed), labelled_embeddings=lab),
                         repeats=1)
    return SelectionBench(pool, labelled, dim, k, 10 * k, diverse, pool_only, with_labelled,
                          pool_only / diverse, with_labelled / diverse)
