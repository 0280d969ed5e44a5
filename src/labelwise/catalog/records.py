"""What the catalog hands out: its errors, the project/image records and the add report,
and the converters from database rows to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelwise.catalog.models import ImageRow, PredictionRow, ProjectRow
from labelwise.domain import Detections, ImageStatus
from labelwise.task_types import TaskType


class CatalogError(ValueError):
    """A request the catalog cannot honour; the message says what was expected."""


class ProjectNotFound(CatalogError):
    pass


@dataclass(frozen=True)
class ProjectRecord:
    """A project. ``holdout_yaml``/``holdout_split`` name the fixed evaluation set (a YOLO
    data.yaml and its split), so every round is measured on the same images. ``task_type`` is
    fixed at creation (:mod:`labelwise.task_types`)."""

    id: int
    name: str
    class_names: tuple[str, ...]
    ls_project_id: int | None = None
    holdout_yaml: Path | None = None
    holdout_split: str = "test"
    task_type: TaskType = TaskType.DETECT


def _project_record(row: ProjectRow) -> ProjectRecord:
    return ProjectRecord(row.id, row.name, tuple(row.class_names), row.ls_project_id,
                         Path(row.holdout_yaml) if row.holdout_yaml else None, row.holdout_split,
                         TaskType.parse(row.task_type or TaskType.DETECT.value))


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    path: Path
    width: int
    height: int
    status: ImageStatus
    ls_task_id: int | None = None
    queued_round: int | None = None
    upload_group: str | None = None


@dataclass
class AddReport:
    """What ``add_images`` did: ids added, ids already present, files skipped with the reason,
    and ids of present images whose stored size was corrected (EXIF orientation)."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def _image_record(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        image_id=row.image_id,
        path=Path(row.path),
        width=row.width,
        height=row.height,
        status=ImageStatus(row.status),
        ls_task_id=row.ls_task_id,
        queued_round=row.queued_round,
        upload_group=row.upload_group,
    )


def _detections(row: PredictionRow) -> Detections:
    n, c = row.n_boxes, row.num_classes
    return Detections(
        xyxy=np.frombuffer(row.xyxy, np.float32).reshape(n, 4),
        confidence=np.frombuffer(row.confidence, np.float32).reshape(n),
        class_id=np.frombuffer(row.class_id, np.int64).reshape(n),
        probs=np.frombuffer(row.probs, np.float32).reshape(n, c),
        mask_stability=(None if row.mask_stability is None
                        else np.frombuffer(row.mask_stability, np.float32).reshape(n)),
    )
