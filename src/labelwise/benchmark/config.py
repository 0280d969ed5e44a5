"""What a strategy benchmark runs: the configuration and its two presets (quick and full).

A benchmark replays the active-learning loop with a simulated oracle for every
(protocol, strategy, seed) trajectory. Everything here is plain data (frozen dataclasses):
the runner, the CLI and the Prefect flow all build one :class:`BenchmarkConfig`.

Protocols
---------
* ``scratch``: every round trains a NEW model from the yaml (``model``, random init seeded with
  the trajectory's seed) on all labels so far. Chosen over fine-tuning the previous round's
  weights so that a round's model depends only on its labelled set (no path dependence between
  strategies) and every strategy gets exactly the same recipe.
* ``warm``: every round fine-tunes the same base detector, trained ONCE on a disjoint
  source-domain set (bundled data: ``generate_digits(..., DigitsConfig(domain="source"))``) and
  cached on disk under a hash of its configuration. This is how real users start (from their
  own pretrained weights); ``base_weights`` may point at such a ``.pt`` file instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["scratch", "warm"]
PROTOCOLS: tuple[Protocol, ...] = ("scratch", "warm")
BASELINE = "random"
# Strategies compared by default: every registered strategy that needs a model, plus random.
# cold_start (diversity only, for when no model exists) is left out unless asked for.
EXCLUDED_BY_DEFAULT = ("cold_start",)


def default_strategies() -> tuple[str, ...]:
    """``random`` first, then every registered strategy except :data:`EXCLUDED_BY_DEFAULT`.

    Read from the registry at call time, so a newly registered strategy is compared too.
    """
    from labelwise.strategies import STRATEGIES

    names = [n for n in STRATEGIES if n != BASELINE and n not in EXCLUDED_BY_DEFAULT]
    return (BASELINE, *names)


@dataclass(frozen=True)
class DataSpec:
    """A YOLO-format data set with labels, replayed by the simulated oracle.

    Attributes:
        pool_images: folder of pool images (the "unlabelled" pool).
        truth_labels: folder of their YOLO label files (same stem, ``.txt``); an image without a
            file has no objects, as in ultralytics.
        data_yaml: ultralytics data yaml with absolute ``test`` (the fixed evaluation split),
            ``val`` (used by ultralytics at the end of training) and ``names``.
        manifest: optional digits manifest.json (rare classes, near-duplicate cluster ids).
        rare_classes: class ids counted as rare; None = from the manifest, else the classes
            holding less than ``rare_share`` of the pool's boxes.
    """

    pool_images: Path
    truth_labels: Path
    data_yaml: Path
    manifest: Path | None = None
    rare_classes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BenchmarkConfig:
    """Every knob of a benchmark run.

    Attributes:
        out: output folder (CSV, PNGs, summary, MLflow sqlite store, job folders).
        preset: name recorded in every output (``quick``, ``full`` or ``custom``).
        strategies: names from the strategy registry; ``random`` is always included.
        seeds: trajectories per strategy and protocol (seeds 0..seeds-1).
        protocols: any of ``scratch``, ``warm``.
        rounds: selection rounds after round 0 (round 0 = the shared random initial set).
        initial: images in the initial labelled set (same per seed for every strategy).
        per_round: images the oracle labels per round.
        workers: trajectories trained side by side (processes; each pinned to ``threads``).
        threads: torch threads per worker process.
        model: ultralytics model yaml (random init).
        imgsz: train / inference size in pixels.
        epochs, min_image_passes: epochs per round = max(epochs, ceil(passes / images)).
        batch, lr0, optimizer: the training recipe (nbs = batch, mosaic off, warmup 1).
        base_epochs, base_pool_images: warm start base detector recipe (source domain).
        base_weights: use this .pt as the warm-start base instead of training one.
        pool_images, val_images, test_images: sizes of the bundled digits set (target domain).
        data: a custom data set; None = the bundled long-tail digits set under ``out/data``.
        aggregation, confidence_floor, top_k, no_box_score: scoring rule (see scoring.py).
        diversity_weight, candidate_factor, class_balance: selection settings.
        conf: prediction threshold for scoring.
        cache_dir: where base detectors are cached (default ``out/cache``).
    """

    out: Path
    preset: str = "custom"
    strategies: tuple[str, ...] = ()
    seeds: int = 3
    protocols: tuple[Protocol, ...] = PROTOCOLS
    rounds: int = 5
    initial: int = 16
    per_round: int = 16
    workers: int = 2
    threads: int = 1
    model: str = "yolov8n.yaml"
    imgsz: int = 128
    epochs: int = 20
    min_image_passes: int = 800
    batch: int = 8
    lr0: float = 0.002
    optimizer: str = "AdamW"
    base_epochs: int = 30
    base_pool_images: int = 400
    base_weights: Path | None = None
    pool_images: int = 400
    val_images: int = 20
    test_images: int = 120
    data: DataSpec | None = None
    aggregation: str = "min"
    confidence_floor: float = 0.25
    top_k: int = 3
    no_box_score: float = 0.0
    diversity_weight: float = 0.5
    candidate_factor: int = 10
    class_balance: bool = False
    conf: float = 0.01
    cache_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).expanduser().resolve())
        strategies = tuple(self.strategies) or default_strategies()
        if BASELINE not in strategies:
            strategies = (BASELINE, *strategies)
        from labelwise.strategies import STRATEGIES

        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; expected names from {sorted(STRATEGIES)}")
        object.__setattr__(self, "strategies", tuple(dict.fromkeys(strategies)))
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ValueError(f"protocols must be a non-empty subset of {list(PROTOCOLS)}; got {self.protocols}")
        for name in ("seeds", "rounds", "initial", "per_round", "workers", "threads", "epochs", "batch"):
            if getattr(self, name) < (0 if name == "rounds" else 1):
                raise ValueError(f"{name} must be >= 1 (rounds >= 0); got {getattr(self, name)}")
        if self.aggregation not in ("min", "mean", "topk_mean", "sum"):
            raise ValueError(f"aggregation must be one of min, mean, topk_mean, sum; got {self.aggregation!r}")
        if self.data is None and self.initial + self.rounds * self.per_round > self.pool_images:
            raise ValueError(
                f"initial + rounds x per_round = {self.initial + self.rounds * self.per_round} must "
                f"not exceed pool_images ({self.pool_images})"
            )

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seeds))

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).resolve() if self.cache_dir else self.out / "cache"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able values (paths as strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def replace(self, **changes: Any) -> "BenchmarkConfig":
        return dataclasses.replace(self, **changes)


def config_hash(values: dict[str, Any], length: int = 12) -> str:
    """Stable SHA-256 of JSON-able ``values`` (sorted keys), hex[:length]."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# Presets: chosen from timings measured on a 2-core CPU machine (see docs/benchmarks.md).
# "full" fine-tunes a base trained for 50 epochs on the source domain (mAP50 0.19 on the target
# test split; 15 epochs gave 0.11) with at least 1600 image passes per round: with 320 passes,
# random sampling gained only +0.04 mAP50 from 16 to 64 images, too flat a curve to tell
# strategies apart.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        seeds=2, rounds=2, initial=12, per_round=12, imgsz=96, epochs=8, min_image_passes=240,
        pool_images=200, val_images=12, test_images=60, base_epochs=10, base_pool_images=200,
    ),
    "full": dict(
        seeds=3, rounds=3, initial=16, per_round=16, imgsz=96, epochs=20, min_image_passes=1600,
        pool_images=300, val_images=16, test_images=80, base_epochs=50, base_pool_images=300,
    ),
}


def preset(name: str, out: Path, **overrides: Any) -> BenchmarkConfig:
    """The ``quick`` or ``full`` configuration with ``overrides`` (None values ignored)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return BenchmarkConfig(out=out, preset=name, **values)
