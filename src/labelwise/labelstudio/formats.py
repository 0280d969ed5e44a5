"""How a project's task type looks in Label Studio: one :class:`ReviewFormat` per task type.

Everything that talks to Label Studio about labels (the project's label config, the model's
pre-annotations, a known label shown for a second look or by the simulated annotator, and a
reviewer's answer read back) goes through the project's format, so a new task type plugs in
here instead of forking queue, pull and review:

* ``detect``: ``RectangleLabels``; labels are YOLO box rows (:mod:`labelwise.labelstudio.boxes`).
* ``classify``: one required single ``Choices``; the model's top class is the pre-annotation
  (its probability as ``score``); a label is the one whole-image row of
  :func:`labelwise.task_types.classification_label` (:mod:`labelwise.labelstudio.choices`).
* ``segment``: ``PolygonLabels``; the model's instance outlines (stored beside its boxes) are
  the pre-annotation; a label is the outlines' bounding boxes as YOLO rows plus the outlines
  themselves (:meth:`ReviewFormat.answer_segments`; :mod:`labelwise.labelstudio.polygons`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from labelwise.domain import Detections
from labelwise.labelstudio.boxes import detections_to_ls_result, ls_result_to_yolo, yolo_to_ls_result
from labelwise.labelstudio.choices import (
    build_choices_label_config,
    class_to_ls_result,
    classification_to_ls_result,
    ls_result_to_class,
)
from labelwise.labelstudio.label_config import build_label_config
from labelwise.labelstudio.polygons import (
    POLYGON_TYPE,
    build_polygon_label_config,
    ls_result_to_segments,
    segments_to_ls_result,
)
from labelwise.masks import ImageSegments
from labelwise.task_types import TaskType, classification_label, label_class


class ReviewFormat(Protocol):
    """Label Studio's view of one task type."""

    task_type: TaskType
    control: str
    """The label config's control tag holding the class names (``RectangleLabels``, ``Choices``)."""

    def label_config(self, class_names: Sequence[str], reason_field: str | None = "reason_text") -> str:
        """The project's labelling interface (XML)."""
        ...

    def prediction_result(self, dets: Detections, class_names: Sequence[str], width: int, height: int,
                          floor: float, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        """The model's answer for one image as pre-annotation regions; ``floor``: the lowest
        box confidence shown (boxes and outlines); ``segments``: the instance outlines stored
        with the prediction (segmentation only)."""
        ...

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        """Stored (N, 5) label rows (and a segmentation label's outlines) as regions (a known
        label shown to a reviewer)."""
        ...

    def answer_segments(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                        width: int, height: int) -> ImageSegments | None:
        """A reviewer's outlines in pixels (segmentation), None for tasks without outlines."""
        ...

    def result_to_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """Regions (a reviewer's or the model's) as (N, 5) float64 label rows, classes mapped by
        name."""
        ...

    def answer_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """A reviewer's final answer as the image's label rows; a ValueError names an answer
        that is no label of this task (a classification with no class chosen)."""
        ...


class BoxFormat:
    """Detection: rectangles."""

    task_type = TaskType.DETECT
    control = "RectangleLabels"

    def label_config(self, class_names: Sequence[str], reason_field: str | None = "reason_text") -> str:
        return build_label_config(class_names, reason_field=reason_field)

    def prediction_result(self, dets: Detections, class_names: Sequence[str], width: int, height: int,
                          floor: float, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        return detections_to_ls_result(dets.above(floor), class_names, width, height)

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        return yolo_to_ls_result(rows, class_names, width, height)

    def answer_segments(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                        width: int, height: int) -> ImageSegments | None:
        return None

    def result_to_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        return ls_result_to_yolo(result, class_names)

    def answer_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """Any number of boxes, none included (an image with no object)."""
        return ls_result_to_yolo(result, class_names)


class ChoiceFormat:
    """Classification: one required choice per image."""

    task_type = TaskType.CLASSIFY
    control = "Choices"

    def label_config(self, class_names: Sequence[str], reason_field: str | None = "reason_text") -> str:
        return build_choices_label_config(class_names, reason_field=reason_field)

    def prediction_result(self, dets: Detections, class_names: Sequence[str], width: int, height: int,
                          floor: float, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        """The top class with its probability (no floor: a classifier always answers).

        Raises:
            ValueError: ``dets`` is not one classification row.
        """
        if len(dets) != 1:
            raise ValueError(f"a classification prediction has exactly one row; got {len(dets)}")
        return classification_to_ls_result(dets.probs[0], class_names)

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        if len(np.asarray(rows).reshape(-1, 5)) == 0:
            return []
        return class_to_ls_result(label_class(rows), class_names)

    def answer_segments(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                        width: int, height: int) -> ImageSegments | None:
        return None

    def result_to_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """(1, 5) of the chosen class, or (0, 5) when the reviewer chose none."""
        chosen = ls_result_to_class(result, class_names)
        return np.zeros((0, 5)) if chosen is None else classification_label(chosen)

    def answer_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """(1, 5) of the chosen class; an answer without a choice is refused."""
        rows = self.result_to_labels(result, class_names)
        if len(rows) != 1:
            raise ValueError(f"the answer chose no class; expected exactly one of {list(class_names)}")
        return rows


class PolygonFormat:
    """Instance segmentation: one polygon per instance."""

    task_type = TaskType.SEGMENT
    control = "PolygonLabels"

    def label_config(self, class_names: Sequence[str], reason_field: str | None = "reason_text") -> str:
        return build_polygon_label_config(class_names, reason_field=reason_field)

    def prediction_result(self, dets: Detections, class_names: Sequence[str], width: int, height: int,
                          floor: float, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        """The outlines of the instances at or above ``floor``, with their box confidences as
        scores; a prediction stored without outlines gives no pre-annotation.

        Raises:
            ValueError: outlines that do not match the detections one to one.
        """
        if segments is None:
            return []
        if len(segments) != len(dets) or not np.array_equal(segments.class_ids, dets.class_id):
            raise ValueError(f"outlines must match the detections one to one; expected classes "
                             f"{dets.class_id.tolist()}, got {segments.class_ids.tolist()}")
        keep = np.flatnonzero(dets.confidence >= np.float32(floor))
        kept = ImageSegments(segments.width, segments.height, tuple(segments.instances[i] for i in keep))
        return segments_to_ls_result(kept, class_names, dets.confidence[keep])

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int, segments: ImageSegments | None = None) -> list[dict[str, Any]]:
        """The label's outlines (a label stored without outlines shows nothing to edit)."""
        return [] if segments is None else segments_to_ls_result(segments, class_names)

    def result_to_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """(N, 5) YOLO rows of the polygons' bounding boxes (points are percent of the image,
        so no image size is needed)."""
        index = {name: i for i, name in enumerate(class_names)}
        rows: list[list[float]] = []
        for k, item in enumerate(result):
            if item.get("type") != POLYGON_TYPE:
                continue
            value = item.get("value") or {}
            labels = value.get(POLYGON_TYPE) or []
            if len(labels) != 1 or labels[0] not in index:
                raise ValueError(f"result[{k}] (id {item.get('id')!r}) must carry exactly one label of "
                                 f"{list(class_names)}; got {labels}")
            try:
                pts = np.clip(np.asarray(value.get("points"), np.float64), 0.0, 100.0) / 100.0
            except (TypeError, ValueError):
                raise ValueError(f"result[{k}] points must be numeric [x, y] pairs in percent; "
                                 f"got {value.get('points')!r}") from None
            if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2 or np.isnan(pts).any():
                raise ValueError(f"result[{k}] needs at least 3 finite [x, y] points; got {value.get('points')!r}")
            (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
            rows.append([index[labels[0]], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        return np.asarray(rows, np.float64).reshape(-1, 5)

    def answer_labels(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
        """Any number of outlines' boxes, none included (an image with no object)."""
        return self.result_to_labels(result, class_names)

    def answer_segments(self, result: Sequence[Mapping[str, Any]], class_names: Sequence[str],
                        width: int, height: int) -> ImageSegments | None:
        return ls_result_to_segments(result, class_names, width, height)


_FORMATS: dict[TaskType, ReviewFormat] = {TaskType.DETECT: BoxFormat(), TaskType.CLASSIFY: ChoiceFormat(),
                                          TaskType.SEGMENT: PolygonFormat()}


def review_format(task_type: TaskType | str) -> ReviewFormat:
    """The Label Studio format of ``task_type``.

    Raises:
        ValueError: a task type Label Studio review does not support yet (named, with the ones it does).
    """
    task = TaskType.parse(task_type)
    try:
        return _FORMATS[task]
    except KeyError:
        raise ValueError(f"Label Studio review of {task.value!r} projects is not supported yet; "
                         f"supported: {[t.value for t in _FORMATS]}") from None
