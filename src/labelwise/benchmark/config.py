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

One recipe
----------
The benchmark trains, scores and selects with the product's own code under the product's own
settings (:meth:`BenchmarkConfig.product_settings`): ``training`` (the recipe of
:func:`labelwise.training.train_round`), ``scoring`` (:func:`labelwise.scorebatch.scoring_rule`),
``selection`` and ``embedder``. Every knob left at None here is the product's default; the
``pool`` preset sets none of the recipe's knobs, so it measures what users get. The one
documented difference is ``training.start_from = "base"``: the product fine-tunes its champion
round after round, the benchmark restarts every round from the same base (path independence).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.config import Settings

Protocol = Literal["scratch", "warm"]
PROTOCOLS: tuple[Protocol, ...] = ("scratch", "warm")
BASELINE = "random"
# random's images labelled with NO pre-annotations (every true box drawn): how teams label today.
# It shares random's trainings (same images) and differs only in cost.
SPRINT = "random_sprint"
# A strategy's semi-supervised twin (training.pseudo_labels on) is named "<strategy>+pseudo".
PSEUDO_SUFFIX = "+pseudo"
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
        pseudo_strategies: strategies that also run as a semi-supervised twin
            (``<name>+pseudo``: the product's pseudo-label rule on, ``training.pseudo_*``).
        pseudo_protocols: the protocols those twins run in (warm: from scratch the first
            rounds' models have almost no confident box to pseudo-label with).
        seeds: trajectories per strategy and protocol (seeds 0..seeds-1).
        scratch_seeds: fewer seeds for the scratch protocol (None = ``seeds``).
        protocols: any of ``scratch``, ``warm``.
        rounds: selection rounds after round 0 (round 0 = the shared random initial set).
        initial: images in the initial labelled set (same per seed for every strategy).
        per_round: images the oracle labels per round.
        workers: trajectories trained side by side (processes; each pinned to ``threads``).
        threads: torch threads per worker process.
        model: ultralytics model yaml (random init).
        imgsz: train / inference size in pixels.
        epochs, min_image_passes, batch, lr0, optimizer: the product's training recipe
            (``TrainingSettings``); None = the product's default.
        base_epochs, base_pool_images: warm start base detector recipe (source domain).
        base_weights: use this .pt as the warm-start base instead of training one.
        pool_images, val_images, test_images: sizes of the bundled digits set (target domain).
        duplicate_fraction: share of its pool in near-duplicate clusters.
        data: a custom data set; None = the bundled long-tail digits set under ``out/data``.
        aggregation, confidence_floor, top_k, no_box_score, mask_weight: the product's scoring
            rule (``ScoringSettings``; None = default; ``mask_weight`` counts for segmentation only).
        preannotation_conf: the pre-annotation threshold (``labelstudio.preannotation_conf``:
            boxes at or above it are sent to reviewers, so reviewer edits count against them;
            None = the product's default).
        diversity_weight, candidate_factor, class_balance: ``SelectionSettings`` (None = default).
        conf: prediction threshold for scoring.
        ceiling: train once per protocol and seed on the whole pool (cached) to know how far
            any selection could go.
        cache_dir: where base detectors are cached (default ``out/cache``).
        task: ``detect``, ``classify`` or ``segment``: the bundled data set, the model family,
            the training set format and the metric the curves follow
            (:mod:`labelwise.benchmark.tasks`).
    """

    out: Path
    preset: str = "custom"
    task: str = "detect"
    strategies: tuple[str, ...] = ()
    pseudo_strategies: tuple[str, ...] = ()
    pseudo_protocols: tuple[Protocol, ...] = ("warm",)
    seeds: int = 3
    scratch_seeds: int | None = None
    protocols: tuple[Protocol, ...] = PROTOCOLS
    rounds: int = 5
    initial: int = 16
    per_round: int = 16
    workers: int = 2
    threads: int = 1
    model: str = ""  # "" = the task's stock yaml (yolov8n.yaml, yolov8n-cls.yaml, yolov8n-seg.yaml)
    imgsz: int = 128
    epochs: int | None = None
    min_image_passes: int | None = None
    batch: int | None = None
    lr0: float | None = None
    optimizer: str | None = None
    base_epochs: int = 30
    base_pool_images: int = 400
    base_weights: Path | None = None
    pool_images: int = 400
    val_images: int = 20
    test_images: int = 120
    duplicate_fraction: float = 0.3
    data: DataSpec | None = None
    aggregation: str | None = None
    confidence_floor: float | None = None
    preannotation_conf: float | None = None
    top_k: int | None = None
    no_box_score: float | None = None
    mask_weight: float | None = None
    diversity_weight: float | None = None
    candidate_factor: int | None = None
    class_balance: bool | None = None
    conf: float = 0.01
    ceiling: bool = True
    cache_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from labelwise.benchmark.tasks import benchmark_task

        object.__setattr__(self, "out", Path(self.out).expanduser().resolve())
        task = benchmark_task(self.task)  # a ValueError names the task types
        object.__setattr__(self, "task", task.task_type.value)
        if not self.model:
            object.__setattr__(self, "model", task.default_model)
        if self.pseudo_strategies and self.task != "detect":
            raise ValueError(f"pseudo-label twins (pseudo_strategies) are measured for detection only; "
                             f"got {list(self.pseudo_strategies)} for a {self.task!r} benchmark "
                             "(expected none)")
        strategies = tuple(self.strategies) or default_strategies()
        if BASELINE not in strategies:
            strategies = (BASELINE, *strategies)
        from labelwise.strategies import STRATEGIES

        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; expected names from {sorted(STRATEGIES)}")
        object.__setattr__(self, "strategies", tuple(dict.fromkeys(strategies)))
        unknown = [s for s in self.pseudo_strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown pseudo_strategies {unknown}; expected names from {sorted(STRATEGIES)}")
        object.__setattr__(self, "pseudo_strategies", tuple(dict.fromkeys(self.pseudo_strategies)))
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ValueError(f"protocols must be a non-empty subset of {list(PROTOCOLS)}; got {self.protocols}")
        if self.scratch_seeds is not None and self.scratch_seeds < 1:
            raise ValueError(f"scratch_seeds must be >= 1 or None; got {self.scratch_seeds}")
        for name in ("seeds", "rounds", "initial", "per_round", "workers", "threads"):
            if getattr(self, name) < (0 if name == "rounds" else 1):
                raise ValueError(f"{name} must be >= 1 (rounds >= 0); got {getattr(self, name)}")
        self.product_settings()  # the product's own validation of every recipe/scoring knob
        if self.data is None and self.initial + self.rounds * self.per_round > self.pool_images:
            raise ValueError(
                f"initial + rounds x per_round = {self.initial + self.rounds * self.per_round} must "
                f"not exceed pool_images ({self.pool_images})"
            )

    def task_identity(self) -> dict[str, str]:
        """What the task adds to every cache key and fingerprint: nothing for detection (so the
        bases, ceilings and trajectories measured before task types keep their keys),
        ``{"task": ...}`` otherwise."""
        return {} if self.task == "detect" else {"task": self.task}

    @property
    def data_folder(self) -> str:
        """The bundled target set's folder under ``out/data`` (detection's as before)."""
        return "target" if self.task == "detect" else f"target-{self.task}"

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seeds))

    def seeds_for(self, protocol: str) -> tuple[int, ...]:
        """The seeds a protocol runs: ``scratch_seeds`` (at most ``seeds``) for scratch."""
        if protocol == "scratch" and self.scratch_seeds is not None:
            return tuple(range(min(self.seeds, self.scratch_seeds)))
        return self.seed_list

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).resolve() if self.cache_dir else self.out / "cache"

    def product_settings(self) -> "Settings":
        """The product's :class:`~labelwise.config.Settings` this benchmark runs under.

        Knobs left at None take the product's defaults; ``training.start_from`` is ``base``
        (see the module docstring).
        """
        from labelwise.config import (
            DetectorSettings,
            EmbedderSettings,
            LabelStudioSettings,
            ScoringSettings,
            SelectionSettings,
            Settings,
            TrainingSettings,
        )

        def given(**values: Any) -> dict[str, Any]:
            return {k: v for k, v in values.items() if v is not None}

        return Settings(
            state_dir=self.out / "state",
            detector=DetectorSettings(model=self.model, imgsz=self.imgsz, threads=self.threads,
                                      conf=self.conf, batch=32),
            embedder=EmbedderSettings(),
            scoring=ScoringSettings(**given(aggregation=self.aggregation, top_k=self.top_k,
                                            confidence_floor=self.confidence_floor,
                                            no_box_score=self.no_box_score, mask_weight=self.mask_weight)),
            selection=SelectionSettings(**given(limit=self.per_round, diversity_weight=self.diversity_weight,
                                                candidate_factor=self.candidate_factor,
                                                class_balance=self.class_balance)),
            labelstudio=LabelStudioSettings(**given(preannotation_conf=self.preannotation_conf)),
            training=TrainingSettings(start_from="base", **given(
                epochs=self.epochs, min_image_passes=self.min_image_passes, batch=self.batch,
                lr0=self.lr0, optimizer=self.optimizer)),
        )

    def job_settings(self, pseudo: bool) -> "Settings":
        """:meth:`product_settings` with the pseudo-label rule on for a ``+pseudo`` twin and OFF
        for every other trajectory, whatever the product's default is."""
        st = self.product_settings()
        return st.model_copy(update={"training": st.training.model_copy(update={"pseudo_labels": pseudo})})

    def recipe_values(self) -> dict[str, Any]:
        """The product settings that shape a trajectory (hashed into its fingerprint)."""
        st = self.job_settings(pseudo=False)
        values = {name: getattr(st, name).model_dump(mode="json")
                  for name in ("detector", "embedder", "scoring", "selection")}
        values["selection"].pop("strategy")  # every trajectory names its own strategy
        if self.task != "segment" or not values["scoring"]["mask_weight"]:
            # no masks, or masks left out of scores: the trajectories of before mask_weight
            values["scoring"].pop("mask_weight")
        # what edits count against: the task's threshold (detection's 0.1 as before)
        values["preannotation_conf"] = st.labelstudio.preannotation_floor(self.task)
        return {**values, "training": training_values(st.training)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able values (paths as strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def replace(self, **changes: Any) -> "BenchmarkConfig":
        return dataclasses.replace(self, **changes)


def training_values(training: Any) -> dict[str, Any]:
    """A TrainingSettings' values that shape its weights: the pseudo-label knobs only when
    pseudo-labels are on (so cached supervised results survive new pseudo-label options)."""
    values = training.model_dump(mode="json")
    if not values.get("pseudo_labels"):
        values = {k: v for k, v in values.items() if not k.startswith("pseudo_")}
    return values


def config_hash(values: dict[str, Any], length: int = 12) -> str:
    """Stable SHA-256 of JSON-able ``values`` (sorted keys), hex[:length]."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# Presets: chosen from timings measured on a 2-core CPU machine (see docs/benchmarks.md).
# quick and full are the earlier, smaller settings and keep their own epoch rules; "pool" is the
# scenario users have (a pool of 1,500 images with 40 % in near-duplicate clusters and a long
# tail; 20 initial labels, then 5 rounds of 20) and trains by the product's default recipe.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        seeds=2, rounds=2, initial=12, per_round=12, imgsz=96, epochs=8, min_image_passes=240,
        pool_images=200, val_images=12, test_images=60, base_epochs=10, base_pool_images=200,
    ),
    "full": dict(
        seeds=3, rounds=3, initial=16, per_round=16, imgsz=96, epochs=20, min_image_passes=1600,
        pool_images=300, val_images=16, test_images=80, base_epochs=50, base_pool_images=300,
    ),
    "pool": dict(
        seeds=3, scratch_seeds=1, rounds=5, initial=20, per_round=20, imgsz=96, pool_images=1500,
        pseudo_strategies=("random", "rare_class_diverse", "edit_aware_diverse"), val_images=20,
        test_images=200, duplicate_fraction=0.4, base_epochs=50, base_pool_images=300,
    ),
    # The task-type runs of docs/benchmarks.md (warm protocol, 3 seeds; the product's recipe).
    "segment": dict(
        task="segment", seeds=3, rounds=3, initial=10, per_round=10, imgsz=96, pool_images=300,
        val_images=12, test_images=60, base_epochs=30, base_pool_images=200, ceiling=False,
    ),
    "classify": dict(
        task="classify", seeds=3, rounds=4, initial=20, per_round=20, imgsz=64, pool_images=600,
        val_images=100, test_images=200, base_epochs=30, base_pool_images=760,
    ),
}


def preset(name: str, out: Path, **overrides: Any) -> BenchmarkConfig:
    """The ``quick``, ``full``, ``pool``, ``segment`` or ``classify`` configuration with
    ``overrides`` (None values ignored). ``segment`` and ``classify`` set their task type."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**PRESETS[name], **given}
    if values.get("task", "detect") != "detect" and "pseudo_strategies" not in given:
        values.pop("pseudo_strategies", None)  # the preset's pseudo twins are detection's
    return BenchmarkConfig(out=out, preset=name, **values)
