"""A simulated annotator: answers queued Label Studio tasks with ground truth, through the API.

For demos and tests without a human. Each queued image whose task has no annotation yet gets one
annotation (created with the API key's user, exactly like a reviewer's) holding the boxes of its
YOLO ground-truth file, each box's class replaced with probability ``noise`` by a uniformly
random OTHER class.

Ground truth of image ``.../<name>.png`` is ``<truth_dir>/<name>.txt``; without ``truth_dir``,
the bundled digits layout is assumed: ``<root>/pool/images/<name>.png`` has its truth in
``<root>/pool_truth/labels/<name>.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelwise.catalog import Catalog, ImageRecord
from labelwise.config import Settings
from labelwise.domain import ImageStatus
from labelwise.labelstudio.boxes import yolo_to_ls_result
from labelwise.review.project import open_client
from labelwise.review.status import require_ls_project, task_state


def default_truth_path(image_path: Path) -> Path:
    """``<root>/pool_truth/labels/<stem>.txt`` for an image at ``<root>/pool/images/<file>``."""
    return image_path.parent.parent.parent / "pool_truth" / "labels" / f"{image_path.stem}.txt"


def truth_path(image: ImageRecord, truth_dir: str | Path | None) -> Path:
    """Where the ground truth of ``image`` is read from."""
    if truth_dir is None:
        return default_truth_path(image.path)
    return Path(truth_dir).expanduser() / f"{image.path.stem}.txt"


def noisy_labels(
    labels: np.ndarray, num_classes: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """A copy of (N, 5) YOLO rows whose class ids are each, with probability ``noise``, replaced
    by a uniformly random OTHER class (unchanged with a single class).

    One ``rng.random()`` draw per row, plus one ``rng.integers`` per replaced row, in row order.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a probability in [0, 1]; got {noise}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    out = np.array(labels, dtype=np.float64).reshape(-1, 5)
    for row in out:
        if rng.random() < noise and num_classes > 1:
            shift = int(rng.integers(1, num_classes))  # 1..C-1: never the same class
            row[0] = float((int(row[0]) + shift) % num_classes)
    return out


def annotate_simulated(
    settings: Settings,
    catalog: Catalog,
    project: str,
    truth_dir: str | None,
    noise: float,
    seed: int,
) -> dict[str, Any]:
    """Answer every queued, still unanswered task with (noisy) ground truth.

    Args:
        truth_dir: folder of ``<image stem>.txt`` YOLO files; None = the digits layout.
        noise: probability that a box's class is replaced by another class, in [0, 1].
        seed: seed of ``np.random.default_rng`` (images are processed in image-id order).

    Returns:
        ``{"annotated", "already_annotated", "missing_truth", "relabelled_boxes"}``: tasks
        answered now, tasks that had any annotation (also a skip), images without a truth file
        (not annotated), and boxes whose class the noise changed.

    Raises:
        ValueError: ``noise`` outside [0, 1], or a truth file that is malformed or names a class
            id outside the project's classes.
    """
    from labelwise.datasets.digits import read_yolo_labels

    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a probability in [0, 1]; got {noise}")
    record = catalog.project(project)
    ls_id = require_ls_project(record)
    queued = [img for img in catalog.images(record, ImageStatus.QUEUED)
              if img.ls_task_id is not None]
    rng = np.random.default_rng(seed)
    names = record.class_names
    annotated = already = missing = relabelled = 0
    with open_client(settings) as client:
        tasks = {int(t["id"]): t for t in client.list_tasks(ls_id, fields="task_only")}
        for img in queued:
            task = tasks.get(int(img.ls_task_id))  # type: ignore[arg-type]
            if task is None:
                continue
            if task_state(task) != "pending":
                already += 1
                continue
            path = truth_path(img, truth_dir)
            if not path.is_file():
                missing += 1
                continue
            truth = read_yolo_labels(path)
            rows = noisy_labels(truth, len(names), noise, rng)
            relabelled += int((rows[:, 0] != truth[:, 0]).sum())
            result = yolo_to_ls_result(rows, names, img.width, img.height)
            client.create_annotation(int(img.ls_task_id), result)  # type: ignore[arg-type]
            annotated += 1
    return {"annotated": annotated, "already_annotated": already, "missing_truth": missing,
            "relabelled_boxes": relabelled}
