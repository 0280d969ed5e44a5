"""How well the label-issue finder recovers errors injected at known rates (``labelwise bench
label-issues``).

The protocol, one run per seed ``s`` in ``0..seeds-1`` (each with its own noise draw, fold split
and training seed):

1. **Data**: the bundled target-domain digits pool of the strategy benchmark
   (:func:`labelwise.benchmark.data.prepare_data`), its true labels read through the oracle.
2. **Noise**: in pool order, each image's true (N, 5) YOLO rows go through
   :func:`labelwise.review.simulate.apply_label_noise` (the simulated annotator's noise: drop,
   add, shift and swap at the configured per-box rates) with ``numpy.random.default_rng(s)``;
   every injected error is recorded.
3. **K-fold grading**: the same generator permutes the pool into ``folds`` folds. For fold k the
   product's recipe (:func:`labelwise.benchmark.trajectory.train_and_evaluate`: the product's
   training-set writer and :func:`labelwise.training.train_round`, from the strategy
   benchmark's warm-start base) trains on the NOISY labels of the other folds; that model
   predicts fold k and :func:`labelwise.quality.label_issues.find_label_issues` (the product's
   rule, :class:`~labelwise.quality.label_issues.IssueRule`) compares each image's noisy labels
   with its predictions. No image is graded by a model that trained on it.
4. **Figures**, per finder kind against the injected kind it stands for (:data:`KIND_OF_NOISE`:
   missing_box for drop, spurious_box for add, class_swap for swap, bad_localisation for shift)
   and for ``any`` (any issue against any injected error): an image's score is its highest issue
   score of that kind (0 when it has none); images are ranked by score, highest first, ties in a
   seeded random order; the top ``n = ceil(f * N)`` of the N images are flagged for each fraction
   ``f``. ``precision`` = injected images among the n / n, ``recall`` = injected images among the
   n / all injected images, ``base_rate`` = injected images / N (what a random ranking's precision
   is expected to be), ``lift`` = precision / base rate, ``max_recall`` = the recall n flagged
   images allow at best, ``min(1, n / injected images)``. ``recall_any_kind``: the same recall, with
   the ``any`` ranking: a shifted box whose IoU with the truth fell below the rule's
   ``match_iou`` is no longer "the same object", so the finder reports it as a spurious box plus a
   missing box, which this column still counts as found.
5. Each figure is the mean and sample standard deviation (ddof=1; 0 for one seed) over seeds.

Fold trainings run in a process pool of ``workers`` processes with ``threads`` torch threads each,
like the strategy benchmark; the base detector is shared with (and cached like) it.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.benchmark.config import BenchmarkConfig
from labelwise.benchmark.data import PreparedData
from labelwise.quality.label_issues import (
    BAD_LOCALISATION,
    CLASS_SWAP,
    MISSING_BOX,
    SPURIOUS_BOX,
    IssueRule,
    LabelIssue,
)
from labelwise.review.simulate import InjectedError, LabelNoise

Log = Callable[[str], None]

ANY = "any"
#: The finder kind that stands for each injected kind.
KIND_OF_NOISE: dict[str, str] = {
    "drop": MISSING_BOX, "add": SPURIOUS_BOX, "swap": CLASS_SWAP, "shift": BAD_LOCALISATION,
}
#: Rows of the figures, in print order: (finder kind, injected kind).
ROWS: tuple[tuple[str, str], ...] = (*((k, n) for n, k in KIND_OF_NOISE.items()), (ANY, ANY))
DEFAULT_NOISE = LabelNoise(drop=0.05, add=0.05, shift=0.05, swap=0.05)
RESULT_NAME = "label_issues.json"
TABLE_NAME = "label_issues.md"


@dataclass(frozen=True)
class LabelIssueBenchConfig:
    """What ``labelwise bench label-issues`` runs.

    Attributes:
        out: output folder (``label_issues.json``, ``label_issues.md``, per-fold work folders,
            and the base detector cache unless ``cache_dir`` is given).
        seeds: independent runs (noise draw, fold split, training seed), >= 1.
        folds: K of the K-fold grading, >= 2.
        noise: per-box rates of the injected errors.
        fractions: shares of the images flagged, each in (0, 1].
        rule: the finder's thresholds (the product's defaults).
        pool_images, val_images, test_images, imgsz, base_epochs, base_pool_images, model:
            the bundled digits data and detector, as in the strategy benchmark.
        workers, threads: fold trainings side by side and torch threads each.
        cache_dir: where the warm-start base detector is cached (default ``out/cache``).
        epochs, min_image_passes: the product's training recipe unless given.
    """

    out: Path
    seeds: int = 3
    folds: int = 2
    noise: LabelNoise = DEFAULT_NOISE
    fractions: tuple[float, ...] = (0.05, 0.10)
    rule: IssueRule = field(default_factory=IssueRule)
    pool_images: int = 300
    val_images: int = 16
    test_images: int = 60
    imgsz: int = 96
    base_epochs: int = 50
    base_pool_images: int = 300
    model: str = "yolov8n.yaml"
    workers: int = 2
    threads: int = 1
    cache_dir: Path | None = None
    epochs: int | None = None
    min_image_passes: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).expanduser().resolve())
        if self.seeds < 1 or self.workers < 1 or self.threads < 1:
            raise ValueError(f"seeds, workers and threads must be >= 1; got {self.seeds}, "
                             f"{self.workers}, {self.threads}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2 (each image graded by a model trained on the "
                             f"others); got {self.folds}")
        if not self.fractions or any(not 0.0 < f <= 1.0 for f in self.fractions):
            raise ValueError(f"fractions must be non-empty, each in (0, 1]; got {self.fractions}")
        if not self.noise.any:
            raise ValueError("noise must have at least one positive rate; got all zero "
                             "(there would be nothing to find)")
        if self.pool_images < 2 * self.folds:
            raise ValueError(f"pool_images must be >= 2 x folds ({2 * self.folds}); got {self.pool_images}")

    def benchmark_config(self) -> BenchmarkConfig:
        """The strategy benchmark's configuration for the same data, base and recipe."""
        return BenchmarkConfig(
            out=self.out, seeds=self.seeds, rounds=0, initial=1, per_round=1, workers=self.workers,
            threads=self.threads, model=self.model, imgsz=self.imgsz, epochs=self.epochs,
            min_image_passes=self.min_image_passes, base_epochs=self.base_epochs,
            base_pool_images=self.base_pool_images, pool_images=self.pool_images,
            val_images=self.val_images, test_images=self.test_images, strategies=("random",),
            cache_dir=self.cache_dir, preset="label-issues",
        )


