"""How the catalog-backed use cases grow with the pool (``labelwise bench scale``).

For each pool size ``n`` a synthetic project is built in a fresh SQLite catalog under
``out/n-<n>/`` **through the catalog's own API** (``create_project``, ``add_images`` on tiny
distinct PNG files, ``save_predictions``, ``save_embeddings``, ``save_labels``), then each
measurement runs in a fresh Python subprocess, so its peak RSS (``ru_maxrss`` of that child) is
its own:

* ``build``: the synthetic catalog itself (files written once under ``out/images`` and reused by
  every size; the catalog part is timed per step).
* ``score_batch``: :func:`labelwise.scorebatch.build_score_batch` with ``diverse_uncertainty``,
  ``limit=100`` and ``record=False`` (default scoring settings; the 100 thumbnails are made).
* ``autolabel``: :func:`labelwise.autolabel.auto_label` over the pool after ``autolabel_images``
  new images were added (stub detector and embedder that return synthetic outputs, so what is
  timed is auto-label's catalog reads and writes: the same ``save_predictions`` /
  ``save_embeddings`` calls per batch of 32, plus its per-image file check).
* ``queue``: the catalog part of :func:`labelwise.review.queue_batch` for ``queue_images``
  images: the round is created (``create_round`` with those images' scores), then
  ``project``, ``round_info``, ``require_images``, ``predictions`` of the queued ids,
  ``mark_queued`` and ``transition_round`` (no Label Studio).
* ``record_round``: what ``record=True`` adds to score-batch: ``create_round`` storing every
  candidate's score (n rows) and the ``queue_images`` selected (timed: that call only; the peak
  RSS includes scoring every candidate first).

Synthetic data (one seeded ``numpy.random.default_rng(seed)`` per size): each image gets 0-5
boxes (80 classes; ``probs`` (N, 80) float32 rows summing to 1, ``class_id`` their arg-max,
``confidence`` in [0.05, 0.99], ``xyxy`` (N, 4) pixels inside the 16 x 16 image); embeddings are
(n, 512) float32 L2-normalised; 1 % of the images are labelled (their boxes as YOLO rows).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.domain import Detections

MEASUREMENTS = ("build", "score_batch", "autolabel", "queue", "record_round")
"""The measurements per size, in the order they run (each in its own subprocess)."""
PROJECT = "scale"
MODEL_VERSION = "synthetic-v1"
EMBEDDER = "synthetic-512"
IMAGE_SIDE = 16
"""Width and height of the synthetic PNG files, in pixels."""
TARGET_SCORE_BATCH_SECONDS = 60.0
TARGET_SCORE_BATCH_RSS_MB = 4096.0
TARGET_SIZE = 1_000_000
FLAT_RSS_RATIO = 1.25
"""Auto-label's peak RSS counts as flat when the largest size's is at most this times the smallest's."""


