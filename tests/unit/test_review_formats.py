"""Label Studio formats per task type: what goes to Label Studio comes back as the same labels."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.domain import Detections
from labelwise.labelstudio.formats import BoxFormat, ChoiceFormat, PolygonFormat, review_format
from labelwise.masks import ImageSegments, Polygon, SegmentInstance
from labelwise.task_types import TaskType, classification_detections, classification_label

NAMES = ["cat", "dog", "bird"]


@pytest.mark.parametrize(("task", "kind", "control"), [
    ("detect", BoxFormat, "RectangleLabels"), (TaskType.CLASSIFY, ChoiceFormat, "Choices"),
    ("segment", PolygonFormat, "PolygonLabels")])
def test_each_task_type_has_its_format(task, kind, control):
    fmt = review_format(task)
    assert isinstance(fmt, kind) and fmt.control == control and f"<{control} " in fmt.label_config(NAMES)


def _outlines(width: int, height: int) -> ImageSegments:
    square = Polygon(np.array([[4, 2], [20, 2], [20, 12], [4, 12]], np.float32))
    triangle = Polygon(np.array([[30, 5], [38, 18], [26, 18]], np.float32))
    return ImageSegments(width, height, (SegmentInstance(2, square), SegmentInstance(0, triangle)))


def test_outlines_go_as_polygons_and_come_back_as_outlines_and_their_boxes():
    fmt = review_format("segment")
    segs = _outlines(40, 20)
    det = Detections(np.array([[4, 2, 20, 12], [26, 5, 38, 18]], np.float32), np.array([0.9, 0.2]),
                     np.array([2, 0]), np.array([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]))
    result = fmt.prediction_result(det, NAMES, 40, 20, floor=0.5, segments=segs)
    assert [(r["type"], r["value"]["polygonlabels"], r["score"]) for r in result] == [
        ("polygonlabels", ["bird"], pytest.approx(0.9))]  # the floor applies to outlines too
    assert fmt.prediction_result(det, NAMES, 40, 20, floor=0.0) == []  # stored without outlines
    shown = fmt.labels_to_result(np.zeros((2, 5)), NAMES, 40, 20, segments=segs)
    rows = fmt.answer_labels(shown, NAMES)
    np.testing.assert_allclose(rows, [[2, 0.3, 0.35, 0.4, 0.5], [0, 0.8, 0.575, 0.3, 0.65]], atol=1e-6)
    back = fmt.answer_segments(shown, NAMES, 40, 20)
    assert back is not None and back.class_ids.tolist() == [2, 0]
    for got, want in zip(back.instances, segs.instances):
        np.testing.assert_allclose(got.polygon.points, want.polygon.points, atol=1e-3)
    assert review_format("detect").answer_segments(shown, NAMES, 40, 20) is None


def test_outlines_that_do_not_match_the_detections_are_refused():
    det = Detections.empty(3)
    with pytest.raises(ValueError, match=r"outlines must match the detections one to one; expected classes "
                                         r"\[\], got \[2, 0\]"):
        review_format("segment").prediction_result(det, NAMES, 40, 20, 0.0, _outlines(40, 20))


def test_a_classification_goes_as_its_top_class_and_comes_back_as_one_row():
    fmt = review_format("classify")
    det = classification_detections(np.array([0.2, 0.7, 0.1]), 40, 30)
    result = fmt.prediction_result(det, NAMES, 40, 30, floor=0.9)  # no floor for a classifier
    assert result == [{"id": "c0", "type": "choices", "from_name": "choice", "to_name": "image",
                       "value": {"choices": ["dog"]}, "score": pytest.approx(0.7)}]
    np.testing.assert_array_equal(fmt.result_to_labels(result, NAMES), classification_label(1))
    np.testing.assert_array_equal(fmt.answer_labels(result, NAMES), classification_label(1))
    assert '<Choices name="choice" toName="image" choice="single" required="true"' in fmt.label_config(NAMES)


@pytest.mark.parametrize("class_id", [0, 1, 2])
def test_a_known_class_round_trips(class_id):
    fmt = review_format("classify")
    result = fmt.labels_to_result(classification_label(class_id), NAMES, 8, 8)
    np.testing.assert_array_equal(fmt.answer_labels(result, NAMES), classification_label(class_id))


def test_a_classification_answer_without_a_class_is_refused():
    fmt = review_format("classify")
    assert fmt.result_to_labels([], NAMES).shape == (0, 5)  # e.g. a task sent without prediction
    with pytest.raises(ValueError, match=r"chose no class; expected exactly one of \['cat', 'dog', 'bird'\]"):
        fmt.answer_labels([], NAMES)
    with pytest.raises(ValueError, match="exactly one row; got 0"):
        fmt.prediction_result(Detections.empty(3), NAMES, 8, 8, 0.0)


def test_boxes_go_and_come_back_as_before():
    fmt = review_format("detect")
    det = Detections(np.array([[4, 4, 20, 12], [0, 0, 8, 8]], np.float32), np.array([0.9, 0.2]),
                     np.array([2, 0]), np.array([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]))
    result = fmt.prediction_result(det, NAMES, 40, 20, floor=0.5)
    assert [r["value"]["rectanglelabels"] for r in result] == [["bird"]]  # the floor applies
    rows = fmt.answer_labels(result, NAMES)
    np.testing.assert_allclose(rows, [[2, 0.3, 0.4, 0.4, 0.4]], atol=1e-6)
    np.testing.assert_allclose(fmt.result_to_labels(fmt.labels_to_result(rows, NAMES, 40, 20), NAMES), rows,
                               atol=1e-6)
    assert fmt.answer_labels([], NAMES).shape == (0, 5)  # an image with no object is a label
    assert "<RectangleLabels" in fmt.label_config(NAMES)
