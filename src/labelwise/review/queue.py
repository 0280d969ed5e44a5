"""Send a recorded score batch to Label Studio as tasks with the model's boxes pre-annotated.

One task per queue item::

    data:        {"image": "/data/local-files/?d=<media path>", "image_id", "round" (int),
                  "strategy", "group", "uncertainty_score" (float), "reason" (code),
                  "reason_text" (why it was picked, shown above the image)}
    predictions: [{"model_version", "score": uncertainty_score,
                   "result": boxes at/above labelstudio.preannotation_conf, each with its score}]

The prediction ``score`` is the image's uncertainty score, so Label Studio's "sort by prediction
score" (lowest first) shows the queue in order. Each round gets a Data Manager tab ``round <n>``
(and an upload group its tab ``group: <g>``) sorted by ``data.uncertainty_score`` ascending, with
``round`` and ``uncertainty_score`` typed as numbers. The project's prelabel model version becomes
the batch's model version, so Label Studio prefills each task with that round's boxes. Cold-start
batches (no model version) get no predictions.

Exactly once per image: tasks already in the Label Studio project (matched by ``data.image_id``)
are reused, never imported twice; so a crash between the import and the catalog update, or
queueing the same batch twice, creates no duplicate. The import itself is keyed by
``image_id``: when its reply is lost after Label Studio saved the tasks, the project is listed
and only the missing tasks are sent again (:mod:`labelwise.labelstudio.task_import`); the result's
``reconciled`` says what happened. A reused task whose data is stale (e.g. imported for a round a
killed queue never recorded as queued) is replaced in bulk when nobody has answered it (one delete
action, then the one import, which also refreshes its pre-annotations) and has its data rewritten
in place when it holds a reviewer's answer. The catalog changes only after every Label Studio
call succeeded: images -> ``queued`` with their task ids, round ``proposed -> queued``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelwise.catalog import Catalog, ImageRecord, ProjectRecord
from labelwise.config import Settings
from labelwise.domain import Detections, ImageStatus, ScoreBatch
from labelwise.labelstudio.formats import review_format
from labelwise.labelstudio.local_files import local_files_url
from labelwise.labelstudio.task_import import TaskImport, has_answers
from labelwise.masks import ImageSegments
from labelwise.review.media import check_sources, place_all
from labelwise.review.project import ensure_in, open_client, project_url
from labelwise.rounds import PROPOSED, QUEUED
from labelwise.task_types import TaskType

if TYPE_CHECKING:
    from labelwise.labelstudio.client import LabelStudioClient

log = logging.getLogger(__name__)

QUEUE_ORDER = ("tasks:data.uncertainty_score",)
"""Data Manager order of a round's or group's tab: most uncertain first."""
NUMERIC_DATA = ("uncertainty_score", "round")
"""Task data keys the tabs show, filter and sort as numbers."""
HIDDEN_COLUMNS = (
    "inner_id", "annotations_results", "annotations_ids", "predictions_results",
    "predictions_model_versions", "file_upload", "storage_filename", "created_at", "updated_at",
    "updated_by", "avg_lead_time", "draft_exists", "allow_skip", "data.reason", "data.strategy",
)
"""Columns a round's or group's tab hides, so the image, its score and why it was picked show
without scrolling past raw annotation JSON."""


def _parse_batch(batch: ScoreBatch | Mapping[str, Any], project: ProjectRecord) -> tuple[ScoreBatch, int]:
    """The typed batch and its round number; ValueError on a bad shape, another project's
    batch, an empty queue or a batch that was never recorded as a round."""
    typed = batch if isinstance(batch, ScoreBatch) else ScoreBatch.from_json(batch)
    if typed.project_id and typed.project_id != project.name:
        raise ValueError(f"batch is for project {typed.project_id!r}; expected {project.name!r}")
    if not typed.queue:
        raise ValueError(
            f"nothing to queue: the score batch for project {project.name!r} selected no images "
            "(no unlabelled image with predictions left?)"
        )
    number = typed.round_number
    if number is None:
        raise ValueError(
            f"batch['params']['round'] must be the recorded round number; got "
            f"{typed.params.get('round')!r} (build the batch with record=True)"
        )
    return typed, number


def _check_queueable(project: ProjectRecord, images: Sequence[ImageRecord], number: int) -> None:
    bad = [
        (img.image_id, img.status.value, img.queued_round)
        for img in images
        if not (img.status is ImageStatus.UNLABELLED
                or (img.status is ImageStatus.QUEUED and img.queued_round == number))
    ]
    if bad:
        shown = ", ".join(f"{i} ({s}, round {r})" for i, s, r in bad[:10])
        raise ValueError(
            f"{len(bad)} image(s) of the batch cannot be queued in round {number} of project "
            f"{project.name!r}: {shown}; expected unlabelled images (or images already queued "
            "in this round)"
        )


def _prediction(
    dets: Detections | None, project: ProjectRecord, image: ImageRecord, model_version: str,
    score: float, floor: float, outlines: ImageSegments | None = None,
) -> dict[str, Any]:
    result = [] if dets is None else review_format(project.task_type).prediction_result(
        dets, project.class_names, image.width, image.height, floor, outlines)
    return {"model_version": model_version, "score": round(score, 6), "result": result}


def _existing_tasks(client: "LabelStudioClient", ls_id: int) -> dict[str, dict[str, Any]]:
    """``{data.image_id: task}`` of the project's tasks (the oldest task when several)."""
    found: dict[str, dict[str, Any]] = {}
    for task in sorted(client.list_tasks(ls_id, fields="task_only"), key=lambda t: int(t["id"])):
        image_id = (task.get("data") or {}).get("image_id")
        if image_id is None:
            continue
        if str(image_id) in found:
            log.warning("Label Studio project %s holds several tasks for image %s; using task %s",
                        ls_id, image_id, found[str(image_id)]["id"])
            continue
        found[str(image_id)] = task
    return found