@dataclass(frozen=True)
class ScaleConfig:
    """What ``bench scale`` builds and measures.

    Attributes:
        sizes: pool sizes (images with predictions and embeddings), ascending.
        out: folder of the synthetic catalogs (``out/n-<size>``) and the shared image files.
        seed: seed of every size's generator.
        num_classes: C of the predictions' ``probs`` (N, C).
        dim: embedding dimension d of the (n, d) float32 vectors.
        max_boxes: boxes per image drawn uniformly from 0..max_boxes.
        labelled_share: share of the pool stored as labelled (at least one image).
        autolabel_images: new images auto-label predicts and embeds.
        queue_images: images the queue measurement queues (and the round selects).
        limit: queue length of score-batch.
        chunk: images per catalog call while building (bulk calls, bounded memory).
        profile: run every measurement under cProfile and report its top functions.
    """

    sizes: tuple[int, ...] = (10_000, 100_000)
    out: Path = Path(".labelwise/bench/scale")
    seed: int = 0
    num_classes: int = 80
    dim: int = 512
    max_boxes: int = 5
    labelled_share: float = 0.01
    autolabel_images: int = 1000
    queue_images: int = 100
    limit: int = 100
    chunk: int = 20_000
    profile: bool = False

    def __post_init__(self) -> None:
        if not self.sizes or any(n < 1 for n in self.sizes):
            raise ValueError(f"sizes must be one or more integers >= 1; got {self.sizes}")
        if list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"sizes must be distinct and ascending; got {self.sizes}")
        if min(self.sizes) < max(self.queue_images, self.limit):
            raise ValueError(f"every size must hold at least {max(self.queue_images, self.limit)} "
                             f"images (queue_images, limit); got {self.sizes}")
        for name in ("num_classes", "dim", "autolabel_images", "queue_images", "limit", "chunk"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0.0 <= self.labelled_share < 1.0:
            raise ValueError(f"labelled_share must lie in [0, 1); got {self.labelled_share}")

    def size_dir(self, size: int) -> Path:
        return self.out / f"n-{size}"


@dataclass(frozen=True)
class ProfileEntry:
    """One function of a cProfile run: ``tottime``/``cumtime`` in seconds."""

    function: str
    calls: int
    tottime: float
    cumtime: float


@dataclass(frozen=True)
class Measurement:
    """One measurement of one size, from its own subprocess.

    Attributes:
        seconds: wall-clock seconds of the timed part.
        peak_rss_mb: the child's peak resident set (``ru_maxrss``), MiB, setup included.
        baseline_rss_mb: the child's peak RSS after its imports, before any work, MiB.
        details: sub-timings (seconds) and counts of the measurement.
        profile: top functions by own time when profiled, else empty.
    """

    name: str
    size: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float
    details: Mapping[str, float] = field(default_factory=dict)
    profile: tuple[ProfileEntry, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = dict(self.details)
        data["seconds"] = round(self.seconds, 4)
        data["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        data["baseline_rss_mb"] = round(self.baseline_rss_mb, 1)
        if not self.profile:
            del data["profile"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        return cls(str(data["name"]), int(data["size"]), float(data["seconds"]),
                   float(data["peak_rss_mb"]), float(data["baseline_rss_mb"]),
                   dict(data.get("details") or {}),
                   tuple(ProfileEntry(**p) for p in data.get("profile") or ()))


@dataclass(frozen=True)
class Growth:
    """How one measurement grew from one size to the next.

    ``exponent`` is ``log(time_ratio) / log(size_ratio)``: 1 = linear in the pool, 0 = flat.
    """

    name: str
    from_size: int
    to_size: int
    size_ratio: float
    time_ratio: float
    rss_ratio: float
    exponent: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def growth_factors(measurements: Sequence[Measurement]) -> list[Growth]:
    """Per measurement name, the ratios from each size to the next larger one.

    Args:
        measurements: any order; one per (name, size).
    """
    by_name: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_name.setdefault(m.name, []).append(m)
    out = []
    for name in sorted(by_name, key=lambda n: (MEASUREMENTS.index(n) if n in MEASUREMENTS else 99, n)):
        ms = sorted(by_name[name], key=lambda m: m.size)
        for a, b in zip(ms, ms[1:]):
            size_ratio = b.size / a.size
            time_ratio = b.seconds / a.seconds if a.seconds > 0 else math.inf
            rss_ratio = b.peak_rss_mb / a.peak_rss_mb if a.peak_rss_mb > 0 else math.inf
            exponent = (math.log(time_ratio) / math.log(size_ratio)
                        if 0 < time_ratio < math.inf and size_ratio > 1 else math.nan)
            out.append(Growth(name, a.size, b.size, size_ratio, time_ratio, rss_ratio, exponent))
    return out


def extrapolate(measurements: Sequence[Measurement], name: str, size: int) -> dict[str, Any] | None:
    """Seconds and peak RSS of ``name`` at ``size``: measured when that size was run, else a
    power law through the two largest sizes (``extrapolated: True``); None with under two sizes."""
    ms = sorted((m for m in measurements if m.name == name), key=lambda m: m.size)
    exact = [m for m in ms if m.size == size]
    if exact:
        return {"seconds": exact[0].seconds, "peak_rss_mb": exact[0].peak_rss_mb, "extrapolated": False}
    if len(ms) < 2 or ms[-1].size > size:
        return None
    a, b = ms[-2], ms[-1]
    scale = math.log(size / b.size) / math.log(b.size / a.size)
    seconds = b.seconds * (b.seconds / a.seconds) ** scale if a.seconds > 0 else math.inf
    # RSS: the part above the imports grows with the pool; the baseline does not.
    grown_a, grown_b = a.peak_rss_mb - a.baseline_rss_mb, b.peak_rss_mb - b.baseline_rss_mb
    rss = (b.baseline_rss_mb + grown_b * (grown_b / grown_a) ** scale
           if grown_a > 0 and grown_b > 0 else b.peak_rss_mb)
    return {"seconds": seconds, "peak_rss_mb": rss, "extrapolated": True}


def targets(measurements: Sequence[Measurement]) -> dict[str, Any]:
    """The targets next to the figures: score-batch over 1M images under 60 s and 4 GiB peak
    RSS (measured, or extrapolated from the two largest sizes), auto-label peak RSS flat in
    the pool size (largest size's peak at most :data:`FLAT_RSS_RATIO` times the smallest's)."""
    sb = extrapolate(measurements, "score_batch", TARGET_SIZE)
    result: dict[str, Any] = {"score_batch_1m": None, "autolabel_rss_flat": None}
    if sb is not None:
        result["score_batch_1m"] = {
            "seconds": round(float(sb["seconds"]), 2), "peak_rss_mb": round(float(sb["peak_rss_mb"]), 1),
            "extrapolated": sb["extrapolated"],
            "target_seconds": TARGET_SCORE_BATCH_SECONDS, "target_rss_mb": TARGET_SCORE_BATCH_RSS_MB,
            "seconds_met": bool(sb["seconds"] < TARGET_SCORE_BATCH_SECONDS),
            "rss_met": bool(sb["peak_rss_mb"] < TARGET_SCORE_BATCH_RSS_MB),
        }
    al = sorted((m for m in measurements if m.name == "autolabel"), key=lambda m: m.size)
    if len(al) >= 2:
        ratio = al[-1].peak_rss_mb / al[0].peak_rss_mb
        result["autolabel_rss_flat"] = {
            "from_size": al[0].size, "to_size": al[-1].size, "rss_ratio": round(ratio, 3),
            "target_ratio_at_most": FLAT_RSS_RATIO, "met": bool(ratio <= FLAT_RSS_RATIO),
        }
    return result


@dataclass(frozen=True)
class ScaleResult:
    config: ScaleConfig
    measurements: tuple[Measurement, ...]

    @property
    def growth(self) -> list[Growth]:
        return growth_factors(self.measurements)

    def as_dict(self) -> dict[str, Any]:
        per_size = []
        for size in self.config.sizes:
            row: dict[str, Any] = {"size": size}
            row.update({m.name: m.as_dict() for m in self.measurements if m.size == size})
            per_size.append(row)
        cfg = asdict(self.config)
        cfg["out"] = str(self.config.out)
        return {"config": cfg, "sizes": per_size, "growth": [g.as_dict() for g in self.growth],
                "targets": targets(self.measurements)}


def text_table(result: ScaleResult) -> str:
    """The figures as a readable table (seconds, peak RSS MiB; growth to the next size)."""
    growth = {(g.name, g.to_size): g for g in result.growth}
    lines = [f"{'measurement':<13} {'size':>9} {'seconds':>10} {'peak MiB':>9} {'base MiB':>9} "
             f"{'x time':>7} {'x RSS':>6} {'exp':>5}"]
    for name in MEASUREMENTS:
        for m in sorted((m for m in result.measurements if m.name == name), key=lambda m: m.size):
            g = growth.get((name, m.size))
            tail = (f"{g.time_ratio:>7.2f} {g.rss_ratio:>6.2f} {g.exponent:>5.2f}" if g else
                    f"{'':>7} {'':>6} {'':>5}")
            lines.append(f"{name:<13} {m.size:>9,} {m.seconds:>10.3f} {m.peak_rss_mb:>9.1f} "
                         f"{m.baseline_rss_mb:>9.1f} {tail}")
    t = targets(result.measurements)
    sb = t["score_batch_1m"]
    if sb is not None:
        how = "extrapolated" if sb["extrapolated"] else "measured"
        lines.append(f"target score-batch @1M ({how}): {sb['seconds']:.1f} s (< 60 s: "
                     f"{'met' if sb['seconds_met'] else 'MISSED'}), {sb['peak_rss_mb']:.0f} MiB "
                     f"(< 4096 MiB: {'met' if sb['rss_met'] else 'MISSED'})")
    al = t["autolabel_rss_flat"]
    if al is not None:
        lines.append(f"target auto-label peak RSS flat: x{al['rss_ratio']:.2f} from {al['from_size']:,} "
                     f"to {al['to_size']:,} (<= x{FLAT_RSS_RATIO}: {'met' if al['met'] else 'MISSED'})")
    return "\n".join(lines)


# Synthetic data ------------------------------------------------------------------------------
def image_path(root: Path, index: int) -> Path:
    return root / f"{index // 1000:05d}" / f"{index:08d}.png"


def write_image_files(root: Path, indices: Sequence[int]) -> int:
    """Write the missing 16 x 16 grayscale PNGs of ``indices`` under ``root``; each file's
    pixels hold its index, so every file has its own content hash. Returns files written."""
    from PIL import Image

    base = (np.arange(IMAGE_SIDE * IMAGE_SIDE) * 7 % 251).astype(np.uint8)
    written = 0
    for index in indices:
        path = image_path(root, index)
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = base.copy()
        pixels[:8] = np.frombuffer(int(index).to_bytes(8, "little"), np.uint8)
        tmp = path.with_suffix(".tmp")
        Image.frombytes("L", (IMAGE_SIDE, IMAGE_SIDE), pixels.tobytes()).save(tmp, "PNG", compress_level=1)
        os.replace(tmp, path)
        written += 1
    return written


def synthetic_detections(rng: np.random.Generator, n: int, num_classes: int, max_boxes: int,
                         side: float = IMAGE_SIDE) -> list[Detections]:
    """``n`` images' detections: 0..max_boxes boxes each; ``probs`` (k, C) softmax rows,
    ``class_id`` (k,) their arg-max, ``confidence`` (k,) in [0.05, 0.99], ``xyxy`` (k, 4) pixels
    inside a ``side`` x ``side`` image."""
    out = []
    counts = rng.integers(0, max_boxes + 1, size=n)
    for k in counts:
        logits = rng.normal(0.0, 2.0, size=(k, num_classes))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True)) if k else np.zeros((0, num_classes))
        probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32) if k else probs
        xy = rng.uniform(0.0, side * 0.6, size=(k, 2))
        wh = rng.uniform(1.0, side * 0.4, size=(k, 2))
        out.append(Detections(
            xyxy=np.concatenate([xy, xy + wh], axis=1).astype(np.float32),
            confidence=rng.uniform(0.05, 0.99, size=k).astype(np.float32),
            class_id=probs.argmax(axis=1).astype(np.int64) if k else np.zeros(0, np.int64),
            probs=probs.astype(np.float32),
        ))
    return out


def synthetic_embeddings(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """(n, dim) float32, each row L2-normalised."""
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def yolo_rows(det: Detections, side: float = IMAGE_SIDE) -> np.ndarray:
    """(k, 5) [cls, cx, cy, w, h] normalised, from the boxes of ``det``."""
    x1, y1, x2, y2 = det.xyxy.T.astype(np.float64) / side
    return np.stack([det.class_id.astype(np.float64), (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)


def catalog_url(size_dir: Path) -> str:
    return f"sqlite:///{(size_dir / 'catalog.db').resolve()}"


def _chunks(n: int, chunk: int) -> Iterator[range]:
    for start in range(0, n, chunk):
        yield range(start, min(n, start + chunk))


def build_catalog(cfg: ScaleConfig, size: int) -> dict[str, float]:
    """A fresh catalog of ``size`` images with predictions and embeddings (plus
    ``cfg.autolabel_images`` images with neither, for auto-label), through the catalog's API.

    Writes ``size_dir/ids.json`` ({"pool": ids in index order, "new": the auto-label ids}).
    Returns seconds per step (``files``, ``add_images``, ``predictions``, ``embeddings``,
    ``labels``; ``catalog`` = their sum less ``files``) and counts.
    """
    from labelwise.catalog import Catalog

    size_dir = cfg.size_dir(size)
    if size_dir.exists():
        shutil.rmtree(size_dir)
    size_dir.mkdir(parents=True)
    root = cfg.out / "images"
    total = size + cfg.autolabel_images
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    written = write_image_files(root, range(total))
    files_s = time.perf_counter() - t0

    catalog = Catalog.open(catalog_url(size_dir))
    try:
        project = catalog.create_project(PROJECT, [f"c{i}" for i in range(cfg.num_classes)])
        ids: list[str] = []
        t0 = time.perf_counter()
        for part in _chunks(total, cfg.chunk):
            report = catalog.add_images(project, [image_path(root, i) for i in part], max_pixels=None)
            if report.failed or len(report.added) != len(part):
                raise RuntimeError(f"add_images stored {len(report.added)} of {len(part)} synthetic "
                                   f"images (failed: {report.failed[:3]}); expected all")
            ids.extend(report.added)
        add_s = time.perf_counter() - t0
        pool = ids[:size]
        pred_s = emb_s = 0.0
        labelled: dict[str, np.ndarray] = {}
        n_labelled = max(1, int(round(size * cfg.labelled_share))) if cfg.labelled_share else 0
        label_every = max(1, size // n_labelled) if n_labelled else 0
        for part in _chunks(size, cfg.chunk):
            dets = synthetic_detections(rng, len(part), cfg.num_classes, cfg.max_boxes)
            vecs = synthetic_embeddings(rng, len(part), cfg.dim)
            part_ids = [pool[i] for i in part]
            t0 = time.perf_counter()
            catalog.save_predictions(project, MODEL_VERSION, list(zip(part_ids, dets)))
            pred_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            catalog.save_embeddings(project, EMBEDDER, part_ids, vecs)
            emb_s += time.perf_counter() - t0
            if label_every:
                labelled.update({pool[i]: yolo_rows(d) for i, d in zip(part, dets)
                                 if i % label_every == 0 and len(labelled) < n_labelled})
        t0 = time.perf_counter()
        if labelled:
            catalog.save_labels(project, labelled, source="synthetic")
        labels_s = time.perf_counter() - t0
    finally:
        catalog.close()
    (size_dir / "ids.json").write_text(json.dumps({"pool": pool, "new": ids[size:],
                                                   "labelled": sorted(labelled)}))
    return {"files": files_s, "files_written": float(written), "add_images": add_s,
            "predictions": pred_s, "embeddings": emb_s, "labels": labels_s,
            "catalog": add_s + pred_s + emb_s + labels_s, "images": float(total),
            "labelled": float(len(labelled))}


# Measurements (run in a child process) ------------------------------------------------------
def _settings(size_dir: Path) -> Any:
    from labelwise.config import Settings

    return Settings(state_dir=size_dir / "state", catalog_url=catalog_url(size_dir))


def _pool_ids(size_dir: Path) -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads((size_dir / "ids.json").read_text())
    return data


def _queue_ids(size_dir: Path, count: int) -> list[str]:
    ids = _pool_ids(size_dir)
    labelled = set(ids["labelled"])
    return [i for i in ids["pool"] if i not in labelled][:count]


def measure_score_batch(cfg: ScaleConfig, size: int) -> tuple[Callable[[], dict[str, float]], Callable[[], None]]:
    from labelwise.catalog import Catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    size_dir = cfg.size_dir(size)
    settings = _settings(size_dir)
    catalog = Catalog.open(settings.resolved_catalog_url)
    request = ScoreBatchRequest(project=PROJECT, strategy="diverse_uncertainty", limit=cfg.limit,
                                diversity_weight=settings.selection.diversity_weight, seed=cfg.seed)

    def run() -> dict[str, float]:
        batch = build_score_batch(catalog, settings, request, record=False)
        candidates = batch.params.get("candidates", 0)
        return {"queued": float(len(batch.queue)),
                "candidates": float(candidates) if isinstance(candidates, (int, float)) else math.nan}

    return run, catalog.close


class _StubDetector:
    """Synthetic outputs for auto-label: no model runs, so only the catalog work is timed."""

    def __init__(self, cfg: ScaleConfig) -> None:
        self._cfg = cfg
        self._rng = np.random.default_rng(cfg.seed + 1)

    @property
    def version(self) -> str:
        return MODEL_VERSION

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"c{i}" for i in range(self._cfg.num_classes))

    def predict(self, paths: Sequence[Path]) -> list[Detections]:
        return synthetic_detections(self._rng, len(paths), self._cfg.num_classes, self._cfg.max_boxes)


class _StubEmbedder:
    def __init__(self, cfg: ScaleConfig) -> None:
        self._cfg = cfg
        self._rng = np.random.default_rng(cfg.seed + 2)

    @property
    def name(self) -> str:
        return EMBEDDER

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        return synthetic_embeddings(self._rng, len(paths), self._cfg.dim)


def measure_autolabel(cfg: ScaleConfig, size: int) -> tuple[Callable[[], dict[str, float]], Callable[[], None]]:
    from labelwise.autolabel import auto_label
    from labelwise.catalog import Catalog

    catalog = Catalog.open(catalog_url(cfg.size_dir(size)))
    project = catalog.project(PROJECT)
    detector, embedder = _StubDetector(cfg), _StubEmbedder(cfg)

    def run() -> dict[str, float]:
        report = auto_label(catalog, project, detector, embedder)
        if report.predicted != cfg.autolabel_images or report.embedded != cfg.autolabel_images:
            raise RuntimeError(f"auto-label predicted {report.predicted} and embedded {report.embedded} "
                               f"images; expected {cfg.autolabel_images} each")
        return {"predicted": float(report.predicted), "embedded": float(report.embedded),
                "stub_predict": report.predict_seconds, "stub_embed": report.embed_seconds,
                "per_1000_images": report.seconds * 1000 / cfg.autolabel_images}

    return run, catalog.close


def _round_scores(catalog: Any, project: Any, ids: list[str] | None) -> list[Any]:
    from labelwise.scorebatch import scoring_rule
    from labelwise.scoring import score_table

    rule = scoring_rule(_settings(Path(".")))
    return list(score_table(sorted(catalog.predictions(project, MODEL_VERSION, ids).items()), rule))


def _score_batch_params(cfg: ScaleConfig, candidates: int) -> Any:
    from labelwise.rounds.params import RoundParams, RoundSource, SelectionRecord

    selection = SelectionRecord(limit=cfg.queue_images, diversity_weight=0.5, class_balance=False,
                                seed=cfg.seed, candidate_factor=10, embedder=EMBEDDER,
                                candidates=candidates, tied_candidates=0,
                                unlabelled_without_prediction=0, held_back=0)
    return RoundParams(RoundSource.SCORE_BATCH, selection=selection)


def measure_queue(cfg: ScaleConfig, size: int) -> tuple[Callable[[], dict[str, float]], Callable[[], None]]:
    from labelwise.catalog import Catalog
    from labelwise.rounds import PROPOSED, QUEUED

    catalog = Catalog.open(catalog_url(cfg.size_dir(size)))
    project = catalog.project(PROJECT)
    ids = _queue_ids(cfg.size_dir(size), cfg.queue_images)
    scores = _round_scores(catalog, project, ids)

    def run() -> dict[str, float]:
        t0 = time.perf_counter()
        number = catalog.create_round(project, "diverse_uncertainty", MODEL_VERSION,
                                      _score_batch_params(cfg, len(scores)), scores, ids)
        round_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        record = catalog.project(PROJECT)  # what queue_batch does with the catalog, in its order
        catalog.round_info(record, number)
        catalog.require_images(record, ids)
        catalog.predictions(record, MODEL_VERSION, ids)
        catalog.mark_queued(record, {image_id: 1_000_000 + k for k, image_id in enumerate(ids)}, number, None)
        moved = catalog.transition_round(record, number, PROPOSED, QUEUED)
        if not moved:
            raise RuntimeError(f"round {number} did not move {PROPOSED} -> {QUEUED}")
        return {"create_round": round_s, "queue_catalog": time.perf_counter() - t0,
                "images": float(len(ids))}

    return run, catalog.close


def measure_record_round(cfg: ScaleConfig, size: int) -> tuple[Callable[[], dict[str, float]], Callable[[], None]]:
    from labelwise.catalog import Catalog
    from labelwise.scorebatch import pool_scores, scoring_rule

    catalog = Catalog.open(catalog_url(cfg.size_dir(size)))
    project = catalog.project(PROJECT)
    scores = pool_scores(catalog, project, MODEL_VERSION, scoring_rule(_settings(Path("."))))
    selected = sorted(scores.image_ids)[-cfg.queue_images:]  # none queued or held

    def run() -> dict[str, float]:
        catalog.create_round(project, "diverse_uncertainty", MODEL_VERSION,
                             _score_batch_params(cfg, len(scores)), scores, selected)
        return {"score_rows": float(len(scores))}

    return run, catalog.close


def _peak_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def _profile_entries(profiler: Any, top: int = 5) -> tuple[ProfileEntry, ...]:
    import pstats

    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    return tuple(ProfileEntry(f"{Path(file).name}:{line}({fn})", int(nc), round(tt, 4), round(ct, 4))
                 for (file, line, fn), (_cc, nc, tt, ct, _callers) in rows)


def run_child(kind: str, cfg: ScaleConfig, size: int) -> Measurement:
    """One measurement in this process (the child side of :func:`measure`)."""
    baseline = _peak_rss_mb()
    profiler = None
    if cfg.profile:
        import cProfile

        profiler = cProfile.Profile()
    if kind == "build":
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        details = build_catalog(cfg, size)
        seconds = time.perf_counter() - t0 - details["files"]
        if profiler is not None:
            profiler.disable()
    else:
        setups = {"score_batch": measure_score_batch, "autolabel": measure_autolabel,
                  "queue": measure_queue, "record_round": measure_record_round}
        if kind not in setups:
            raise ValueError(f"measurement must be one of {list(MEASUREMENTS)}; got {kind!r}")
        run, close = setups[kind](cfg, size)
        try:
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            details = run()
            seconds = time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
        finally:
            close()
    return Measurement(kind, size, seconds, _peak_rss_mb(), baseline, details,
                       _profile_entries(profiler) if profiler is not None else ())


def _config_json(cfg: ScaleConfig) -> str:
    data = asdict(cfg)
    data["out"] = str(cfg.out)
    return json.dumps(data)


def _config_from_json(text: str) -> ScaleConfig:
    data = json.loads(text)
    data["out"] = Path(data["out"])
    data["sizes"] = tuple(data["sizes"])
    return ScaleConfig(**data)


def measure(kind: str, cfg: ScaleConfig, size: int) -> Measurement:
    """Run one measurement in a fresh ``python -m labelwise.perf.scale`` subprocess."""
    result = cfg.size_dir(size).parent / f".result-{kind}-{size}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "labelwise.perf.scale", kind, str(size),
                           _config_json(cfg), str(result)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(f"measurement {kind} at size {size} failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    data = json.loads(result.read_text())
    result.unlink()
    return Measurement.from_dict(data)


def bench_scale(cfg: ScaleConfig, log: Callable[[str], None] = lambda _m: None) -> ScaleResult:
    """Every measurement of :data:`MEASUREMENTS` for every size, each in its own subprocess."""
    done: list[Measurement] = []
    for size in cfg.sizes:
        for kind in MEASUREMENTS:
            log(f"size {size:,}: {kind} ...")
            m = measure(kind, cfg, size)
            log(f"size {size:,}: {kind} {m.seconds:.3f} s, peak {m.peak_rss_mb:.0f} MiB")
            done.append(m)
    return ScaleResult(cfg, tuple(done))


def _main(argv: Sequence[str]) -> int:
    kind, size, cfg_json, result = argv
    m = run_child(kind, _config_from_json(cfg_json), int(size))
    Path(result).write_text(json.dumps(m.as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