@dataclass(frozen=True)
class RankFigures:
    """One ranking's figures at one flagged fraction.

    Attributes:
        flagged: images flagged (``ceil(fraction * images)``).
        precision, recall: in [0, 1]; recall is NaN when nothing was injected.
        base_rate: injected images / images.
        max_recall: the best recall ``flagged`` images allow, ``min(1, flagged / injected)``
            (NaN when nothing was injected): at 5 % of a pool where 15 % of the images hold an
            error, a third of them at most.
    """

    flagged: int
    precision: float
    recall: float
    base_rate: float
    max_recall: float


def rank_figures(scores: np.ndarray, positive: np.ndarray, fraction: float,
                 rng: np.random.Generator) -> RankFigures:
    """Precision and recall of flagging the top ``fraction`` of images by score.

    Args:
        scores: (N,) float, higher = more suspect.
        positive: (N,) bool, the images that hold an injected error.
        fraction: in (0, 1]; ``ceil(fraction * N)`` images are flagged.
        rng: orders tied scores (a random permutation taken before the stable sort).

    Raises:
        ValueError: shapes differ, N == 0, or fraction outside (0, 1].
    """
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positive, dtype=bool)
    if s.ndim != 1 or s.shape != p.shape or s.size == 0:
        raise ValueError(f"scores and positive must be (N,) with N >= 1; got {s.shape} and {p.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    n = s.size
    flagged = min(n, math.ceil(fraction * n - 1e-9))
    perm = rng.permutation(n)
    order = perm[np.argsort(-s[perm], kind="stable")]
    hits = int(p[order[:flagged]].sum())
    total = int(p.sum())
    nan = float("nan")
    return RankFigures(flagged, hits / flagged, hits / total if total else nan, total / n,
                       min(1.0, flagged / total) if total else nan)


def image_scores(issues: Sequence[LabelIssue], image_ids: Sequence[str], kind: str) -> np.ndarray:
    """(N,) each image's highest issue score of ``kind`` (:data:`ANY`: of every kind); 0 when none."""
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    out = np.zeros(len(image_ids), dtype=np.float64)
    for issue in issues:
        if kind in (ANY, issue.kind) and issue.image_id in index:
            i = index[issue.image_id]
            out[i] = max(out[i], issue.score)
    return out


def injected_images(errors: Sequence[InjectedError], image_ids: Sequence[str], kind: str) -> np.ndarray:
    """(N,) bool, the images holding an injected error of ``kind`` (:data:`ANY`: of any kind)."""
    hit = {e.image_id for e in errors if kind in (ANY, e.kind)}
    return np.array([image_id in hit for image_id in image_ids], dtype=bool)


@dataclass(frozen=True)
class SeedFigures:
    """One seed's figures: ``figures[(finder_kind, fraction)]`` and ``recall_any_kind[(injected
    kind, fraction)]``, with how many images each injected kind touched and the fold models' mAP50
    on the test split (noisy-label models)."""

    seed: int
    images: int
    injected: dict[str, int]
    figures: dict[tuple[str, float], RankFigures]
    recall_any_kind: dict[tuple[str, float], float]
    fold_map50: tuple[float, ...]
    seconds: float


def seed_figures(seed: int, image_ids: Sequence[str], issues: Sequence[LabelIssue],
                 errors: Sequence[InjectedError], fractions: Sequence[float],
                 fold_map50: Sequence[float] = (), seconds: float = 0.0) -> SeedFigures:
    """The figures of one seed (the rule in the module docstring, step 4); ties are ordered by
    ``default_rng(seed)``, the same permutation for every kind."""
    figures: dict[tuple[str, float], RankFigures] = {}
    any_scores = image_scores(issues, image_ids, ANY)
    recall_any: dict[tuple[str, float], float] = {}
    for finder, noise in ROWS:
        scores = image_scores(issues, image_ids, finder)
        positive = injected_images(errors, image_ids, noise)
        for f in fractions:
            figures[(finder, f)] = rank_figures(scores, positive, f, np.random.default_rng(seed))
            recall_any[(noise, f)] = rank_figures(any_scores, positive, f,
                                                  np.random.default_rng(seed)).recall
    injected = {noise: int(injected_images(errors, image_ids, noise).sum()) for _, noise in ROWS}
    return SeedFigures(seed, len(image_ids), injected, figures, recall_any, tuple(fold_map50), seconds)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std with ddof=1; 0 for one value) over the finite values; NaNs when none."""
    arr = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


@dataclass(frozen=True)
class SummaryRow:
    """One finder kind at one fraction, over seeds: each figure as (mean, std)."""

    kind: str
    injected_kind: str
    fraction: float
    precision: tuple[float, float]
    recall: tuple[float, float]
    max_recall: tuple[float, float]
    base_rate: tuple[float, float]
    lift: tuple[float, float]
    recall_any_kind: tuple[float, float]
    injected_images: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, tuple):
                out[key] = {"mean": _round(value[0]), "std": _round(value[1])}
        return out


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 4)


def summarise(seeds: Sequence[SeedFigures], fractions: Sequence[float]) -> list[SummaryRow]:
    """Mean ± std over seeds, one row per (finder kind, fraction) in :data:`ROWS` order."""
    rows = []
    for finder, noise in ROWS:
        for f in fractions:
            figs = [s.figures[(finder, f)] for s in seeds]
            rows.append(SummaryRow(
                finder, noise, f,
                mean_std([x.precision for x in figs]), mean_std([x.recall for x in figs]),
                mean_std([x.max_recall for x in figs]), mean_std([x.base_rate for x in figs]),
                mean_std([x.precision / x.base_rate if x.base_rate else float("nan") for x in figs]),
                mean_std([s.recall_any_kind[(noise, f)] for s in seeds]),
                mean_std([float(s.injected[noise]) for s in seeds]),
            ))
    return rows


def _pm(value: tuple[float, float], pct: bool = True) -> str:
    mean, std = value
    if not math.isfinite(mean):
        return "n/a"
    return f"{100 * mean:.0f} ± {100 * std:.0f} %" if pct else f"{mean:.1f} ± {std:.1f}"


def text_table(rows: Sequence[SummaryRow]) -> str:
    """The summary as a Markdown table."""
    lines = ["| finder kind (injected) | flagged | precision | recall (best possible) | base rate "
             "| lift | recall, any kind | injected images |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.kind} ({r.injected_kind}) | top {100 * r.fraction:.0f} % | {_pm(r.precision)} "
                     f"| {_pm(r.recall)} ({100 * r.max_recall[0]:.0f} %) | {_pm(r.base_rate)} "
                     f"| {_pm(r.lift, pct=False)}x "
                     f"| {_pm(r.recall_any_kind)} | {_pm(r.injected_images, pct=False)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class FoldJob:
    """One fold of one seed: train on ``train`` (pool index, noisy (N, 5) rows), grade ``held_out``."""

    seed: int
    fold: int
    train: tuple[tuple[int, np.ndarray], ...]
    held_out: tuple[tuple[int, np.ndarray], ...]


@dataclass(frozen=True)
class FoldResult:
    seed: int
    fold: int
    issues: tuple[LabelIssue, ...]
    map50: float
    seconds: float


def noisy_pool(data: PreparedData, noise: LabelNoise, rng: np.random.Generator
               ) -> tuple[list[np.ndarray], list[InjectedError]]:
    """Every pool image's noisy (N, 5) rows, in pool order, and the errors injected."""
    from labelwise.review.simulate import apply_label_noise

    oracle = data.oracle()
    rows: list[np.ndarray] = []
    errors: list[InjectedError] = []
    for path in data.pool_paths:
        noisy, injected = apply_label_noise(oracle.reveal(path.stem), len(data.class_names), noise,
                                            rng, path.stem)
        rows.append(noisy)
        errors.extend(injected)
    return rows, errors