def queue_batch(
    settings: Settings, catalog: Catalog, project: str, batch: ScoreBatch | Mapping[str, Any],
    group: str | None,
) -> dict[str, Any]:
    """Import a recorded score batch into the project's Label Studio project.

    Args:
        batch: a :class:`ScoreBatch` built with ``record=True`` (its ``params.round`` names
            the round), or its ``as_json()`` dict (parsed once, :meth:`ScoreBatch.from_json`).
        group: an upload group; it gets its own Data Manager tab ``group: <group>``.

    Returns:
        ``{"round", "ls_project_id", "created", "reused", "refreshed", "reconciled",
        "task_ids": {image_id: task_id}, "view_id", "round_view_id", "url"}``: ``refreshed``
        stale tasks replaced, ``reconciled`` the import's lost replies
        (:meth:`TaskImport.as_json`); ``url`` opens the group's tab (the round's tab without a
        group).

    Raises:
        ProjectNotFound / CatalogError: unknown project or round.
        ValueError: an empty queue ("nothing to queue: ..."), a batch without a round, or images
            that are labelled/rejected/queued in another round.
        FileNotFoundError: an image file vanished since it was added (nothing is queued).
        LabelStudioUnavailable, LabelStudioAuthError: nothing is marked queued.
    """
    record = catalog.project(project)
    typed, number = _parse_batch(batch, record)
    items = typed.queue
    info = catalog.round_info(record, number)  # the round must exist
    ids = [item.image_id for item in items]
    images = catalog.require_images(record, ids)
    _check_queueable(record, images, number)
    if info["status"] not in (PROPOSED, QUEUED):  # e.g. closed as stale by another score-batch
        raise ValueError(
            f"round {number} of project {record.name!r} is {info['status']!r}; only a "
            f"{PROPOSED!r} or {QUEUED!r} round can be queued (run score-batch again for a new round)"
        )
    check_sources(images)
    strategy = typed.strategy
    model_version = typed.model_version
    floor = settings.labelstudio.preannotation_floor(record.task_type.value)
    root = settings.labelstudio_document_root
    preds = catalog.predictions(record, str(model_version), ids) if model_version else {}
    outlines = (catalog.prediction_segments(record, str(model_version), ids)
                if model_version and record.task_type is TaskType.SEGMENT else {})

    with open_client(settings) as client:
        record, info = ensure_in(client, settings, catalog, record)
        ls_id = int(info["ls_project_id"])
        served = place_all(settings, record, images)
        existing = _existing_tasks(client, ls_id)
        task_ids: dict[str, int] = {}
        new_tasks: list[dict[str, Any]] = []
        new_ids: list[str] = []
        stale: list[int] = []  # unannotated tasks with outdated data: replaced in bulk
        specs: dict[str, dict[str, Any]] = {}  # what each image's task is (for consensus copies)
        for img, item in zip(images, items, strict=True):
            data = {
                "image": local_files_url(Path(served[img.image_id]), root),
                "image_id": img.image_id,
                "round": number,
                "strategy": strategy,
                "group": group,
                "uncertainty_score": round(item.uncertainty_score, 6),
                "reason": item.reason,
                "reason_text": item.reason_text,
            }
            spec: dict[str, Any] = {"data": data}
            if model_version:
                spec["predictions"] = [_prediction(preds.get(img.image_id), record, img,
                                                   str(model_version), item.uncertainty_score,
                                                   floor, outlines.get(img.image_id))]
            specs[img.image_id] = spec
            known = existing.get(img.image_id)
            if known is not None and dict(known.get("data") or {}) == data:
                task_ids[img.image_id] = int(known["id"])
                continue
            if known is not None and has_answers(known):
                task_ids[img.image_id] = int(known["id"])  # keep a reviewer's work on it
                client.update_task_data(int(known["id"]), data)
                continue
            if known is not None:
                stale.append(int(known["id"]))
            new_tasks.append(spec)
            new_ids.append(img.image_id)
        # Delete before importing: a crash in between leaves no task for those images (the next
        # queue imports them), never two.
        client.delete_tasks(ls_id, stale)
        imported = client.import_tasks(ls_id, new_tasks, key="image_id") if new_tasks else None
        if imported is not None:
            task_ids.update(zip(new_ids, imported.task_ids, strict=True))
            if imported.note():
                log.warning("round %d of project %r: %s", number, record.name, imported.note())
        if model_version:  # reviewers are prefilled with this round's model's boxes
            client.set_prelabel_model(ls_id, str(model_version))
        round_view = client.ensure_view(ls_id, title=f"round {number}", field="round", value=number,
                                        ordering=QUEUE_ORDER, numbers=NUMERIC_DATA,
                                        hidden=HIDDEN_COLUMNS)
        view_id = None
        if group:
            view_id = client.ensure_view(ls_id, title=f"group: {group}", field="group", value=group,
                                         ordering=QUEUE_ORDER, numbers=NUMERIC_DATA,
                                        hidden=HIDDEN_COLUMNS)
        url = project_url(client, ls_id, view_id if view_id is not None else round_view)
        consensus = _queue_consensus(settings, client, ls_id, number, ids, specs)

    ordered = {image_id: task_ids[image_id] for image_id in ids}
    catalog.mark_queued(record, ordered, number, group)
    catalog.transition_round(record, number, PROPOSED, QUEUED)
    return {
        "round": number,
        "ls_project_id": ls_id,
        "created": len(new_tasks) - len(stale),
        "reused": len(ids) - len(new_tasks),
        "refreshed": len(stale),
        "reconciled": (imported or TaskImport([])).as_json(),
        "task_ids": ordered,
        "view_id": view_id,
        "round_view_id": round_view,
        "url": url,
        "consensus": consensus,
    }


