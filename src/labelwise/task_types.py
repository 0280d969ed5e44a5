"""What kind of model a project trains: detection, classification or instance segmentation.

A project's task type is fixed when it is created and stored in the catalog; every command,
flow and API reads it from the project. A model whose own task (``YOLO(...).task``: ``detect``,
``classify``, ``segment``) differs from its project's is refused by :func:`check_model_task`, with
a message naming both.

How a classification fits the detection data model (one representation, no parallel path):

* a **prediction** is a :class:`~labelwise.domain.Detections` of exactly one row: the whole
  image as its box ``[0, 0, W, H]``, ``probs`` the model's full softmax (1, C), ``class_id`` its
  arg-max and ``confidence`` its top probability (:func:`classification_detections`);
* a **label** is one YOLO row ``[class, 0.5, 0.5, 1, 1]`` (the whole image, normalised;
  :func:`classification_label`), so the catalog, pull and the label-issue finder keep one format;
* an image's scores are the three scores of its one row, with no aggregation (the scoring rule of
  a classification project has no confidence floor: every image has its one distribution).
"""

from __future__ import annotations

import enum

import numpy as np

from labelwise.domain import Detections, validate_probs


class TaskType(str, enum.Enum):
    """The model task of a project (ultralytics' own task names)."""

    DETECT = "detect"
    CLASSIFY = "classify"
    SEGMENT = "segment"

    @classmethod
    def parse(cls, value: "str | TaskType") -> "TaskType":
        """``value`` as a task type; a ValueError names the accepted ones."""
        if isinstance(value, TaskType):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown task type {value!r}; expected one of "
                             f"{[t.value for t in cls]}") from None


class TaskMismatch(ValueError):
    """A model's task is not its project's.

    Attributes:
        expected: the project's task; actual: the model's (None when it has none);
        model_ref: what the model was loaded from.
    """

    def __init__(self, message: str, expected: TaskType, actual: str | None, model_ref: str) -> None:
        super().__init__(message)
        self.expected, self.actual, self.model_ref = expected, actual, model_ref


def check_model_task(project_task: "TaskType | str", model_task: str | None, model_ref: str,
                     project: str | None = None) -> None:
    """Refuse a model whose task differs from the project's.

    Args:
        project_task: the project's task type.
        model_task: the model's own task (``YOLO(ref).task`` / the checkpoint's ``task``).
        model_ref: what the model was loaded from, for the message.
        project: the project's name, for the message.

    Raises:
        TaskMismatch: naming the project's task and the model's.
    """
    expected = TaskType.parse(project_task)
    if model_task != expected.value:
        where = f"project {project!r}" if project else "the project"
        raise TaskMismatch(
            f"{where} is a {expected.value!r} project but model {model_ref} is a {model_task!r} "
            f"model; expected a {expected.value!r} model (e.g. {model_yaml_name(expected)} or "
            "your own .pt of that task)",
            expected, model_task, model_ref)


_SUFFIX = {TaskType.DETECT: "", TaskType.CLASSIFY: "-cls", TaskType.SEGMENT: "-seg"}


def model_yaml_name(task: "TaskType | str", base: str = "yolov8n") -> str:
    """The ultralytics yaml of ``base`` for ``task``: ``yolov8n.yaml``, ``yolov8n-cls.yaml`` ..."""
    return f"{base}{_SUFFIX[TaskType.parse(task)]}.yaml"


def classification_detections(probs: np.ndarray, width: int, height: int) -> Detections:
    """One image's classification as one whole-image row.

    Args:
        probs: (C,) or (1, C) softmax of the classifier, summing to 1.
        width, height: the image's size in pixels (the row's box is ``[0, 0, width, height]``).
    """
    row = validate_probs(np.asarray(probs, np.float64).reshape(1, -1))
    top = int(row[0].argmax())
    return Detections(
        xyxy=np.array([[0.0, 0.0, float(width), float(height)]], np.float32),
        confidence=np.array([row[0, top]], np.float32),
        class_id=np.array([top], np.int64),
        probs=row.astype(np.float32),
    )


def classification_label(class_id: int) -> np.ndarray:
    """(1, 5) float64 YOLO row ``[class_id, 0.5, 0.5, 1, 1]``: the label of a classified image."""
    if class_id < 0:
        raise ValueError(f"class_id must be >= 0; got {class_id}")
    return np.array([[float(class_id), 0.5, 0.5, 1.0, 1.0]], np.float64)


def label_class(rows: np.ndarray) -> int:
    """The class of a classified image from its stored (1, 5) label rows.

    Raises:
        ValueError: not exactly one row (a classified image has one class).
    """
    arr = np.asarray(rows, np.float64).reshape(-1, 5)
    if arr.shape[0] != 1:
        raise ValueError(f"a classified image has exactly one label row; got {arr.shape[0]}")
    return int(arr[0, 0])
