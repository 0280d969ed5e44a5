"""Label Studio polygonlabels and choices conversions: round trips, label configs, bad input."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.labelstudio.choices import (
    CHOICES_TYPE,
    build_choices_label_config,
    class_to_ls_result,
    classification_to_ls_result,
    ls_result_to_class,
    top_class,
)
from labelwise.labelstudio.polygons import (
    POLYGON_TYPE,
    build_polygon_label_config,
    ls_points_to_polygon,
    ls_result_to_segments,
    polygon_to_ls_points,
    segments_to_ls_result,
)
from labelwise.masks import ImageSegments, Polygon, SegmentInstance, mask_iou, mask_to_polygons

NAMES = ("cat", "dog", "bird")


def _segments(rng: np.random.Generator, width: int, height: int, n: int) -> ImageSegments:
    instances = []
    for i in range(n):
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 4, 3 * height // 4)))
        axes = (int(rng.integers(4, width // 4)), int(rng.integers(4, height // 4)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        (polygon, *_) = mask_to_polygons(mask.astype(bool), simplify_tolerance_px=0.5, min_area_px=1.0)
        instances.append(SegmentInstance(i % len(NAMES), polygon))
    return ImageSegments(width, height, tuple(instances))


# ------------------------------------------------------------------------------- polygons
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), width=st.integers(40, 3000), height=st.integers(40, 3000),
       n=st.integers(0, 4))
def test_polygon_round_trip_keeps_vertices_and_masks(seed: int, width: int, height: int, n: int) -> None:
    segments = _segments(np.random.default_rng(seed), width, height, n)
    result = segments_to_ls_result(segments, NAMES, scores=[0.5] * n)
    back = ls_result_to_segments(result, NAMES, width, height)
    assert back.class_ids.tolist() == segments.class_ids.tolist()
    for a, b in zip(segments.instances, back.instances):
        np.testing.assert_allclose(b.polygon.points, a.polygon.points, rtol=1e-6, atol=1e-6)
    if n and width * height <= 400_000:
        for ma, mb in zip(segments.masks(), back.masks()):
            assert mask_iou(ma, mb) == 1.0


def test_polygon_region_shape() -> None:
    segments = ImageSegments(200, 100, (SegmentInstance(1, Polygon([[0, 0], [100, 0], [100, 50]])),))
    (region,) = segments_to_ls_result(segments, NAMES, scores=np.array([0.87654321]))
    assert region == {
        "id": "p0",
        "type": POLYGON_TYPE,
        "from_name": "label",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
        "value": {"points": [[0.0, 0.0], [50.0, 0.0], [50.0, 50.0]], "closed": True, POLYGON_TYPE: ["dog"]},
        "score": 0.876543,
    }
    (plain,) = segments_to_ls_result(segments, NAMES, from_name="seg", to_name="img")
    assert "score" not in plain and plain["from_name"] == "seg" and plain["to_name"] == "img"


def test_result_reading_skips_other_types_clips_and_filters_by_name() -> None:
    result = [
        {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["zebra"]}},
        {"type": POLYGON_TYPE, "from_name": "label", "original_width": 50, "original_height": 20,
         "value": {"points": [[-5, 0], [50, 0], [50, 120]], POLYGON_TYPE: ["bird"]}},
        {"type": POLYGON_TYPE, "from_name": "other", "value": {"points": [[0, 0], [1, 0], [1, 1]],
                                                                POLYGON_TYPE: ["cat"]}},
    ]
    segments = ls_result_to_segments(result, NAMES, 50, 20, from_name="label")
    assert segments.class_ids.tolist() == [2]
    np.testing.assert_allclose(segments.instances[0].polygon.points, [[0, 0], [25, 0], [25, 20]])
    assert len(ls_result_to_segments(result, NAMES, 50, 20)) == 2
    assert len(ls_result_to_segments([], NAMES, 50, 20)) == 0


@pytest.mark.parametrize(
    "item, message",
    [
        ({"value": {"points": [[0, 0], [1, 0], [1, 1]], POLYGON_TYPE: ["zebra"]}},
         r"unknown label 'zebra' in result\[0\] \(id 'r'\); expected one of \['cat', 'dog', 'bird'\]"),
        ({"value": {"points": [[0, 0], [1, 0], [1, 1]], POLYGON_TYPE: ["cat", "dog"]}},
         r"exactly one label; got \['cat', 'dog'\]"),
        ({"value": {"points": [[0, 0], [1, 0]], POLYGON_TYPE: ["cat"]}}, r"at least 3 vertices; got 2"),
        ({"value": {"points": [[0, 0], [1, math.nan], [1, 1]], POLYGON_TYPE: ["cat"]}}, r"finite"),
        ({"value": {"points": [[0, 0, 0], [1, 1, 1], [1, 1, 1]], POLYGON_TYPE: ["cat"]}}, r"\[x, y\] pairs"),
        ({"value": {POLYGON_TYPE: ["cat"]}}, r"must have points"),
        ({"original_width": 640, "original_height": 480,
          "value": {"points": [[0, 0], [1, 0], [1, 1]], POLYGON_TYPE: ["cat"]}},
         r"drawn on a 640 x 480 image; expected 100 x 50"),
    ],
)
def test_bad_polygon_results_are_refused(item: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ls_result_to_segments([{"id": "r", "type": POLYGON_TYPE, **item}], NAMES, 100, 50)


def test_unknown_class_id_and_score_count_are_refused() -> None:
    segments = ImageSegments(10, 10, (SegmentInstance(5, Polygon([[0, 0], [5, 0], [5, 5]])),))
    with pytest.raises(ValueError, match=r"class_id 5 with no name; expected ids in \[0, 2\]"):
        segments_to_ls_result(segments, NAMES)
    with pytest.raises(ValueError, match=r"one score per instance \(1\); got 2"):
        segments_to_ls_result(segments, NAMES, scores=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\]"):
        segments_to_ls_result(ImageSegments(10, 10, (SegmentInstance(0, segments.instances[0].polygon),)),
                              NAMES, scores=[1.5])


def test_points_helpers() -> None:
    polygon = Polygon([[10, 5], [20, 5], [20, 10]])
    assert polygon_to_ls_points(polygon, 40, 20) == [[25.0, 25.0], [50.0, 25.0], [50.0, 50.0]]
    assert ls_points_to_polygon([[25, 25], [50, 25], [50, 50]], 40, 20).allclose(polygon)
    with pytest.raises(ValueError, match=r"image width must be an integer >= 1 pixel; got 0"):
        polygon_to_ls_points(polygon, 0, 20)


# ------------------------------------------------------------------------------- choices
@pytest.mark.parametrize(
    "probs, class_id, score",
    [([0.1, 0.7, 0.2], 1, 0.7), ([0.4, 0.4, 0.2], 0, 0.4), ([1.0], 0, 1.0), ([0.0, 0.0, 1.0], 2, 1.0)],
)
def test_top_class(probs: list[float], class_id: int, score: float) -> None:
    top = top_class(probs)
    assert (top.class_id, top.score) == (class_id, pytest.approx(score))


@pytest.mark.parametrize(
    "probs, message",
    [([], r"non-empty \(C,\) vector; got shape \(0,\)"), ([[0.5, 0.5]], r"shape \(1, 2\)"),
     ([0.5, math.nan], r"finite and in \[0, 1\]"), ([1.5, 0.0], r"in \[0, 1\]"), ([-0.1, 0.5], r"in \[0, 1\]")],
)
def test_bad_probabilities_are_refused(probs: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        top_class(probs)


def test_classification_round_trip() -> None:
    (region,) = classification_to_ls_result([0.05, 0.15, 0.8000004], NAMES)
    assert region == {"id": "c0", "type": CHOICES_TYPE, "from_name": "choice", "to_name": "image",
                      "value": {"choices": ["bird"]}, "score": 0.8}
    assert ls_result_to_class([region], NAMES) == 2
    for cid in range(len(NAMES)):
        assert ls_result_to_class(class_to_ls_result(cid, NAMES), NAMES) == cid
    with pytest.raises(ValueError, match=r"one probability per class \(3"):
        classification_to_ls_result([0.5, 0.5], NAMES)
    with pytest.raises(ValueError, match=r"class_id must be an integer in \[0, 2\]"):
        class_to_ls_result(3, NAMES)


def test_choice_reading_by_name_and_from_name() -> None:
    result = [
        {"type": "rectanglelabels", "value": {"rectanglelabels": ["zebra"]}},
        {"type": CHOICES_TYPE, "from_name": "quality", "value": {"choices": ["blurry"]}},
        {"type": CHOICES_TYPE, "from_name": "choice", "value": {"choices": ["dog"]}},
    ]
    assert ls_result_to_class(result, NAMES, from_name="choice") == 1
    assert ls_result_to_class(result[:1], NAMES) is None
    assert ls_result_to_class([], NAMES) is None
    # The order of class_names decides the index, not Label Studio's.
    assert ls_result_to_class(result, ("dog", "cat"), from_name="choice") == 0


@pytest.mark.parametrize(
    "result, message",
    [
        ([{"id": "x", "type": CHOICES_TYPE, "value": {"choices": ["zebra"]}}],
         r"unknown class name 'zebra' in result\[0\] \(id 'x'\); expected one of \['cat', 'dog', 'bird'\]"),
        ([{"type": CHOICES_TYPE, "value": {"choices": ["cat", "dog"]}}], r"exactly one chosen class"),
        ([{"type": CHOICES_TYPE, "value": {"choices": ["cat"]}},
          {"type": CHOICES_TYPE, "value": {"choices": ["dog"]}}], r"exactly one chosen class"),
        ([{"type": CHOICES_TYPE, "value": {"choices": "cat"}}], r"must be a list of names"),
    ],
)
def test_bad_choice_results_are_refused(result: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ls_result_to_class(result, NAMES)


# ------------------------------------------------------------------------------- label configs
@pytest.mark.parametrize(
    "build, tag, child",
    [(build_polygon_label_config, "PolygonLabels", "Label"), (build_choices_label_config, "Choices", "Choice")],
)
def test_label_configs_parse_and_list_the_classes_in_order(build, tag: str, child: str) -> None:
    names = ["0", "1", "a & <b>", 'say "hi"']
    root = ET.fromstring(build(names))
    (control,) = root.iter(tag)
    assert control.get("toName") == "image"
    assert [c.get("value") for c in control.iter(child)] == names
    assert root.find("Header") is not None
    assert ET.fromstring(build(["0", "1"], reason_field=None)).find("Header") is None
    digits = ET.fromstring(build([str(i) for i in range(10)]))
    assert [c.get("hotkey") for c in digits.iter(child)] == [str(i) for i in range(10)]


@pytest.mark.parametrize("names, message", [([], "at least one name"), (["a", "a"], "unique"),
                                            (["a", " "], "non-blank"), (["a\nb"], "control characters")])
@pytest.mark.parametrize("build", [build_polygon_label_config, build_choices_label_config])
def test_label_configs_refuse_bad_names(build, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(names)