def _queue_consensus(
    settings: Settings, client: "LabelStudioClient", ls_id: int, number: int, ids: Sequence[str],
    specs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The round's consensus copies (:mod:`labelwise.review.consensus`), exactly once each, and
    a tab per extra reviewer; ``{"images", "created", "view_ids"}`` (nothing when off)."""
    from labelwise.review.consensus import (
        CONSENSUS_KEY,
        consensus_copies,
        consensus_images,
    )

    chosen = consensus_images(ids, number, settings.consensus.share)
    if not chosen:
        return {"images": [], "created": 0, "view_ids": {}}
    keys = {str((t.get("data") or {}).get(CONSENSUS_KEY))
            for t in client.list_tasks(ls_id, fields="task_only")
            if (t.get("data") or {}).get(CONSENSUS_KEY) is not None}
    copies = consensus_copies(specs, chosen, settings.consensus.reviewers, number, keys)
    if copies:
        client.import_tasks(ls_id, copies, key=CONSENSUS_KEY)
    views = {k: client.ensure_view(ls_id, title=f"consensus: reviewer {k}", field="reviewer",
                                   value=k, ordering=("tasks:id",), numbers=("reviewer", "round"),
                                   hidden=HIDDEN_COLUMNS)
             for k in range(2, settings.consensus.reviewers + 1)}
    log.info("round %d: %d image(s) queued for %d reviewers (%d copies created)", number,
             len(chosen), settings.consensus.reviewers, len(copies))
    return {"images": chosen, "created": len(copies), "view_ids": views}
