"""Pull reviewed labels back from Label Studio into the catalog and YOLO label files.

For every catalog image with status ``queued`` (any round), its Label Studio task decides:

* **annotated** (at least one annotation not cancelled): the most recently updated such
  annotation becomes the image's ground truth: rectangles -> YOLO rows with classes mapped BY
  NAME, stored with ``catalog.save_labels(source="labelstudio", round_number=<queued round>)``
  and written to ``<state_dir>/labels/<project>/<image_id>.txt``; status ``labelled``.
  An empty annotation (no box) is a valid answer: "nothing to detect here".
* **skipped** (only cancelled annotations): status ``rejected``. Rule: a reviewer who skips an
  image says it should not be learned from (unclear, off-domain, broken), so a rejected image is
  kept out of training AND out of every future queue (score batches only consider unlabelled
  images). The decision is final for Labelwise; nothing re-queues it automatically.
* **pending** (no answer yet), or its task is missing: stays ``queued``; a later pull takes it.

An annotation that cannot be converted (a label that is not a class) leaves its image queued and
is reported under ``invalid``.

Reviewer corrections (see :mod:`labelwise.review.corrections`) compare the prediction sent with
the task with the final annotation: for ``round_number`` over every annotated task of that round
(also those pulled earlier), else over the images labelled by this call. Each touched round's
figures are also merged into its ``params["corrections"]``.

Second-look tasks (:mod:`labelwise.review.second_look`) are read from the same listing: a fixed
label replaces the stored one (reported under ``second_look``).
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.catalog import Catalog, ImageRecord, ProjectRecord
from labelwise.config import Settings
from labelwise.domain import ImageStatus
from labelwise.labelstudio.formats import ReviewFormat, review_format
from labelwise.masks import ImageSegments
from labelwise.review.corrections import ImageCorrections, compare_yolo, summarize
from labelwise.review.media import project_folder_name
from labelwise.review.project import open_client
from labelwise.review.status import latest_final_annotation, require_ls_project, task_state

LABEL_DECIMALS = 6


def labels_dir(settings: Settings, project: ProjectRecord) -> Path:
    """``<state_dir>/labels/<project folder>``."""
    return settings.labels_dir / project_folder_name(project)


def format_yolo(rows: np.ndarray) -> str:
    """(N, 5) rows as YOLO label text (class id, then 6-decimal coordinates)."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return "".join(
        f"{int(r[0])} " + " ".join(f"{v:.{LABEL_DECIMALS}f}" for v in r[1:]) + "\n" for r in arr
    )


def write_label_file(path: Path, rows: np.ndarray) -> Path:
    """Write YOLO rows atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(format_yolo(rows), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sent_prediction(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The result of the prediction imported with the task (its oldest), or []."""
    predictions = sorted(task.get("predictions") or [], key=lambda p: int(p.get("id") or 0))
    return list(predictions[0].get("result") or []) if predictions else []


def image_corrections(
    task: Mapping[str, Any], class_names: Sequence[str], fmt: ReviewFormat
) -> ImageCorrections | None:
    """Corrections of an annotated task (None when it has no final annotation); ``fmt``: the
    project's Label Studio format (a changed choice counts as a relabelled whole-image row)."""
    final = latest_final_annotation(task)
    if final is None:
        return None
    sent = fmt.result_to_labels(sent_prediction(task), class_names)
    return compare_yolo(sent, fmt.result_to_labels(final.get("result") or [], class_names))


def _round_corrections(
    catalog: Catalog, project: ProjectRecord, number: int, tasks: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    found = []
    for img in catalog.round_images(project, number):
        task = tasks.get(img.ls_task_id) if img.ls_task_id is not None else None
        if task is None:
            continue
        try:
            item = image_corrections(task, project.class_names, review_format(project.task_type))
        except ValueError:
            continue
        if item is not None:
            found.append(item)
    return summarize(found)


def pull_annotations(
    settings: Settings, catalog: Catalog, project: str, round_number: int | None
) -> dict[str, Any]:
    """Bring every answered queued image back (see the module docstring for the rules).

    Args:
        round_number: the round to report corrections for; None = the images pulled now. Every
            queued image is pulled either way.

    Returns:
        ``{"round", "labelled", "rejected", "pending", "labels_dir", "corrections": {...},
        "invalid": [{"image_id", "task_id", "error"}], "second_look": {...}}``; counts are of
        this call, ``pending`` = images still queued; ``second_look``:
        :func:`~labelwise.review.second_look.apply_second_looks`.
    """
    record = catalog.project(project)
    fmt = review_format(record.task_type)
    if round_number is not None:
        catalog.round_info(record, round_number)
    ls_id = require_ls_project(record)
    queued: list[ImageRecord] = catalog.images(record, ImageStatus.QUEUED)
    with open_client(settings) as client:
        tasks = {int(t["id"]): t for t in client.list_tasks(ls_id, fields="all")}

    labels: dict[int | None, dict[str, np.ndarray]] = defaultdict(dict)
    annotation_ids: dict[str, int] = {}
    outlines: dict[str, ImageSegments] = {}
    rejected: list[str] = []
    pending: list[str] = []
    invalid: list[dict[str, Any]] = []
    pulled: list[ImageCorrections] = []
    for img in queued:
        task = tasks.get(img.ls_task_id) if img.ls_task_id is not None else None
        state = "pending" if task is None else task_state(task)
        if state == "pending" or task is None:
            pending.append(img.image_id)
            continue
        if state == "skipped":
            rejected.append(img.image_id)
            continue
        final = latest_final_annotation(task)
        assert final is not None
        try:
            rows = fmt.answer_labels(final.get("result") or [], record.class_names)
            outline = fmt.answer_segments(final.get("result") or [], record.class_names, img.width,
                                          img.height)
            item = image_corrections(task, record.class_names, fmt)
        except ValueError as exc:
            invalid.append({"image_id": img.image_id, "task_id": img.ls_task_id, "error": str(exc)})
            pending.append(img.image_id)
            continue
        labels[img.queued_round][img.image_id] = rows
        if outline is not None:
            outlines[img.image_id] = outline
        annotation_ids[img.image_id] = int(final["id"])
        if item is not None:
            pulled.append(item)

    out_dir = labels_dir(settings, record)
    for by_image in labels.values():
        for image_id, rows in by_image.items():
            write_label_file(out_dir / f"{image_id}.txt", rows)
    for number, by_image in labels.items():
        catalog.save_labels(record, by_image, source="labelstudio", round_number=number,
                            annotation_ids={i: annotation_ids[i] for i in by_image},
                            segments={i: outlines[i] for i in by_image if i in outlines})
    if rejected:
        catalog.set_status(record, rejected, ImageStatus.REJECTED)

    touched = {n for n in labels if n is not None}
    if round_number is not None:
        touched.add(round_number)
    per_round = {n: _round_corrections(catalog, record, n, tasks) for n in sorted(touched)}
    for number, figures in per_round.items():
        catalog.update_round_params(record, number, {"corrections": figures})
    corrections = per_round[round_number] if round_number is not None else summarize(pulled)
    from labelwise.review.second_look import apply_second_looks

    second_look = apply_second_looks(settings, catalog, record, list(tasks.values()))
    return {
        "round": round_number,
        "labelled": sum(len(v) for v in labels.values()),
        "rejected": len(rejected),
        "pending": len(pending),
        "labels_dir": str(out_dir),
        "corrections": corrections,
        "invalid": invalid,
        "second_look": second_look,
    }
