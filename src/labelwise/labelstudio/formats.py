"""How a project's task type looks in Label Studio: one :class:`ReviewFormat` per task type.

Everything that talks to Label Studio about labels (the project's label config, the model's
pre-annotations, a known label shown for a second look or by the simulated annotator, and a
reviewer's answer read back) goes through the project's format, so a new task type plugs in
here instead of forking queue, pull and review:

* ``detect``: ``RectangleLabels``; labels are YOLO box rows (:mod:`labelwise.labelstudio.boxes`).
* ``classify``: one required single ``Choices``; the model's top class is the pre-annotation
  (its probability as ``score``); a label is the one whole-image row of
  :func:`labelwise.task_types.classification_label` (:mod:`labelwise.labelstudio.choices`).

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
                          floor: float) -> list[dict[str, Any]]:
        """The model's answer for one image as pre-annotation regions; ``floor``: the lowest
        box confidence shown (boxes only)."""
        ...

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int) -> list[dict[str, Any]]:
        """Stored (N, 5) label rows as regions (a known label shown to a reviewer)."""
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
                          floor: float) -> list[dict[str, Any]]:
        return detections_to_ls_result(dets.above(floor), class_names, width, height)

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int) -> list[dict[str, Any]]:
        return yolo_to_ls_result(rows, class_names, width, height)

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
                          floor: float) -> list[dict[str, Any]]:
        """The top class with its probability (no floor: a classifier always answers).

        Raises:
            ValueError: ``dets`` is not one classification row.
        """
        if len(dets) != 1:
            raise ValueError(f"a classification prediction has exactly one row; got {len(dets)}")
        return classification_to_ls_result(dets.probs[0], class_names)

    def labels_to_result(self, rows: np.ndarray, class_names: Sequence[str], width: int,
                         height: int) -> list[dict[str, Any]]:
        if len(np.asarray(rows).reshape(-1, 5)) == 0:
            return []
        return class_to_ls_result(label_class(rows), class_names)

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


_FORMATS: dict[TaskType, ReviewFormat] = {TaskType.DETECT: BoxFormat(), TaskType.CLASSIFY: ChoiceFormat()}


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
