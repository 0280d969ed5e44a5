"""Reviewer-correction maths (hand-computed cases) and the simulated annotator's class noise."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.review.corrections import (
    ImageCorrections,
    compare_boxes,
    compare_yolo,
    greedy_match,
    iou_matrix,
    summarize,
)
from labelwise.review.simulate import default_truth_path, noisy_labels

SQUARE = [0.0, 0.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (SQUARE, SQUARE, 1.0),
        ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),  # inter 1, union 4 + 4 - 1
        (SQUARE, [2, 0, 12, 10], 80 / 120),
        (SQUARE, [5, 0, 15, 10], 50 / 150),
        (SQUARE, [0, 0, 10, 5], 0.5),  # contained half
        (SQUARE, [10, 0, 20, 10], 0.0),  # touching edges
        (SQUARE, [20, 20, 30, 30], 0.0),  # disjoint
        ([1, 1, 1, 1], [1, 1, 1, 1], 0.0),  # two points: no area, no overlap
    ],
)
def test_iou_pairs(a, b, expected):
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(expected)
    assert iou_matrix([b], [a])[0, 0] == pytest.approx(expected)  # symmetric


def test_iou_matrix_shapes():
    assert iou_matrix(np.zeros((0, 4)), [SQUARE]).shape == (0, 1)
    assert iou_matrix([SQUARE, [0, 0, 2, 2]], np.zeros((0, 4))).shape == (2, 0)
    got = iou_matrix([SQUARE, [0, 0, 2, 2]], [[1, 1, 3, 3], SQUARE, [0, 0, 10, 5]])
    np.testing.assert_allclose(got, [[4 / 100, 1.0, 0.5], [1 / 7, 4 / 100, 4 / 50]])


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([1, 2, 3], r"must be \(N, 4\)"),
        ([[0, 0, np.nan, 1]], "finite"),
        ([[5, 0, 1, 1]], "x2 >= x1"),
    ],
)
def test_bad_boxes(boxes, message):
    with pytest.raises(ValueError, match=message):
        iou_matrix(boxes, [SQUARE])


def test_greedy_takes_the_highest_iou_first():
    # f0 overlaps p0 at 0.95 and p1 at 90/95; greedy gives f0 to p0, p1 goes unmatched.
    pred = [SQUARE, [0, 0, 10, 9]]
    final = [[0, 0, 10, 9.5]]
    assert [(i, j) for i, j, _ in greedy_match(pred, final)] == [(0, 0)]
    # One prediction, two finals: the better final (100/120) wins over 80/100.
    pairs = greedy_match([SQUARE], [[0, 0, 10, 8], [0, 0, 10, 12]])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    # Ties: lower predicted index, then lower final index.
    pairs = greedy_match([SQUARE, SQUARE], [SQUARE, SQUARE])
    assert [(i, j) for i, j, _ in pairs] == [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match=r"iou_threshold must lie in \(0, 1\]"):
        greedy_match([SQUARE], [SQUARE], 0.0)


FAR = [50, 50, 60, 60]


@pytest.mark.parametrize(
    ("pred", "pred_cls", "final", "final_cls", "expected", "mean_iou"),
    [
        # (predicted, final, kept, added, removed, relabelled)
        ([SQUARE, FAR], [0, 1], [SQUARE, FAR], [0, 1], (2, 2, 2, 0, 0, 0), 1.0),
        ([SQUARE, FAR], [0, 1], [SQUARE, FAR], [0, 2], (2, 2, 2, 0, 0, 1), 1.0),
        ([SQUARE], [0], [[2, 0, 12, 10]], [0], (1, 1, 1, 0, 0, 0), 2 / 3),
        ([SQUARE], [0], [[5, 0, 15, 10]], [0], (1, 1, 0, 1, 1, 0), None),  # IoU 1/3: moved far
        ([SQUARE], [3], [[0, 0, 10, 5]], [3], (1, 1, 1, 0, 0, 0), 0.5),  # exactly at 0.5
        (np.zeros((0, 4)), [], [SQUARE, FAR], [0, 0], (0, 2, 0, 2, 0, 0), None),
        ([SQUARE, FAR], [0, 0], np.zeros((0, 4)), [], (2, 0, 0, 0, 2, 0), None),
        (np.zeros((0, 4)), [], np.zeros((0, 4)), [], (0, 0, 0, 0, 0, 0), None),
        # kept 1 (relabelled), removed FAR, added a new box.
        ([SQUARE, FAR], [0, 1], [[0, 0, 10, 8], [30, 30, 40, 40]], [2, 1], (2, 2, 1, 1, 1, 1), 0.8),
    ],
)
def test_compare_boxes(pred, pred_cls, final, final_cls, expected, mean_iou):
    got = compare_boxes(pred, pred_cls, final, final_cls)
    assert (got.boxes_predicted, got.boxes_final, got.kept, got.added, got.removed,
            got.relabelled) == expected
    assert got.boxes_predicted == got.kept + got.removed
    assert got.boxes_final == got.kept + got.added
    if mean_iou is None:
        assert got.mean_iou_kept is None and got.as_dict()["mean_iou_kept"] is None
    else:
        assert got.mean_iou_kept == pytest.approx(mean_iou)


def test_compare_boxes_checks_classes():
    with pytest.raises(ValueError, match=r"predicted_cls must be \(2,\)"):
        compare_boxes([SQUARE, FAR], [0], [SQUARE], [0])


def test_compare_yolo_matches_pixel_corners():
    # Normalised YOLO rows of a 200 x 100 image; IoU ignores the per-axis scale.
    pred = np.array([[1, 0.5, 0.5, 0.2, 0.4]])
    final = np.array([[2, 0.51, 0.5, 0.2, 0.4]])
    got = compare_yolo(pred, final)
    px = compare_boxes([[80, 30, 120, 70]], [1], [[82, 30, 122, 70]], [2])
    assert got.kept == px.kept == 1 and got.relabelled == px.relabelled == 1
    assert got.mean_iou_kept == pytest.approx(px.mean_iou_kept)
    assert px.mean_iou_kept == pytest.approx(38 / 42)


def test_summarize_totals_means_and_per_image():
    a = ImageCorrections(2, 3, 2, 1, 0, 1, iou_sum_kept=1.8)
    b = ImageCorrections(1, 0, 0, 0, 1, 0, iou_sum_kept=0.0)
    got = summarize([a, b])
    assert got["corrections/images"] == 2
    assert got["corrections/boxes_predicted"] == 3
    assert got["corrections/boxes_final"] == 3
    assert got["corrections/kept"] == 2
    assert got["corrections/added"] == 1
    assert got["corrections/removed"] == 1
    assert got["corrections/relabelled"] == 1
    assert got["corrections/mean_iou_kept"] == pytest.approx(0.9)  # pooled over kept pairs
    assert got["corrections/added_per_image"] == pytest.approx(0.5)
    assert got["corrections/boxes_predicted_per_image"] == pytest.approx(1.5)
    empty = summarize([])
    assert empty["corrections/images"] == 0 and empty["corrections/kept"] == 0
    assert empty["corrections/mean_iou_kept"] is None
    assert empty["corrections/added_per_image"] is None


# -- simulated annotator noise ------------------------------------------------------------
LABELS = np.array([[c % 4, 0.5, 0.5, 0.1, 0.1] for c in range(200)], dtype=np.float64)


def test_noise_zero_keeps_everything():
    got = noisy_labels(LABELS, 4, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(got, LABELS)
    assert got is not LABELS


def test_noise_one_changes_every_class_to_another_valid_one():
    got = noisy_labels(LABELS, 4, 1.0, np.random.default_rng(0))
    assert (got[:, 0] != LABELS[:, 0]).all()
    assert set(got[:, 0].astype(int)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(got[:, 1:], LABELS[:, 1:])


def test_noise_rate_and_determinism():
    a = noisy_labels(LABELS, 4, 0.3, np.random.default_rng(7))
    b = noisy_labels(LABELS, 4, 0.3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    changed = (a[:, 0] != LABELS[:, 0]).mean()
    assert 0.15 < changed < 0.45


@pytest.mark.parametrize("noise", [-0.1, 1.5])
def test_noise_must_be_a_probability(noise):
    with pytest.raises(ValueError, match=r"noise must be a probability in \[0, 1\]"):
        noisy_labels(LABELS, 4, noise, np.random.default_rng(0))


def test_single_class_cannot_be_relabelled():
    one = np.array([[0, 0.5, 0.5, 0.1, 0.1]])
    np.testing.assert_array_equal(noisy_labels(one, 1, 1.0, np.random.default_rng(0)), one)


def test_default_truth_path_follows_the_digits_layout(tmp_path):
    image = tmp_path / "root" / "pool" / "images" / "pool_000003.png"
    expected = tmp_path / "root" / "pool_truth" / "labels" / "pool_000003.txt"
    assert default_truth_path(image) == expected
