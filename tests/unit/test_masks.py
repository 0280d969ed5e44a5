"""Mask geometry (labelwise.masks): mask <-> polygon, label lines, hostile input."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.masks import (
    ImageSegments,
    Polygon,
    SegmentInstance,
    format_segment_labels,
    label_line_to_polygon,
    mask_iou,
    mask_to_polygons,
    parse_segment_labels,
    polygon_area,
    polygon_to_label_line,
    polygon_to_mask,
    read_segment_labels,
    segments_from_masks,
    write_segment_labels,
)


def blob_mask(rng: np.random.Generator, height: int, width: int, shapes: int) -> np.ndarray:
    """(H, W) bool union of ellipses and rotated rectangles that all contain one centre point.

    Each shape is convex and contains the centre, so the union is star-shaped around it: one
    region without holes (what an outer contour can describe exactly).
    """
    m = np.zeros((height, width), dtype=np.uint8)
    cx = rng.uniform(0.35, 0.65) * width
    cy = rng.uniform(0.35, 0.65) * height
    reach = 0.3 * min(width, height)
    for _ in range(shapes):
        ax, ay = rng.uniform(0.25, 1.0, 2) * reach
        angle = float(rng.uniform(0, 180))
        if rng.random() < 0.5:
            cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(ax)), max(1, round(ay))), angle, 0, 360, 1, -1)
        else:
            box = cv2.boxPoints(((cx, cy), (2 * ax, 2 * ay), angle))
            cv2.fillPoly(m, [np.rint(box).astype(np.int32)], 1)
    return m.astype(bool)


# ------------------------------------------------------------------------------- properties
MIN_BLOB_AREA = {0.5: 150, 1.0: 400, 1.5: 600}
"""Smallest blob (pixels) for which a tolerance keeps IoU >= 0.9: the band the simplification may
shift grows with the perimeter times the tolerance."""


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(24, 120), width=st.integers(24, 120),
       shapes=st.integers(1, 4))
def test_exact_contour_gives_the_mask_back(seed: int, height: int, width: int, shapes: int) -> None:
    mask = blob_mask(np.random.default_rng(seed), height, width, shapes)
    polygons = mask_to_polygons(mask, simplify_tolerance_px=0.0, min_area_px=0.0)
    assert len(polygons) == 1
    assert np.array_equal(polygon_to_mask(polygons[0], height, width), mask)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(40, 160), width=st.integers(40, 160),
       shapes=st.integers(1, 4), tolerance=st.sampled_from([0.5, 1.0, 1.5]))
def test_simplified_polygon_keeps_area_and_iou(seed: int, height: int, width: int, shapes: int,
                                               tolerance: float) -> None:
    mask = blob_mask(np.random.default_rng(seed), height, width, shapes)
    area = int(mask.sum())
    if area < MIN_BLOB_AREA[tolerance]:  # the promise holds for blobs above a minimum size
        return
    polygons = mask_to_polygons(mask, simplify_tolerance_px=tolerance, min_area_px=20.0)
    assert len(polygons) == 1
    back = polygon_to_mask(polygons[0], height, width)
    assert mask_iou(back, mask) >= 0.9
    assert abs(int(back.sum()) - area) <= 0.1 * area
    assert len(polygons[0]) <= len(mask_to_polygons(mask, simplify_tolerance_px=0.0, min_area_px=0.0)[0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), width=st.integers(1, 4000), height=st.integers(1, 4000),
       k=st.integers(3, 40), cls=st.integers(0, 999))
def test_label_line_round_trip(seed: int, width: int, height: int, k: int, cls: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (k, 2)) * np.array([width, height])
    polygon = Polygon(pts)
    exact = label_line_to_polygon(polygon_to_label_line(cls, polygon, width, height, decimals=None), width, height)
    assert exact.class_id == cls
    np.testing.assert_allclose(exact.polygon.points, polygon.points, rtol=1e-6, atol=1e-6 * max(width, height))
    rounded = label_line_to_polygon(polygon_to_label_line(cls, polygon, width, height), width, height)
    step = 0.5e-6 * np.array([width, height]) + 1e-6 * np.abs(polygon.points)
    assert (np.abs(rounded.polygon.points - polygon.points) <= step + 1e-4).all()


# ------------------------------------------------------------------------------- examples
def test_two_blobs_come_largest_first_and_small_ones_are_dropped() -> None:
    mask = np.zeros((50, 80), dtype=bool)
    mask[5:15, 5:15] = True  # 100 px
    mask[20:45, 40:75] = True  # 875 px
    mask[2:4, 60:62] = True  # 4 px, shoelace area 1
    polygons = mask_to_polygons(mask, simplify_tolerance_px=0.5, min_area_px=10.0)
    assert [round(p.area) for p in polygons] == [816, 81]  # centres of the boundary pixels
    assert polygons[0].bounds() == (40.0, 20.0, 74.0, 44.0)
    assert len(polygons[0]) == 4  # a rectangle simplifies to its corners
    assert len(mask_to_polygons(mask, simplify_tolerance_px=0.5, min_area_px=0.0)) == 3


def test_holes_are_filled() -> None:
    ring = np.zeros((40, 40), dtype=bool)
    cv2.circle(ring.view(np.uint8), (20, 20), 15, 1, thickness=4)
    (polygon,) = mask_to_polygons(ring, simplify_tolerance_px=0.0, min_area_px=0.0)
    filled = polygon_to_mask(polygon, 40, 40)
    assert (filled >= ring).all() and filled.sum() > ring.sum() + 400


@pytest.mark.parametrize(
    "points, area",
    [
        ([[0, 0], [4, 0], [4, 3]], 6.0),
        ([[0, 0], [4, 0], [4, 3], [0, 3]], 12.0),
        ([[0, 0], [0, 3], [4, 3], [4, 0]], 12.0),  # clockwise: same area
        ([[0, 0], [1, 1], [2, 2]], 0.0),  # collinear
    ],
)
def test_polygon_area(points: list[list[float]], area: float) -> None:
    assert polygon_area(Polygon(points)) == pytest.approx(area)


def test_mask_iou() -> None:
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    assert mask_iou(a, b) == 1.0
    a[:5] = True
    assert mask_iou(a, b) == 0.0
    b[:, :5] = True
    assert mask_iou(a, b) == pytest.approx(25 / 75)
    with pytest.raises(ValueError, match=r"same shape; got \(10, 10\) and \(10, 9\)"):
        mask_iou(a, b[:, :9])


def test_polygon_outside_the_image_is_clipped() -> None:
    mask = polygon_to_mask(Polygon([[-5, -5], [5, -5], [5, 5], [-5, 5]]), 20, 20)
    assert mask.sum() == 36 and mask[:6, :6].all()
    assert not polygon_to_mask(Polygon([[100, 100], [120, 100], [120, 120]]), 20, 20).any()


def test_polygon_points_are_a_read_only_float32_copy() -> None:
    source = np.array([[0, 0], [3, 0], [0, 3]], dtype=np.float64)
    polygon = Polygon(source)
    source[0, 0] = 99
    assert polygon.points.dtype == np.float32 and polygon.points[0, 0] == 0
    with pytest.raises(ValueError):
        polygon.points[0, 0] = 1


# ------------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize(
    "points, message",
    [
        ([[0, 0], [1, 1]], r"at least 3 vertices; got 2"),
        ([], r"shaped \(K, 2\)"),
        ([[0, 0, 0], [1, 1, 1], [2, 2, 2]], r"shaped \(K, 2\) with K >= 3; got shape \(3, 3\)"),
        ([[0, 0], [1, math.nan], [2, 0]], r"finite; got 1 of 3 with NaN/inf"),
        ([[0, 0], [1, math.inf], [2, 0]], r"finite"),
        ([["a", 0], [1, 1], [2, 0]], r"numbers"),
    ],
)
def test_bad_polygons_are_refused(points: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Polygon(points)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mask, expected",
    [
        (np.zeros((10, 10), dtype=bool), 0),  # empty
        (np.pad(np.ones((1, 1), dtype=bool), 4), 0),  # one pixel: no area
        (np.pad(np.ones((1, 6), dtype=bool), 4), 0),  # one pixel thin: 2-vertex contour
        (np.pad(np.ones((2, 2), dtype=bool), 4), 0),  # simplifies to a 2-vertex diagonal
        (np.pad(np.ones((3, 3), dtype=bool), 4), 1),
        (np.ones((5, 5), dtype=bool), 1),  # touches every border
    ],
)
def test_degenerate_masks(mask: np.ndarray, expected: int) -> None:
    assert len(mask_to_polygons(mask, simplify_tolerance_px=1.0, min_area_px=0.0)) == expected


@pytest.mark.parametrize(
    "mask, kwargs, message",
    [
        (np.zeros((4, 4), dtype=np.uint8), {}, r"bool array \(H, W\); got dtype uint8"),
        (np.zeros((4, 4, 1), dtype=bool), {}, r"2-D \(H, W\) array; got shape \(4, 4, 1\)"),
        (np.zeros((4, 4), dtype=bool), {"simplify_tolerance_px": -1.0}, r"simplify_tolerance_px must be"),
        (np.zeros((4, 4), dtype=bool), {"min_area_px": math.nan}, r"min_area_px must be a finite number"),
    ],
)
def test_bad_masks_are_refused(mask: np.ndarray, kwargs: dict[str, float], message: str) -> None:
    args = {"simplify_tolerance_px": 0.0, "min_area_px": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        mask_to_polygons(mask, **args)


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.1 0.1 0.2 0.2", r"at least 3 vertices\); got 5 fields"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", r"even number of coordinates after the class id; got 7"),
        ("0 0.1 0.1 0.2 nan 0.3 0.3", r"finite coordinates"),
        ("0 0.1 0.1 0.2 1.5 0.3 0.3", r"normalised to \[0, 1\]; got values in \[0.1, 1.5\]"),
        ("0 0.1 -0.1 0.2 0.5 0.3 0.3", r"normalised to \[0, 1\]"),
        ("-1 0.1 0.1 0.2 0.2 0.3 0.3", r"non-negative integer class id; got '-1'"),
        ("1.5 0.1 0.1 0.2 0.2 0.3 0.3", r"non-negative integer class id; got '1.5'"),
        ("a 0.1 0.1 0.2 0.2 0.3 0.3", r"expected numbers"),
    ],
)
def test_bad_label_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        label_line_to_polygon(line, 100, 50)


def test_bad_line_in_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0 0.1 0.1 0.2 0.2 0.3 0.3\n\n1 0.1 0.1\n")
    with pytest.raises(ValueError, match=rf"{path}:3: expected"):
        read_segment_labels(path, 10, 10)
    with pytest.raises(FileNotFoundError):
        read_segment_labels(tmp_path / "missing.txt", 10, 10)


@pytest.mark.parametrize("width, height", [(0, 10), (10, -1), (10.5, 10), (True, 10)])
def test_bad_image_sizes_are_refused(width: object, height: object) -> None:
    with pytest.raises(ValueError, match=r"integer >= 1 pixel"):
        ImageSegments(width, height)  # type: ignore[arg-type]


def test_bad_class_id_is_refused() -> None:
    triangle = Polygon([[0, 0], [3, 0], [0, 3]])
    with pytest.raises(ValueError, match=r"class_id must be an integer >= 0; got -1"):
        SegmentInstance(-1, triangle)
    with pytest.raises(TypeError, match=r"must be a Polygon"):
        SegmentInstance(0, [[0, 0], [3, 0], [0, 3]])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- files
def test_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    masks = np.stack([blob_mask(rng, 60, 90, 3) for _ in range(3)] + [np.zeros((60, 90), dtype=bool)])
    segments, kept = segments_from_masks(masks, [4, 0, 7, 1], simplify_tolerance_px=0.7, min_area_px=10.0)
    assert kept.tolist() == [0, 1, 2] and segments.class_ids.tolist() == [4, 0, 7]
    path = write_segment_labels(tmp_path / "img.txt", segments)
    text = path.read_text()
    assert text.count("\n") == 3 and text.startswith("4 ")
    back = read_segment_labels(path, 90, 60)
    assert back.class_ids.tolist() == [4, 0, 7]
    for a, b in zip(back.instances, segments.instances):
        assert a.polygon.allclose(b.polygon, atol=1e-4)
    for original, again in zip(masks[:3], back.masks()):
        assert mask_iou(original, again) >= 0.9
    assert parse_segment_labels(format_segment_labels(ImageSegments(5, 5)), 5, 5).instances == ()
    assert not list(tmp_path.glob("*.tmp"))


def test_segments_from_masks_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match=r"one class id per mask \(2\); got 1"):
        segments_from_masks(np.zeros((2, 4, 4), dtype=bool), [0], simplify_tolerance_px=0.0, min_area_px=0.0)
    with pytest.raises(ValueError, match=r"\(N, H, W\) bool; got shape \(4, 4\)"):
        segments_from_masks(np.zeros((4, 4), dtype=bool), [0], simplify_tolerance_px=0.0, min_area_px=0.0)