def fold_jobs(seed: int, rows: Sequence[np.ndarray], folds: int, rng: np.random.Generator) -> list[FoldJob]:
    """The K jobs of one seed: a permutation of the pool split into ``folds`` near-equal folds."""
    parts = np.array_split(rng.permutation(len(rows)), folds)
    jobs = []
    for k, held in enumerate(parts):
        train = sorted(int(i) for j, part in enumerate(parts) if j != k for i in part)
        jobs.append(FoldJob(seed, k, tuple((i, rows[i]) for i in train),
                            tuple((int(i), rows[int(i)]) for i in sorted(held))))
    return jobs


def grade_fold(cfg: LabelIssueBenchConfig, data: PreparedData, base: str, job: FoldJob) -> FoldResult:
    """Train by the product's recipe on the job's noisy labels, then find the held-out images'
    label issues with that model (runs in a worker process)."""
    from labelwise.benchmark.tasks import TrainItem
    from labelwise.benchmark.trajectory import train_and_evaluate
    from labelwise.quality.label_issues import find_label_issues
    from labelwise.review.corrections import yolo_rows_to_xyxy

    started = time.perf_counter()
    settings = cfg.benchmark_config().job_settings(pseudo=False)
    work = cfg.out / "folds" / f"seed{job.seed}-fold{job.fold}"
    model, _, metrics = train_and_evaluate(settings, data, base,
                                           [TrainItem(data.pool_paths[i], r) for i, r in job.train],
                                           work, "fold", seed=job.seed)
    held = [i for i, _ in job.held_out]
    issues: list[LabelIssue] = []
    for (i, rows), det in zip(job.held_out, model.predict([data.pool_paths[i] for i in held])):
        w, h = data.size_of(i)
        xyxy, classes = yolo_rows_to_xyxy(rows)
        issues.extend(find_label_issues(
            data.pool_paths[i].stem, xyxy * np.array([w, h, w, h], dtype=np.float64), classes,
            det.xyxy, det.confidence, det.probs if len(det.xyxy) else np.zeros((0, 0)), cfg.rule))
    return FoldResult(job.seed, job.fold, tuple(issues), metrics["map50"], time.perf_counter() - started)


