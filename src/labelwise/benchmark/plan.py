"""Job planning: one job per (protocol, strategy, seed) trajectory, sharing initial sets.

Round 0 of every strategy under one seed starts from the SAME random labelled set
(:func:`initial_set`), drawn from ``numpy.random.default_rng([seed, INITIAL_TAG])``; protocols
share it too, so the only thing that differs between two trajectories of a seed is the strategy
(and the protocol's starting weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.benchmark.config import PSEUDO_SUFFIX

INITIAL_TAG = 0x1A17


def initial_set(pool_size: int, size: int, seed: int) -> tuple[int, ...]:
    """Sorted indices of the initial labelled set: ``size`` of ``pool_size`` drawn by ``seed``."""
    if not 1 <= size <= pool_size:
        raise ValueError(f"initial set size must be in [1, pool size {pool_size}]; got {size}")
    rng = np.random.default_rng([seed, INITIAL_TAG])
    return tuple(int(i) for i in np.sort(rng.choice(pool_size, size=size, replace=False)))


def round_rng(seed: int, round_number: int) -> np.random.Generator:
    """The selection Generator of a round: same for every strategy of a seed."""
    return np.random.default_rng([seed, round_number])


@dataclass(frozen=True)
class Job:
    """One trajectory. Everything a worker process needs, as plain (picklable) values.

    Attributes:
        protocol, strategy, seed: what the trajectory is.
        initial: indices into the sorted pool of the round-0 labelled set.
        start_ref: model every round trains from: the yaml (scratch) or base .pt (warm).
        job_dir: the job's own folder (training sets, runs, state.json, result.json).
    """

    protocol: str
    strategy: str
    seed: int
    initial: tuple[int, ...]
    start_ref: str
    job_dir: str
    pseudo: bool = False

    @property
    def label(self) -> str:
        """The name in every table: the strategy, ``+pseudo`` for its semi-supervised twin."""
        return f"{self.strategy}{PSEUDO_SUFFIX}" if self.pseudo else self.strategy

    @property
    def key(self) -> str:
        return job_key(self.protocol, self.label, self.seed)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if not self.pseudo:  # fingerprints of supervised jobs stay what they were
            values.pop("pseudo")
        return values


def job_key(protocol: str, strategy: str, seed: int) -> str:
    return f"{protocol}-{strategy}-seed{seed}"


def plan_jobs(
    protocols: tuple[str, ...],
    strategies: tuple[str, ...],
    seeds: tuple[int, ...],
    pool_size: int,
    initial: int,
    start_refs: dict[str, str],
    jobs_dir: Path,
    pseudo_strategies: tuple[str, ...] = (),
) -> list[Job]:
    """Jobs ordered seed-major (a cut-short run still has whole seeds), then protocol, strategy.

    Args:
        start_refs: protocol -> model ref every round of that protocol trains from.
    """
    missing = [p for p in protocols if p not in start_refs]
    if missing:
        raise ValueError(f"start_refs lacks protocol(s) {missing}; got {sorted(start_refs)}")
    jobs = []
    for seed in seeds:
        init = initial_set(pool_size, initial, seed)
        for protocol in protocols:
            for strategy in strategies:
                key = job_key(protocol, strategy, seed)
                jobs.append(Job(protocol, strategy, seed, init, start_refs[protocol], str(Path(jobs_dir) / key)))
            for strategy in pseudo_strategies:
                key = job_key(protocol, f"{strategy}{PSEUDO_SUFFIX}", seed)
                jobs.append(Job(protocol, strategy, seed, init, start_refs[protocol], str(Path(jobs_dir) / key),
                                pseudo=True))
    return jobs
