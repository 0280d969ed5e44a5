"""One trajectory (protocol x strategy x seed): train -> evaluate -> select -> reveal, per round.

Runs inside a worker process (one torch thread). Every step is the product's own code under the
product's settings (:meth:`BenchmarkConfig.product_settings`): the task's adapter and training
set writer (:mod:`labelwise.benchmark.tasks`), the recipe (:mod:`labelwise.training`), the
scoring rule of the task (:func:`labelwise.scorebatch.scoring_rule`), the selection
(:func:`labelwise.scorebatch.select_queue`) and the embedder. One loop serves detection,
classification and segmentation.

Reviewer edits: every image the oracle labels is counted against the pre-annotations it would
have been queued with — the rows of the model that picked it (round 0: the warm base; none from
scratch) at or above the product's pre-annotation threshold (``labelstudio.preannotation_conf``;
a classifier's top class always) — by :func:`labelwise.review.corrections.reviewer_edits`
(added, deleted, relabelled, moved; for a classification one relabel per wrong top class; for a
segmentation per instance, by its box).

All state of the job lives in ``job.job_dir``: the round's training set, the ultralytics run
(deleted once the round is done) and ``result.json`` (written last; a finished job is not re-run
when its fingerprint matches).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.benchmark.config import SPRINT, BenchmarkConfig, config_hash, training_values
from labelwise.benchmark.data import PreparedData
from labelwise.benchmark.oracle import near_duplicates, rare_boxes
from labelwise.benchmark.plan import Job, round_rng
from labelwise.benchmark.tasks import TrainItem
from labelwise.config import Settings
from labelwise.domain import Detections, class_box_counts
from labelwise.labelstudio.boxes import detections_to_yolo
from labelwise.review.corrections import ReviewerEdits, reviewer_edits
from labelwise.scorebatch import scoring_rule, select_queue
from labelwise.scoring import score_images, unscored
from labelwise.strategies import get_strategy
from labelwise.training import train_round

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.detector import YoloDetector
    from labelwise.yolo_models import TrainResult

RESULT_NAME = "result.json"
EDIT_KINDS = ("added", "deleted", "relabelled", "moved")


def trajectory_fingerprint(cfg: BenchmarkConfig, job: Job) -> str:
    """Hash of everything that shapes a trajectory's rows (to reuse a finished job)."""
    values = cfg.as_dict()
    for key in ("out", "workers", "strategies", "pseudo_strategies", "pseudo_protocols", "seeds", "protocols",
                "preset", "cache_dir", "ceiling",
                "mask_weight"):  # in the recipe's scoring where it shapes the trajectory
        values.pop(key, None)
    recipe = {**cfg.recipe_values(), "training": training_values(cfg.job_settings(job.pseudo).training)}
    values.pop("task", None)
    return config_hash({"cfg": {**values, **cfg.task_identity()}, "recipe": recipe, "job": job.as_dict(),
                        "format": 2})


def train_and_evaluate(
    settings: Settings, data: PreparedData, start_ref: str, items: Sequence[TrainItem],
    work: Path, name: str, seed: int, reviewed: int | None = None,
) -> tuple[Any, "TrainResult", dict[str, float]]:
    """Train ``start_ref`` on ``items`` (pool images with their truth, or pseudo-labels) by the
    product's recipe through the task's writer and adapter; evaluate on the test split.

    ``reviewed``: how many of ``items`` are reviewed labels (the recipe's epochs follow them;
    default all). Returns (the trained model, the training result, the task's metric columns
    incl. per class and ``eval_seconds``). The training set goes to ``work/train`` (replaced),
    the run to ``work/runs/<name>``.
    """
    task = data.task
    names = data.class_names
    data_ref = task.write_train_set(work / "train", items, data)
    start = task.load(start_ref, settings, work, names, seed=seed)
    trained = train_round(start, data_ref, settings.training, len(items), work / "runs", name, seed=seed,
                          reviewed_images=len(items) if reviewed is None else reviewed)
    model = task.load(str(trained.weights), settings, work, names)
    ev = model.evaluate(data_ref, "test", out_dir=work / "runs")
    return model, trained, {**task.metrics(ev, names), "eval_seconds": round(ev.seconds, 2)}


