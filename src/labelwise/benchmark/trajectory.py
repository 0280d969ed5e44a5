"""One trajectory (protocol x strategy x seed): train -> evaluate -> select -> reveal, per round.

Runs inside a worker process (one torch thread). All state of the job lives in ``job.job_dir``:
the round's training set, the ultralytics run (deleted once the round is done) and
``result.json`` (written last; a finished job is not re-run when its configuration matches).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.benchmark.config import BenchmarkConfig, config_hash
from labelwise.benchmark.data import PreparedData, write_train_set
from labelwise.benchmark.oracle import near_duplicates, rare_boxes
from labelwise.benchmark.plan import Job, round_rng
from labelwise.config import DetectorSettings
from labelwise.domain import ImageScore, class_box_counts
from labelwise.scoring import SCORE_NAMES, ScoringRule, score_images
from labelwise.strategies import SelectionRequest, get_strategy, select
from labelwise.training import epochs_for

RESULT_NAME = "result.json"


def trajectory_fingerprint(cfg: BenchmarkConfig, job: Job) -> str:
    """Hash of everything that shapes a trajectory's rows (to reuse a finished job)."""
    values = cfg.as_dict()
    for key in ("out", "workers", "strategies", "seeds", "protocols", "preset", "cache_dir"):
        values.pop(key, None)
    return config_hash({"cfg": values, "job": job.as_dict()})


def detector_settings(cfg: BenchmarkConfig) -> DetectorSettings:
    return DetectorSettings(model=cfg.model, imgsz=cfg.imgsz, threads=cfg.threads, conf=cfg.conf, batch=32)


def scoring_rule(cfg: BenchmarkConfig) -> ScoringRule:
    return ScoringRule(aggregation=cfg.aggregation, top_k=cfg.top_k,  # type: ignore[arg-type]
                       confidence_floor=cfg.confidence_floor, no_box_score=cfg.no_box_score)


def _placeholder_scores(stems: list[str]) -> list[ImageScore]:
    return [ImageScore(s, 0.0, {k: 0.0 for k in SCORE_NAMES}, 0) for s in stems]


def choose(cfg: BenchmarkConfig, job: Job, data: PreparedData, model: Any, labelled: list[int],
           round_number: int, labelled_counts: np.ndarray | None = None) -> list[int]:
    """Pool indices the strategy picks after ``round_number`` (at most ``per_round``).

    ``labelled_counts``: (C,) boxes per class revealed so far (what the product reads from its
    label files), for rarity-aware strategies.
    """
    strategy = get_strategy(job.strategy)
    taken = set(labelled)
    unlabelled = [i for i in range(len(data.pool_paths)) if i not in taken]
    if not unlabelled:
        return []
    paths = [data.pool_paths[i] for i in unlabelled]
    stems = [p.stem for p in paths]
    if strategy.needs_predictions:
        scores = score_images(list(zip(stems, model.predict(paths))), scoring_rule(cfg))
    else:
        scores = _placeholder_scores(stems)

    emb = lab = None
    if strategy.needs_embeddings:  # the product's default embedder: detector features + pixels
        from labelwise.config import EmbedderSettings
        from labelwise.embedder import build_embedder

        embedder = build_embedder(EmbedderSettings(), model)
        emb = embedder.embed(paths)
        lab = embedder.embed([data.pool_paths[i] for i in labelled]) if labelled else None
    picked = select(strategy, SelectionRequest(
        scores=scores, limit=cfg.per_round, rng=round_rng(job.seed, round_number + 1),
        embeddings=emb, labelled_embeddings=lab, diversity_weight=cfg.diversity_weight,
        candidate_factor=cfg.candidate_factor, class_balance=cfg.class_balance,
        labelled_class_counts=labelled_counts))
    return [unlabelled[int(i)] for i in picked]


def run_trajectory(cfg: BenchmarkConfig, data: PreparedData, job: Job) -> list[dict[str, Any]]:
    """Every round's row of ``job`` (see :mod:`labelwise.benchmark.outputs` for the columns)."""
    from labelwise.detector import YoloDetector

    job_dir = Path(job.job_dir)
    fingerprint = trajectory_fingerprint(cfg, job)
    result_file = job_dir / RESULT_NAME
    if result_file.is_file():
        saved = json.loads(result_file.read_text(encoding="utf-8"))
        if saved.get("fingerprint") == fingerprint:
            return saved["rows"]
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    settings = detector_settings(cfg)
    names = data.class_names
    oracle = data.oracle()
    labelled: list[int] = list(job.initial)
    new: list[int] = list(job.initial)
    dup_total = 0
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for r in range(cfg.rounds + 1):
        before = [data.pool_paths[i].stem for i in labelled[: len(labelled) - len(new)]]
        new_stems = [data.pool_paths[i].stem for i in new]
        dups = near_duplicates(new_stems, before, data.cluster_of)
        dup_total += dups
        labels = [oracle.reveal(data.pool_paths[i].stem) for i in labelled]
        data_yaml = write_train_set(job_dir / "train", [(data.pool_paths[i], b) for i, b in zip(labelled, labels)],
                                    names, data.val_dir, data.test_dir)
        n = len(labelled)
        epochs = epochs_for(n, cfg.epochs, cfg.min_image_passes)
        batch = min(cfg.batch, n)
        start = YoloDetector.load(job.start_ref, settings, job_dir, class_names=names, seed=job.seed)
        trained = start.train(data_yaml, job_dir / "runs", epochs=epochs, batch=batch, seed=job.seed,
                              name=f"round-{r}", mosaic=0.0, warmup_epochs=1.0, nbs=batch,
                              optimizer=cfg.optimizer, lr0=cfg.lr0)
        model = YoloDetector.load(trained.weights, settings, job_dir, class_names=names)
        ev = model.evaluate(data_yaml, "test", out_dir=job_dir / "runs")
        counts = class_box_counts(labels, len(names))
        t_select = time.perf_counter()
        picks = choose(cfg, job, data, model, labelled, r, counts) if r < cfg.rounds else []
        select_seconds = time.perf_counter() - t_select
        rows.append({
            "protocol": job.protocol, "strategy": job.strategy, "seed": job.seed, "round": r,
            "labelled_images": n, "labelled_boxes": int(counts.sum()),
            "new_images": len(new), "new_boxes": int(sum(len(oracle.reveal(s)) for s in new_stems)),
            "map50": ev.map50, "map50_95": ev.map50_95, "precision": ev.precision, "recall": ev.recall,
            "rare_boxes": rare_boxes(labels, data.rare_classes),
            "rare_boxes_gained": rare_boxes((oracle.reveal(s) for s in new_stems), data.rare_classes),
            "near_duplicates": dups, "near_duplicates_total": dup_total,
            "epochs": trained.epochs, "train_seconds": round(trained.seconds, 2),
            "eval_seconds": round(ev.seconds, 2), "select_seconds": round(select_seconds, 2),
            **{f"ap50/{name}": float(ev.per_class_ap50.get(name, float("nan"))) for name in names},
            **{f"boxes/{name}": int(c) for name, c in zip(names, counts)},
        })
        shutil.rmtree(trained.run_dir, ignore_errors=True)
        labelled += picks
        new = picks
    payload = {"fingerprint": fingerprint, "job": job.as_dict(), "rows": rows,
               "seconds": round(time.perf_counter() - started, 1),
               "labelled": [data.pool_paths[i].stem for i in labelled]}
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    tmp.replace(result_file)
    shutil.rmtree(job_dir / "train", ignore_errors=True)
    return rows
