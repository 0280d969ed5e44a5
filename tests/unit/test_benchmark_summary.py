"""Summary maths: labels needed to reach a target (interpolated), speed-up, normalised AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.benchmark.summary import labels_to_reach, markdown_table, mean_curves, normalised_auc, summarise


@pytest.mark.parametrize(
    ("xs", "ys", "target", "expected"),
    [
        ([10, 20, 30], [0.1, 0.3, 0.5], 0.5, 30.0),  # reached exactly at the end
        ([10, 20, 30], [0.1, 0.3, 0.5], 0.2, 15.0),  # halfway between two rounds
        ([10, 20, 30], [0.1, 0.3, 0.5], 0.05, 10.0),  # already at round 0
        ([10, 20, 30], [0.1, 0.3, 0.5], 0.6, None),  # not reached
        ([10, 20, 30, 40], [0.1, 0.6, 0.4, 0.5], 0.5, 18.0),  # first crossing counts
        ([16], [0.2], 0.2, 16.0),  # a single round
    ],
)
def test_labels_to_reach(xs, ys, target, expected):
    got = labels_to_reach(xs, ys, target)
    assert (got is None and expected is None) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        ([0, 10], [0.0, 1.0], 0.5),
        ([10, 20, 30], [0.4, 0.4, 0.4], 0.4),
        ([10, 20, 40], [0.0, 0.2, 0.2], (0.1 * 10 + 0.2 * 20) / 30),
        ([5], [0.3], 0.3),
    ],
)
def test_normalised_auc(xs, ys, expected):
    assert normalised_auc(xs, ys) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("fn", "args"),
    [(labels_to_reach, ([10, 10], [0.1, 0.2], 0.1)), (labels_to_reach, ([], [], 0.1)),
     (normalised_auc, ([1, 2], [0.1])), (labels_to_reach, ([30, 20], [0.1, 0.2], 0.1))],
)
def test_bad_curves_are_refused(fn, args):
    with pytest.raises(ValueError, match="xs"):
        fn(*args)


def _rows(strategy: str, maps: list[list[float]], boxes_per_image: float = 3.0) -> list[dict]:
    rows = []
    for seed, series in enumerate(maps):
        for r, m in enumerate(series):
            images = 10 * (r + 1)
            rows.append({"protocol": "warm", "strategy": strategy, "seed": seed, "round": r,
                         "labelled_images": images, "labelled_boxes": images * boxes_per_image,
                         "map50": m, "map50_95": m / 2, "rare_boxes": r, "near_duplicates_total": 0})
    return rows


def test_speedup_against_random_in_images_and_boxes():
    rows = _rows("random", [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    rows += _rows("fast", [[0.1, 0.4, 0.5, 0.6], [0.1, 0.4, 0.5, 0.6]], boxes_per_image=6.0)
    rows += _rows("slow", [[0.0, 0.1, 0.1, 0.2], [0.0, 0.1, 0.1, 0.2]])
    by = {r.strategy: r for r in summarise(rows)}
    assert by["random"].target_map50 == pytest.approx(0.4)
    assert by["random"].images_to_target == pytest.approx(40) and by["random"].image_speedup == pytest.approx(1)
    assert by["fast"].images_to_target == pytest.approx(20)
    assert by["fast"].image_ratio == pytest.approx(0.5) and by["fast"].image_speedup == pytest.approx(2)
    # same images, twice the boxes each: boxes needed 120 vs random's 120 -> ratio 1
    assert by["fast"].boxes_to_target == pytest.approx(120) and by["fast"].box_ratio == pytest.approx(1)
    assert by["slow"].images_to_target is None and by["slow"].image_speedup is None
    assert "not reached" in markdown_table(list(by.values()))
    assert by["fast"].nauc_images > by["random"].nauc_images > by["slow"].nauc_images


def test_mean_curve_uses_rounds_every_seed_finished():
    rows = _rows("random", [[0.1, 0.3, 0.5], [0.3, 0.5]])
    curve = mean_curves(rows)[("warm", "random")]
    np.testing.assert_allclose(curve.map50, [0.2, 0.4])
    np.testing.assert_allclose(curve.map50_std, [0.1, 0.1])
    assert curve.seeds == 2


def test_protocol_without_random_has_no_ratios():
    row = summarise(_rows("entropy", [[0.1, 0.2]]))[0]
    assert math.isnan(row.target_map50) and row.image_ratio is None and row.box_speedup is None


def test_random_stuck_at_zero_gives_na_not_a_fake_speedup():
    rows = _rows("random", [[0.0, 0.0, 0.0]]) + _rows("entropy", [[0.0, 0.0, 0.0]])
    by = {r.strategy: r for r in summarise(rows)}
    assert not by["entropy"].comparable and by["entropy"].image_speedup is None
    assert "| n/a |" in markdown_table(list(by.values()))


def test_boxes_per_pick_ignores_the_shared_round_zero():
    from labelwise.benchmark.summary import boxes_per_pick

    rows = [{"protocol": "warm", "strategy": "s", "round": r, "new_boxes": b, "new_images": 10}
            for r, b in ((0, 100), (1, 20), (2, 40))]
    assert boxes_per_pick(rows, "warm", "s") == pytest.approx(3.0)
    assert math.isnan(boxes_per_pick(rows, "warm", "other"))