def choose(settings: Settings, job: Job, data: PreparedData, model: Any, labelled: list[int],
           round_number: int, labelled_counts: np.ndarray | None = None
           ) -> tuple[list[int], dict[int, Detections]]:
    """Pool indices the strategy queues after ``round_number`` and the model's detections of
    every unlabelled image it predicted (at least the picks: their pre-annotations).

    ``labelled_counts``: (C,) boxes per class revealed so far (what the product reads from its
    label files), for rarity-aware strategies.
    """
    strategy = get_strategy(job.strategy)
    taken = set(labelled)
    unlabelled = [i for i in range(len(data.pool_paths)) if i not in taken]
    if not unlabelled:
        return [], {}
    paths = [data.pool_paths[i] for i in unlabelled]
    stems = [p.stem for p in paths]
    detections: dict[int, Detections] = {}
    if strategy.needs_predictions:
        predicted = model.predict(paths)
        detections = dict(zip(unlabelled, predicted))
        scores = score_images(list(zip(stems, predicted)), scoring_rule(settings, data.task.task_type))
    else:
        scores = [unscored(s) for s in stems]
    emb = lab = None
    if strategy.needs_embeddings:  # the product's embedder, as auto-label computes it
        from labelwise.embedder import build_embedder

        embedder = build_embedder(settings.embedder, model)
        if embedder is None:
            raise ValueError(f"strategy {strategy.name!r} needs embeddings; expected an embedder kind "
                             f"other than {settings.embedder.kind!r} (benchmark settings.embedder.kind)")
        emb = embedder.embed(paths)
        lab = embedder.embed([data.pool_paths[i] for i in labelled]) if labelled else None
    sel = settings.selection
    order = select_queue(strategy, scores, settings.selection.limit, round_rng(job.seed, round_number + 1),
                         diversity_weight=sel.diversity_weight, candidate_factor=sel.candidate_factor,
                         class_balance=sel.class_balance, embeddings=emb, labelled_embeddings=lab,
                         labelled_class_counts=labelled_counts).order
    picks = [unlabelled[i] for i in order]
    missing = [i for i in picks if i not in detections]
    if missing:  # strategies that select without predictions still send pre-annotations
        detections.update(zip(missing, model.predict([data.pool_paths[i] for i in missing])))
    return picks, detections


def image_edits(settings: Settings, data: PreparedData, index: int, dets: Detections | None,
                truth: np.ndarray) -> tuple[ReviewerEdits, int]:
    """(edits, pre-annotated boxes) of pool image ``index`` queued with ``dets`` (None = none)."""
    if dets is None:
        pre = np.zeros((0, 5))
    else:
        width, height = data.size_of(index)
        pre = detections_to_yolo(dets.above(data.task.preannotation_floor(settings)), width, height)
    return reviewer_edits(pre, truth), len(pre)


def pseudo_step(settings: Settings, data: PreparedData, model: "YoloDetector | None",
                predicted: dict[int, Detections], labelled: Sequence[int]
                ) -> tuple[list[tuple[int, np.ndarray]], dict[str, float]]:
    """The product's pseudo-labels for a round training on ``labelled``: the current model's
    confident boxes on the rest of the pool (``predicted`` where it has them; the model predicts
    the others). Returns ((pool index, (N, 5) rows) pairs, counts incl. their errors vs the truth).
    """
    from labelwise.pseudo_labels import select_pseudo_labels

    if model is None:  # from scratch, before the first model: nothing to pseudo-label with
        return [], {"pseudo_images": 0, "pseudo_boxes": 0, "pseudo_errors": 0}
    taken = set(labelled)
    rest = [i for i in range(len(data.pool_paths)) if i not in taken]
    missing = [i for i in rest if i not in predicted]
    if missing:
        predicted = {**predicted, **dict(zip(missing, model.predict([data.pool_paths[i] for i in missing])))}
    stems = {i: data.pool_paths[i].stem for i in rest}
    chosen = select_pseudo_labels({stems[i]: predicted[i] for i in rest},
                                  {stems[i]: data.size_of(i) for i in rest}, (), len(labelled),
                                  settings.training.pseudo_rule())
    index = {stem: i for i, stem in stems.items()}
    oracle = data.oracle()
    pairs = [(index[p.image_id], p.boxes) for p in chosen.labels]
    errors = sum(reviewer_edits(b, oracle.reveal(data.pool_paths[i].stem)).total for i, b in pairs)
    return pairs, {"pseudo_images": chosen.images, "pseudo_boxes": chosen.boxes, "pseudo_errors": errors}


