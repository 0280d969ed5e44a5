"""The ceiling: the same start model fine-tuned by the same recipe on EVERY pool image.

No selection of a subset can be expected to beat it, so it says how much of the gap between
round 0 and the best this pool allows a strategy closed, and what "90 % of the ceiling" is.
One training per (protocol, seed), cached under ``cache_dir/ceiling-<hash>.json`` (the hash
covers the recipe, the start model, the pool and the test split).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labelwise.benchmark.config import BenchmarkConfig, config_hash
from labelwise.benchmark.data import PreparedData


@dataclass(frozen=True)
class CeilingJob:
    """One ceiling training: the protocol's start model on the whole pool, seeded."""

    protocol: str
    seed: int
    start_ref: str

    @property
    def key(self) -> str:
        return f"ceiling-{self.protocol}-seed{self.seed}"


@dataclass(frozen=True)
class Ceiling:
    """The curve metric on the test split after training on every pool image.

    Attributes:
        value, secondary: the task's curve metric and its companion
            (:class:`~labelwise.benchmark.tasks.CurveMetric`: mAP50 and mAP50-95 for detection).
        metric: the curve metric's column (``map50``, ``mask_map50``, ``top1``).
    """

    protocol: str
    seed: int
    value: float
    secondary: float
    images: int
    boxes: int
    epochs: int
    train_seconds: float
    metric: str = "map50"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Ceiling":
        """Inverse of :meth:`as_dict`; also reads the detection-only files written before task
        types (``map50`` / ``map50_95``)."""
        values = dict(values)
        if "map50" in values:
            values["value"], values["secondary"] = values.pop("map50"), values.pop("map50_95")
        return cls(**values)


def _start_identity(ref: str) -> dict[str, Any]:
    path = Path(ref)
    if path.is_file():
        stat = path.stat()
        return {"ref": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"ref": ref}


def ceiling_path(cfg: BenchmarkConfig, data: PreparedData, job: CeilingJob) -> Path:
    values = {
        "recipe": cfg.recipe_values(), "start": _start_identity(job.start_ref), "seed": job.seed,
        "pool": [p.name for p in data.pool_paths], "truth": str(data.truth_dir),
        "test": str(data.test_dir), "format": 1, **cfg.task_identity(),
    }
    return cfg.resolved_cache_dir / f"ceiling-{config_hash(values)}.json"


def train_ceiling(cfg: BenchmarkConfig, data: PreparedData, job: CeilingJob) -> Ceiling:
    """Train (or reuse) the ceiling of ``job``. Runs in a worker process."""
    from labelwise.benchmark.trajectory import train_and_evaluate

    target = ceiling_path(cfg, data, job)
    if target.is_file():
        saved = json.loads(target.read_text(encoding="utf-8"))
        return Ceiling.from_dict({**saved, "protocol": job.protocol, "seed": job.seed})
    work = cfg.resolved_cache_dir / target.stem
    settings = cfg.product_settings()
    everything = list(range(len(data.pool_paths)))
    oracle = data.oracle()
    labels = [oracle.reveal(p.stem) for p in data.pool_paths]
    _, trained, metrics = train_and_evaluate(settings, data, job.start_ref,
                                             [data.train_item(oracle, i) for i in everything], work,
                                             "ceiling", job.seed)
    curve = data.task.curve
    result = Ceiling(job.protocol, job.seed, metrics[curve.column], metrics[curve.secondary], len(everything),
                     int(sum(len(b) for b in labels)), trained.epochs, round(trained.seconds, 1), curve.column)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    tmp.replace(target)
    shutil.rmtree(work, ignore_errors=True)
    return result
