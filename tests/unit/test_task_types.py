"""Task types: parsing, the model/project mismatch error, and a classification as one row."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.task_types import (
    TaskMismatch,
    TaskType,
    check_model_task,
    classification_detections,
    classification_label,
    label_class,
    model_yaml_name,
)


@pytest.mark.parametrize(("given", "expected"), [
    ("detect", TaskType.DETECT), (" Classify ", TaskType.CLASSIFY), (TaskType.SEGMENT, TaskType.SEGMENT)])
def test_parse(given, expected):
    assert TaskType.parse(given) is expected


def test_parse_names_the_accepted_types():
    with pytest.raises(ValueError, match=r"unknown task type 'obb'; expected one of \['detect', 'classify', 'segment'\]"):
        TaskType.parse("obb")


@pytest.mark.parametrize(("project", "model", "yaml"), [
    ("classify", "detect", "yolov8n-cls.yaml"), ("detect", "classify", "yolov8n.yaml"),
    ("segment", "detect", "yolov8n-seg.yaml"), ("detect", None, "yolov8n.yaml")])
def test_a_model_of_another_task_is_refused_naming_both(project, model, yaml):
    with pytest.raises(TaskMismatch) as err:
        check_model_task(project, model, "/models/m.pt", project="parts")
    assert str(err.value) == (
        f"project 'parts' is a {project!r} project but model /models/m.pt is a {model!r} model; "
        f"expected a {project!r} model (e.g. {yaml} or your own .pt of that task)")
    assert (err.value.expected.value, err.value.actual, err.value.model_ref) == (project, model, "/models/m.pt")
    assert model_yaml_name(project) == yaml


@pytest.mark.parametrize("task", ["detect", "classify", "segment"])
def test_a_model_of_the_same_task_passes(task):
    check_model_task(TaskType(task), task, "m.yaml")


def test_a_classification_is_one_whole_image_row():
    probs = np.array([0.1, 0.6, 0.3])
    det = classification_detections(probs, width=40, height=30)
    assert len(det) == 1
    np.testing.assert_array_equal(det.xyxy, [[0, 0, 40, 30]])
    assert det.class_id.tolist() == [1] and det.confidence.tolist() == pytest.approx([0.6])
    np.testing.assert_allclose(det.probs, [probs], rtol=1e-6)


def test_a_classification_needs_a_distribution():
    with pytest.raises(ValueError, match="rows must sum to 1"):
        classification_detections(np.array([0.2, 0.2]), 8, 8)


def test_classification_labels_round_trip():
    rows = classification_label(7)
    np.testing.assert_array_equal(rows, [[7, 0.5, 0.5, 1, 1]])
    assert label_class(rows) == 7
    with pytest.raises(ValueError, match="exactly one label row; got 2"):
        label_class(np.vstack([rows, rows]))
    with pytest.raises(ValueError, match="class_id must be >= 0; got -1"):
        classification_label(-1)