def run_trajectory(cfg: BenchmarkConfig, data: PreparedData, job: Job) -> list[dict[str, Any]]:
    """Every round's row of ``job`` (see :mod:`labelwise.benchmark.outputs` for the columns)."""
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
    settings = cfg.job_settings(job.pseudo)
    names = data.class_names
    task = data.task
    oracle = data.oracle()
    labelled: list[int] = list(job.initial)
    new: list[int] = list(job.initial)
    # Round 0's images are queued with the start model's boxes (warm base); none from scratch.
    sent: dict[int, Detections] = {}
    current: Any = None  # the model whose predictions feed pseudo-labels
    if job.protocol == "warm":
        current = task.load(job.start_ref, settings, job_dir, names)
        sent = dict(zip(new, current.predict([data.pool_paths[i] for i in new])))
    dup_total = 0
    totals = dict.fromkeys(EDIT_KINDS, 0)
    totals_sent = 0
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for r in range(cfg.rounds + 1):
        before = [data.pool_paths[i].stem for i in labelled[: len(labelled) - len(new)]]
        new_stems = [data.pool_paths[i].stem for i in new]
        dups = near_duplicates(new_stems, before, data.cluster_of)
        dup_total += dups
        new_edits = 0
        for i in new:
            edits, n_sent = image_edits(settings, data, i, sent.get(i), oracle.reveal(data.pool_paths[i].stem))
            for kind in EDIT_KINDS:
                totals[kind] += getattr(edits, kind)
            new_edits += edits.total
            totals_sent += n_sent
        labels = [oracle.reveal(data.pool_paths[i].stem) for i in labelled]
        pseudo, pseudo_counts = ([], {}) if not job.pseudo else pseudo_step(settings, data, current, sent, labelled)
        items = [data.train_item(oracle, i) for i in labelled] + [
            TrainItem(data.pool_paths[i], b) for i, b in pseudo]
        model, trained, metrics = train_and_evaluate(settings, data, job.start_ref, items, job_dir,
                                                     f"round-{r}", job.seed, reviewed=len(labelled))
        counts = class_box_counts(labels, len(names))
        t_select = time.perf_counter()
        picks, sent = choose(settings, job, data, model, labelled, r, counts) if r < cfg.rounds else ([], {})
        current = model
        select_seconds = time.perf_counter() - t_select
        rows.append({
            "protocol": job.protocol, "strategy": job.label, "seed": job.seed, "round": r, **pseudo_counts,
            "labelled_images": len(labelled), "labelled_boxes": int(counts.sum()),
            "new_images": len(new), "new_boxes": int(sum(len(oracle.reveal(s)) for s in new_stems)),
            "edits": sum(totals.values()), "new_edits": new_edits, "preannotated_boxes": totals_sent,
            **{f"edits_{kind}": totals[kind] for kind in EDIT_KINDS},
            **metrics,
            "rare_boxes": rare_boxes(labels, data.rare_classes),
            "rare_boxes_gained": rare_boxes((oracle.reveal(s) for s in new_stems), data.rare_classes),
            "near_duplicates": dups, "near_duplicates_total": dup_total,
            "epochs": trained.epochs, "train_seconds": round(trained.seconds, 2),
            "select_seconds": round(select_seconds, 2),
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


def as_random_sprint(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``random``'s rows as the ``random_sprint`` baseline: the same images and trainings, but
    labelled with no pre-annotations, so every true box is drawn (edits = boxes, all added)."""
    out = []
    for row in rows:
        boxes, new_boxes = int(row["labelled_boxes"]), int(row["new_boxes"])
        out.append({**row, "strategy": SPRINT, "edits": boxes, "new_edits": new_boxes,
                    "preannotated_boxes": 0, "edits_added": boxes, "edits_deleted": 0,
                    "edits_relabelled": 0, "edits_moved": 0})
    return out