@dataclass(frozen=True)
class LabelIssueBenchResult:
    """The run's outputs: per-seed figures, the summary and where it was written."""

    config: LabelIssueBenchConfig
    seeds: tuple[SeedFigures, ...]
    summary: tuple[SummaryRow, ...]
    result_json: Path
    table_md: Path
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "config": {"seeds": c.seeds, "folds": c.folds, "noise": asdict(c.noise),
                       "fractions": list(c.fractions), "rule": asdict(c.rule),
                       "pool_images": c.pool_images, "imgsz": c.imgsz, "model": c.model},
            "summary": [r.as_dict() for r in self.summary],
            "seeds": [{"seed": s.seed, "images": s.images, "injected_images": s.injected,
                       "fold_map50": [round(m, 4) for m in s.fold_map50],
                       "seconds": round(s.seconds, 1)} for s in self.seeds],
            "result_json": str(self.result_json), "table_md": str(self.table_md),
            "seconds": round(self.seconds, 1),
        }


def _grade(cfg: LabelIssueBenchConfig, data: PreparedData, base: str, job: FoldJob) -> FoldResult:
    return grade_fold(cfg, data, base, job)


def bench_label_issues(cfg: LabelIssueBenchConfig, log: Log = print) -> LabelIssueBenchResult:
    """Run the protocol of the module docstring; writes ``label_issues.json`` and ``.md`` to ``out``."""
    import json

    from labelwise.benchmark.data import prepare_data
    from labelwise.benchmark.runner import _init_worker, prepare_base
    from labelwise.benchmark.shutdown import stop_workers_on_exit

    started = time.perf_counter()
    bench = cfg.benchmark_config()
    base = prepare_base(bench, log)
    data = prepare_data(bench)
    ids = [p.stem for p in data.pool_paths]
    errors: dict[int, list[InjectedError]] = {}
    jobs: list[FoldJob] = []
    for seed in range(cfg.seeds):
        rng = np.random.default_rng(seed)
        rows, errors[seed] = noisy_pool(data, cfg.noise, rng)
        jobs.extend(fold_jobs(seed, rows, cfg.folds, rng))
    log(f"{len(jobs)} fold trainings ({cfg.seeds} seeds x {cfg.folds} folds) on {len(ids)} images, "
        f"{cfg.workers} at a time")
    results: dict[int, list[FoldResult]] = {seed: [] for seed in range(cfg.seeds)}
    ctx = multiprocessing.get_context("spawn")
    logs = cfg.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(cfg.out / "ultralytics"), cfg.threads, str(logs))) as pool:
        with stop_workers_on_exit(pool):
            futures = [pool.submit(_grade, cfg, data, base, job) for job in jobs]
            for fut in futures:
                res = fut.result()
                results[res.seed].append(res)
                log(f"[{time.perf_counter() - started:6.0f}s] seed {res.seed} fold {res.fold}: "
                    f"{len(res.issues)} issues, fold model mAP50 {res.map50:.3f} ({res.seconds:.0f} s)")
    per_seed = tuple(seed_figures(
        seed, ids, [i for r in results[seed] for i in r.issues], errors[seed], cfg.fractions,
        [r.map50 for r in sorted(results[seed], key=lambda r: r.fold)],
        sum(r.seconds for r in results[seed])) for seed in range(cfg.seeds))
    summary = tuple(summarise(per_seed, cfg.fractions))
    table = text_table(summary)
    table_md = cfg.out / TABLE_NAME
    table_md.write_text(table + "\n", encoding="utf-8")
    result = LabelIssueBenchResult(cfg, per_seed, summary, cfg.out / RESULT_NAME, table_md,
                                   time.perf_counter() - started)
    result.result_json.write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    return result


def config_from(values: Mapping[str, Any], out: Path) -> LabelIssueBenchConfig:
    """A config from CLI values (None = default); noise rates under ``drop/add/shift/swap``."""
    rates = {k: values[k] for k in ("drop", "add", "shift", "swap") if values.get(k) is not None}
    noise = LabelNoise(**{**asdict(DEFAULT_NOISE), **rates})
    rest = {k: v for k, v in values.items() if k not in rates and k not in ("drop", "add", "shift", "swap")
            and v is not None}
    return LabelIssueBenchConfig(out=out, noise=noise, **rest)
