"""Pure Label Studio helpers: box round trips, by-name classes, config XML, local-files URLs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.domain import Detections
from labelwise.labelstudio import (
    build_label_config,
    check_storage_path,
    detections_to_ls_result,
    local_files_url,
    ls_rect_to_xyxy,
    ls_rect_to_yolo,
    ls_result_to_yolo,
    rectangle_region,
    xyxy_to_ls_rect,
    xyxy_to_yolo,
    yolo_to_ls_rect,
    yolo_to_ls_result,
    yolo_to_xyxy,
)

NAMES = ["cat", "dog", "bird"]
TOL = 1e-6


def _dets(xyxy: list[list[float]], conf: list[float], cls: list[int], nc: int = 3) -> Detections:
    probs = np.full((len(cls), nc), 0.0)
    for i, c in enumerate(cls):
        probs[i] = (1.0 - 0.9) / (nc - 1)
        probs[i, c] = 0.9
    return Detections(np.array(xyxy, dtype=np.float32).reshape(-1, 4), np.array(conf),
                      np.array(cls), probs)


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yolo", "width", "height"),
    [
        ([0.5, 0.5, 1.0, 1.0], 640, 480),  # the whole image
        ([0.5, 0.5, 0.2, 0.4], 640, 480),
        ([0.05, 0.95, 0.1, 0.1], 100, 100),  # touching two edges
        ([0.3, 0.7, 1e-4, 1e-4], 4000, 3000),  # tiny box on a big image
        ([0.25, 0.25, 0.5, 0.5], 1, 1),  # 1-pixel image
        ([0.123456789, 0.987654321 - 0.01, 0.02, 0.02], 1920, 1080),
    ],
)
def test_yolo_ls_region_yolo_round_trip(yolo: list[float], width: int, height: int) -> None:
    region = yolo_to_ls_result([[1, *yolo]], NAMES, width, height)
    assert region[0]["value"]["rectanglelabels"] == ["dog"]
    assert region[0]["original_width"] == width and region[0]["original_height"] == height
    back = ls_result_to_yolo(region, NAMES)
    assert back.shape == (1, 5)
    assert back[0, 0] == 1
    np.testing.assert_allclose(back[0, 1:], yolo, atol=TOL)


def test_known_values() -> None:
    # 640x480 image, box from (64, 48) to (320, 240) pixels.
    yolo = xyxy_to_yolo([[64, 48, 320, 240]], 640, 480)
    np.testing.assert_allclose(yolo, [[0.3, 0.3, 0.4, 0.4]])
    rect = xyxy_to_ls_rect([[64, 48, 320, 240]], 640, 480)
    np.testing.assert_allclose(rect, [[10.0, 10.0, 40.0, 40.0]])
    np.testing.assert_allclose(ls_rect_to_xyxy(rect, 640, 480), [[64, 48, 320, 240]])
    np.testing.assert_allclose(yolo_to_ls_rect(yolo), rect)
    np.testing.assert_allclose(ls_rect_to_yolo(rect), yolo)
    np.testing.assert_allclose(yolo_to_xyxy(yolo, 640, 480), [[64, 48, 320, 240]])


@st.composite
def _yolo_box(draw: st.DrawFn) -> tuple[list[float], int, int]:
    w = draw(st.floats(1e-4, 1.0))
    h = draw(st.floats(1e-4, 1.0))
    cx = draw(st.floats(w / 2, 1.0 - w / 2))
    cy = draw(st.floats(h / 2, 1.0 - h / 2))
    return [cx, cy, w, h], draw(st.integers(1, 8192)), draw(st.integers(1, 8192))


@settings(max_examples=300, deadline=None)
@given(_yolo_box(), st.integers(0, len(NAMES) - 1))
def test_round_trip_property(box: tuple[list[float], int, int], cls: int) -> None:
    yolo, width, height = box
    back = ls_result_to_yolo(yolo_to_ls_result([[cls, *yolo]], NAMES, width, height), NAMES)
    assert back[0, 0] == cls
    np.testing.assert_allclose(back[0, 1:], yolo, atol=TOL)
    # And through pixel corners.
    np.testing.assert_allclose(
        xyxy_to_yolo(yolo_to_xyxy([yolo], width, height), width, height)[0], yolo, atol=TOL
    )


def test_empty_inputs() -> None:
    assert xyxy_to_yolo(np.zeros((0, 4)), 10, 10).shape == (0, 4)
    assert ls_result_to_yolo([], NAMES).shape == (0, 5)
    assert yolo_to_ls_result(np.zeros((0, 5)), NAMES, 10, 10) == []
    assert detections_to_ls_result(Detections.empty(3), NAMES, 10, 10) == []


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((2, 3)), r"must be \(N, 4\); got shape \(2, 3\)"),
        ([[np.nan, 0, 1, 1]], "finite"),
    ],
)
def test_shape_errors(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        xyxy_to_yolo(bad, 10, 10)


def test_bad_image_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        yolo_to_xyxy([[0.5, 0.5, 0.1, 0.1]], 0, 10)


# -- detections -> Label Studio ------------------------------------------------------------
def test_detections_to_ls_result() -> None:
    dets = _dets([[64, 48, 320, 240], [0, 0, 640, 480]], [0.25, 0.875], [2, 0])
    result = detections_to_ls_result(dets, NAMES, 640, 480)
    assert len(result) == 2
    first = result[0]
    assert first["type"] == "rectanglelabels"
    assert first["from_name"] == "label" and first["to_name"] == "image"
    assert first["value"]["rectanglelabels"] == ["bird"]
    assert first["value"]["rotation"] == 0
    assert first["score"] == pytest.approx(0.25)
    for key, expected in zip(("x", "y", "width", "height"), (10, 10, 40, 40), strict=True):
        assert first["value"][key] == pytest.approx(expected, abs=1e-4)
    assert result[1]["value"]["rectanglelabels"] == ["cat"]
    assert {r["id"] for r in result} == {"b0", "b1"}
    # Back to YOLO by name.
    back = ls_result_to_yolo(result, NAMES)
    np.testing.assert_allclose(back[:, 0], [2, 0])
    np.testing.assert_allclose(back[0, 1:], [0.3, 0.3, 0.4, 0.4], atol=1e-6)


def test_detections_are_clipped_to_the_image() -> None:
    dets = _dets([[-10, -5, 700, 100]], [0.5], [1])
    value = detections_to_ls_result(dets, NAMES, 640, 480)[0]["value"]
    assert value["x"] == 0 and value["y"] == 0
    assert value["width"] == pytest.approx(100.0)


def test_detections_class_without_name() -> None:
    dets = _dets([[0, 0, 1, 1]], [0.5], [2])
    with pytest.raises(ValueError, match=r"class_id 2 has no name; expected ids in \[0, 1\]"):
        detections_to_ls_result(dets, ["cat", "dog"], 10, 10)


def test_custom_tag_names() -> None:
    dets = _dets([[0, 0, 5, 5]], [0.5], [0])
    region = detections_to_ls_result(dets, NAMES, 10, 10, from_name="box", to_name="img")[0]
    assert (region["from_name"], region["to_name"]) == ("box", "img")
    assert ls_result_to_yolo([region], NAMES, from_name="label").shape == (0, 5)
    assert ls_result_to_yolo([region], NAMES, from_name="box").shape == (1, 5)


# -- Label Studio -> YOLO ------------------------------------------------------------------
def test_classes_map_by_name_not_position() -> None:
    # Label Studio's own export orders classes alphabetically; we must not.
    names = ["zebra", "apple"]
    result = [
        rectangle_region([10, 10, 20, 20], "apple", 100, 100, region_id="a"),
        rectangle_region([50, 50, 10, 10], "zebra", 100, 100, region_id="z"),
    ]
    rows = ls_result_to_yolo(result, names)
    np.testing.assert_array_equal(rows[:, 0], [1, 0])


def test_unknown_label_is_named() -> None:
    result = [rectangle_region([10, 10, 20, 20], "horse", 100, 100, region_id="h")]
    with pytest.raises(ValueError, match=r"unknown label 'horse'.*\['cat', 'dog', 'bird'\]"):
        ls_result_to_yolo(result, NAMES)


def test_non_rectangle_results_are_ignored() -> None:
    result = [
        {"type": "choices", "from_name": "quality", "to_name": "image",
         "value": {"choices": ["blurry"]}},
        {"type": "textarea", "value": {"text": ["note"]}},
        {"type": "relation", "from_id": "a", "to_id": "b"},
        rectangle_region([10, 10, 20, 20], "cat", 100, 100, region_id="c"),
    ]
    rows = ls_result_to_yolo(result, NAMES)
    assert rows.shape == (1, 5)
    np.testing.assert_allclose(rows[0], [0, 0.2, 0.2, 0.2, 0.2])


def test_multiple_labels_on_one_region_is_an_error() -> None:
    region = rectangle_region([10, 10, 20, 20], "cat", 100, 100, region_id="m")
    region["value"]["rectanglelabels"] = ["cat", "dog"]
    with pytest.raises(ValueError, match="exactly one label"):
        ls_result_to_yolo([region], NAMES)


def test_out_of_image_regions_are_clipped_and_empty_ones_dropped() -> None:
    result = [
        rectangle_region([-10, 90, 30, 20], "cat", 100, 100, region_id="edge"),
        rectangle_region([100, 10, 5, 5], "dog", 100, 100, region_id="outside"),
    ]
    rows = ls_result_to_yolo(result, NAMES)
    assert rows.shape == (1, 5)
    np.testing.assert_allclose(rows[0], [0, 0.1, 0.95, 0.2, 0.1])


def test_rotated_region_becomes_its_envelope() -> None:
    # A 20x10 px box at (40, 40) rotated 90 degrees clockwise around its top-left corner
    # covers x in [30, 40], y in [40, 60] on a 100x100 image.
    region = rectangle_region([40, 40, 20, 10], "cat", 100, 100, region_id="r")
    region["value"]["rotation"] = 90
    rows = ls_result_to_yolo([region], NAMES)
    np.testing.assert_allclose(rows[0], [0, 0.35, 0.5, 0.1, 0.2], atol=1e-9)
    del region["original_width"]
    with pytest.raises(ValueError, match="original_width"):
        ls_result_to_yolo([region], NAMES)


# -- label config --------------------------------------------------------------------------
def test_label_config_structure() -> None:
    root = ET.fromstring(build_label_config(NAMES))
    image = root.find("Image")
    assert image is not None and image.get("name") == "image" and image.get("value") == "$image"
    rect = root.find("RectangleLabels")
    assert rect is not None and rect.get("name") == "label" and rect.get("toName") == "image"
    assert [lab.get("value") for lab in rect.findall("Label")] == NAMES


@pytest.mark.parametrize(("names", "keys"), [
    ([str(i) for i in range(10)], [str(i) for i in range(10)]),  # class "0" is key 0, not key 1
    (["a", "B", "c"], ["a", "b", "c"]),
    (["cat", "dog"], [None, None]),
    (["0", "a"], [None, None]),  # mixed: Label Studio's own numbering
    (["a", "A"], [None, None]),  # the same key twice
])
def test_single_character_classes_get_their_own_hotkeys(names: list[str], keys: list) -> None:
    labels = ET.fromstring(build_label_config(names)).find("RectangleLabels").findall("Label")  # type: ignore[union-attr]
    assert [lab.get("hotkey") for lab in labels] == keys


def test_the_label_view_shows_why_the_image_was_picked() -> None:
    header = ET.fromstring(build_label_config(NAMES)).find("Header")
    assert header is not None and "$reason_text" in str(header.get("value"))
    assert ET.fromstring(build_label_config(NAMES, reason_field=None)).find("Header") is None


@pytest.mark.parametrize(
    "name", ['a "quoted" name', "it's", "R&D", "<script>", "tab\u00e9 \u732b", "x' onload='y"]
)
def test_label_config_escapes_names(name: str) -> None:
    xml = build_label_config(["plain", name])
    labels = ET.fromstring(xml).find("RectangleLabels").findall("Label")  # type: ignore[union-attr]
    assert [lab.get("value") for lab in labels] == ["plain", name]
    assert "<script>" not in xml


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ([], "at least one"),
        (["cat", ""], "non-blank"),
        (["cat", "cat"], "unique"),
        (["line\nbreak"], "control characters"),
    ],
)
def test_label_config_rejects_bad_names(names: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_label_config(names)


# -- local files ---------------------------------------------------------------------------
def test_local_files_url(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert local_files_url(root / "batch 1" / "img#1.png", root) == (
        "/data/local-files/?d=batch%201/img%231.png"
    )
    assert local_files_url(root / "a" / ".." / "b.png", root) == "/data/local-files/?d=b.png"


def test_local_files_url_refuses_outside_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="outside the Label Studio document root"):
        local_files_url(tmp_path / "elsewhere" / "x.png", root)
    with pytest.raises(ValueError, match="outside"):
        local_files_url(root / ".." / "x.png", root)
    with pytest.raises(ValueError, match="document root itself"):
        local_files_url(root, root)


def test_storage_path_must_be_a_subfolder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert check_storage_path(root / "images", root) == (root / "images").resolve()
    with pytest.raises(ValueError, match="SUBFOLDER"):
        check_storage_path(root, root)
    with pytest.raises(ValueError, match="outside"):
        check_storage_path(tmp_path, root)
