"""Second look: send images whose labels are probably wrong back to Label Studio, and pull fixes.

:func:`queue_second_look` takes ranked label issues (:mod:`labelwise.quality.project_issues`)
and gives each of the top images one *second-look task* in the project's Label Studio project::

    data:        {"image": "/data/local-files/?d=<media path>", "second_look": <image id>,
                  "look": "second", "issue_kind", "issue_score" (float), "issue_rank" (int),
                  "issues": [{"kind", "class_name", "box", "score", "detail"}, ...],
                  "reason_text" (the suspected issues in words, shown above the image)}
    annotation:  the image's current labels (the catalog's), for the reviewer to fix

All second-look tasks share the Data Manager tab ``second look`` (``data.look == "second"``),
most suspicious first (``issue_rank``). The tasks carry no ``image_id``, so the main queue
(:mod:`labelwise.review.queue`), review status and pull never take them for queue tasks.

Exactly once per image, like the main queue: an image that already has a second-look task (found
by ``data.second_look``) gets no other; the import is keyed by ``second_look`` (a lost reply is
reconciled, never re-sent blindly); and a task is given its annotation on every run until it has
one, so a run that died between the import and the annotation is finished by the next. A second
run of the same command creates nothing.

:func:`apply_second_looks` (called by :func:`labelwise.review.pull_annotations` with the tasks
it listed) reads each second-look task's latest non-cancelled annotation and, where it differs
from the catalog's label, stores it (``source="second_look"``, the label keeps its round) and
rewrites the YOLO file; a task whose annotation was cancelled (skipped) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import Settings
from labelwise.labelstudio.formats import review_format
from labelwise.labelstudio.local_files import local_files_url
from labelwise.masks import ImageSegments
from labelwise.quality.label_issues import LabelIssue, rank_issues
from labelwise.review.media import check_sources, place_all
from labelwise.review.project import ensure_in, open_client, project_url
from labelwise.review.status import latest_final_annotation, require_ls_project
from labelwise.task_types import TaskType

log = logging.getLogger(__name__)

SECOND_LOOK_KEY = "second_look"
"""Task data key: the image id a second-look task is about (the import's exactly-once key)."""
LOOK_FIELD, LOOK_VALUE = "look", "second"
"""The tab's filter: ``data.look == "second"``."""
SECOND_LOOK_TAB = "second look"
SECOND_LOOK_SOURCE = "second_look"
"""The ``source`` of a label fixed on a second look."""
ISSUES_SHOWN = 3
"""Suspected issues spelled out above the image (the task's ``issues`` lists them all)."""


@dataclass(frozen=True)
class SecondLookImage:
    """One image sent for a second look: its issues (score descending) and its rank (1 = the
    most suspicious image)."""

    image_id: str
    rank: int
    issues: tuple[LabelIssue, ...]

    @property
    def score(self) -> float:
        return self.issues[0].score


def second_look_images(issues: Sequence[LabelIssue], limit: int) -> list[SecondLookImage]:
    """The first ``limit`` images of the ranked issues (:func:`rank_issues`, the order
    ``labelwise label-issues`` lists them in), each with all its issues, best first.
    ``issues`` need not be sorted."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1 image; got {limit}")
    by_image: dict[str, list[LabelIssue]] = {}
    for issue in rank_issues(issues):
        by_image.setdefault(issue.image_id, []).append(issue)
    return [SecondLookImage(image_id, rank, tuple(found))
            for rank, (image_id, found) in enumerate(list(by_image.items())[:limit], 1)]


def issue_text(image: SecondLookImage, class_names: Sequence[str]) -> str:
    """The sentence above the image: the suspected issues, most likely first."""

    def name(class_id: int) -> str:
        return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

    parts = [f"{i.kind.replace('_', ' ')} ({name(i.class_id)}, score {i.score:.2f}): {i.detail}"
             for i in image.issues[:ISSUES_SHOWN]]
    more = len(image.issues) - ISSUES_SHOWN
    return ("Second look, please check: " + "; ".join(parts)
            + (f"; and {more} more" if more > 0 else ""))


def _task_data(image: SecondLookImage, url: str, class_names: Sequence[str]) -> dict[str, Any]:
    def name(class_id: int) -> str | None:
        return class_names[class_id] if 0 <= class_id < len(class_names) else None

    return {
        "image": url,
        SECOND_LOOK_KEY: image.image_id,
        LOOK_FIELD: LOOK_VALUE,
        "issue_kind": image.issues[0].kind,
        "issue_score": round(image.score, 6),
        "issue_rank": image.rank,
        "issues": [{"kind": i.kind, "class_name": name(i.class_id),
                    "box": [round(v, 2) for v in i.box], "score": round(i.score, 6),
                    "detail": i.detail} for i in image.issues],
        "reason_text": issue_text(image, class_names),
    }


def second_look_tasks(tasks: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``{data.second_look: task}`` of a project's tasks (the oldest task when several)."""
    found: dict[str, Mapping[str, Any]] = {}
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        image_id = (task.get("data") or {}).get(SECOND_LOOK_KEY)
        if image_id is not None and str(image_id) not in found:
            found[str(image_id)] = task
    return found


def queue_second_look(
    settings: Settings, catalog: Catalog, project: str, issues: Sequence[LabelIssue], limit: int,
) -> dict[str, Any]:
    """Give the top ``limit`` images of ``issues`` a second-look task each (idempotent).

    Args:
        issues: label issues of labelled images (e.g. ``project_label_issues(...).issues``).
        limit: images to send (the issues of one image go in one task).

    Returns:
        ``{"ls_project_id", "images", "created", "reused", "annotated", "task_ids":
        {image_id: task_id}, "reconciled", "view_id", "url"}``: ``created`` new tasks,
        ``reused`` images that already had one, ``annotated`` tasks given the current labels now.

    Raises:
        ValueError: an image without a stored label (only labelled images get a second look).
        FileNotFoundError: an image file vanished.
        LabelStudioUnavailable, LabelStudioAuthError, LabelStudioMaybeApplied: nothing is lost;
            run again.
    """
    record = catalog.project(project)
    chosen = second_look_images(issues, limit) if issues else []
    ids = [c.image_id for c in chosen]
    images = catalog.require_images(record, ids)
    labels = catalog.labels(record)
    unlabelled = [i for i in ids if i not in labels]
    if unlabelled:
        raise ValueError(f"only labelled images get a second look; {len(unlabelled)} of the "
                         f"{len(ids)} have no label in project {record.name!r}: {unlabelled[:5]}")
    check_sources(images)
    names = record.class_names
    outlines = catalog.label_segments(record) if record.task_type is TaskType.SEGMENT else {}
    root = settings.labelstudio_document_root
    with open_client(settings) as client:
        record, info = ensure_in(client, settings, catalog, record)
        ls_id = int(info["ls_project_id"])
        served = place_all(settings, record, images)
        existing = second_look_tasks(client.list_tasks(ls_id, fields="all"))
        new = [c for c in chosen if c.image_id not in existing]
        tasks = [{"data": _task_data(c, local_files_url(Path(served[c.image_id]), root), names)}
                 for c in new]
        imported = client.import_tasks(ls_id, tasks, key=SECOND_LOOK_KEY) if tasks else None
        task_ids = {i: int(existing[i]["id"]) for i in ids if i in existing}
        if imported is not None:
            task_ids.update(zip((c.image_id for c in new), imported.task_ids, strict=True))
        annotated = 0
        for img in images:
            known = existing.get(img.image_id)
            if known is not None and known.get("annotations"):
                continue  # has the current labels (or a reviewer's fix) already
            result = review_format(record.task_type).labels_to_result(
                labels[img.image_id], names, img.width, img.height, outlines.get(img.image_id))
            client.create_annotation(task_ids[img.image_id], result)
            annotated += 1
        view_id = client.ensure_view(ls_id, title=SECOND_LOOK_TAB, field=LOOK_FIELD,
                                     value=LOOK_VALUE, ordering=("tasks:data.issue_rank",),
                                     numbers=("issue_rank", "issue_score"),
                                     hidden=("inner_id", "annotations_results", "annotations_ids",
                                             "predictions_results", "data.issues"))
        url = project_url(client, ls_id, view_id)
    return {
        "ls_project_id": ls_id,
        "images": ids,
        "created": len(new),
        "reused": len(ids) - len(new),
        "annotated": annotated,
        "task_ids": {i: task_ids[i] for i in ids},
        "reconciled": imported.as_json() if imported is not None else None,
        "view_id": view_id,
        "url": url,
    }


def apply_second_looks(
    settings: Settings, catalog: Catalog, project: ProjectRecord, tasks: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Store the fixes of second-look tasks (``tasks``: the project's, ``fields="all"``).

    Returns:
        ``{"checked", "updated", "unchanged", "skipped", "invalid": [{"image_id", "task_id",
        "error"}], "updated_ids"}``.
    """
    from labelwise.review.pull import labels_dir, write_label_file

    looks = second_look_tasks(tasks)
    fmt = review_format(project.task_type)
    sizes = {img.image_id: (img.width, img.height)
             for img in catalog.images(project, image_ids=list(looks))} if looks else {}
    fixed_outlines: dict[str, ImageSegments] = {}
    current = catalog.labels(project)
    rounds = catalog.label_rounds(project)
    updated: dict[int | None, dict[str, np.ndarray]] = {}
    annotation_ids: dict[str, int] = {}
    unchanged = skipped = 0
    invalid: list[dict[str, Any]] = []
    for image_id, task in looks.items():
        final = latest_final_annotation(task)
        if final is None:
            skipped += 1
            continue
        try:
            rows = fmt.result_to_labels(final.get("result") or [], project.class_names)
            width, height = sizes.get(image_id, (0, 0))
            outline = (fmt.answer_segments(final.get("result") or [], project.class_names, width, height)
                       if image_id in sizes else None)
        except ValueError as exc:
            invalid.append({"image_id": image_id, "task_id": int(task["id"]), "error": str(exc)})
            continue
        before = current.get(image_id)
        if before is not None and same_labels(before, rows):
            unchanged += 1
            continue
        updated.setdefault(rounds.get(image_id), {})[image_id] = rows
        if outline is not None:
            fixed_outlines[image_id] = outline
        annotation_ids[image_id] = int(final["id"])
    out_dir = labels_dir(settings, project)
    for number, by_image in updated.items():
        for image_id, rows in by_image.items():
            write_label_file(out_dir / f"{image_id}.txt", rows)
        catalog.save_labels(project, by_image, source=SECOND_LOOK_SOURCE, round_number=number,
                            annotation_ids={i: annotation_ids[i] for i in by_image},
                            segments={i: fixed_outlines[i] for i in by_image if i in fixed_outlines})
    changed = sorted(i for by_image in updated.values() for i in by_image)
    if changed:
        log.info("second look: labels of %d image(s) of %s fixed: %s", len(changed),
                 project.name, changed[:10])
    return {"checked": len(looks), "updated": len(changed), "unchanged": unchanged,
            "skipped": skipped, "invalid": invalid, "updated_ids": changed}


def same_labels(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> bool:
    """Whether two (N, 5) YOLO label sets are the same boxes in the same order, up to ``atol``
    in normalised coordinates (a round trip through Label Studio's percentages moves a box by
    far less than that)."""
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol))


def pull_second_looks(settings: Settings, catalog: Catalog, project: str) -> dict[str, Any]:
    """:func:`apply_second_looks` over the project's tasks, listed now."""
    record = catalog.project(project)
    ls_id = require_ls_project(record)
    with open_client(settings) as client:
        tasks = client.list_tasks(ls_id, fields="all")
    return apply_second_looks(settings, catalog, record, tasks)
