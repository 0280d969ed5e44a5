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
        ([10, 10, 20], [0.1, 0.3, 0.5], 0.2, 10.0),  # a round that cost no edits repeats its x
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
    [(labels_to_reach, ([10, 9], [0.1, 0.2], 0.1)), (labels_to_reach, ([], [], 0.1)),
     (normalised_auc, ([1, 2], [0.1])), (labels_to_reach, ([30, 20], [0.1, 0.2], 0.1))],
)
def test_bad_curves_are_refused(fn, args):
    with pytest.raises(ValueError, match="xs"):
        fn(*args)


def _rows(strategy: str, maps: list[list[float]], boxes_per_image: float = 3.0,
          edits_per_image: float | None = None, protocol: str = "warm") -> list[dict]:
    rows = []
    for seed, series in enumerate(maps):
        for r, m in enumerate(series):
            images = 10 * (r + 1)
            edits = images * (boxes_per_image if edits_per_image is None else edits_per_image)
            rows.append({"protocol": protocol, "strategy": strategy, "seed": seed, "round": r,
                         "labelled_images": images, "labelled_boxes": images * boxes_per_image,
                         "edits": edits, "new_images": 10, "new_boxes": 10 * boxes_per_image,
                         "new_edits": edits / images * 10,
                         "map50": m, "map50_95": m / 2, "rare_boxes": r, "near_duplicates_total": 0})
    return rows


def test_speedup_against_random_in_images_boxes_and_edits():
    rows = _rows("random", [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]], edits_per_image=1.5)
    rows += _rows("random_sprint", [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])  # edits = boxes
    rows += _rows("fast", [[0.1, 0.4, 0.5, 0.6], [0.1, 0.4, 0.5, 0.6]], boxes_per_image=6.0, edits_per_image=1.0)
    rows += _rows("slow", [[0.0, 0.1, 0.1, 0.2], [0.0, 0.1, 0.1, 0.2]])
    by = {r.strategy: r for r in summarise(rows)}
    images, boxes, edits = ({k: v.unit(unit) for k, v in by.items()} for unit in ("images", "boxes", "edits"))
    assert by["random"].target == pytest.approx(0.4)
    assert images["random"].to_random_final == pytest.approx(40) and images["random"].speedup == pytest.approx(1)
    assert images["fast"].to_random_final == pytest.approx(20)
    assert images["fast"].ratio == pytest.approx(0.5) and images["fast"].speedup == pytest.approx(2)
    # same images, twice the boxes each: boxes needed 120 vs random's 120 -> ratio 1
    assert boxes["fast"].to_random_final == pytest.approx(120) and boxes["fast"].ratio == pytest.approx(1)
    # edits: fast needs 20 images x 1 edit = 20; random 40 x 1.5 = 60; random_sprint 40 x 3 = 120
    assert edits["fast"].to_random_final == pytest.approx(20)
    assert edits["fast"].ratio == pytest.approx(20 / 60) and edits["fast"].sprint_ratio == pytest.approx(20 / 120)
    assert edits["random"].sprint_ratio == pytest.approx(0.5)
    assert images["slow"].to_random_final is None and images["slow"].speedup is None
    assert by["fast"].edits_per_pick == pytest.approx(1.0) and by["random_sprint"].edits_per_pick == pytest.approx(3.0)
    table = markdown_table(list(by.values()))
    assert "not reached" in table and "Cost in edits" in table and "ratio vs random_sprint" in table
    assert images["fast"].nauc > images["random"].nauc > images["slow"].nauc
    assert by["fast"].ceiling is None and "n/a" in table  # no ceiling measured


def test_ceiling_gives_gap_closed_and_labels_to_ninety_percent():
    rows = _rows("random", [[0.2, 0.3, 0.4, 0.5]]) + _rows("fast", [[0.2, 0.5, 0.6, 0.7]])
    by = {r.strategy: r for r in summarise(rows, ceilings={"warm": 0.8})}
    assert by["random"].ceiling == pytest.approx(0.8)
    assert by["random"].gap_closed == pytest.approx(0.5) and by["fast"].gap_closed == pytest.approx(5 / 6)
    # 90% of the ceiling = 0.72: random never gets there; fast neither (0.7) -> not reached
    assert by["fast"].unit("images").to_ceiling is None
    by = {r.strategy: r for r in summarise(rows, ceilings={"warm": 0.6})}  # 0.54
    assert by["fast"].unit("images").to_ceiling == pytest.approx(20 + 10 * 0.4)
    assert by["random"].unit("images").to_ceiling is None and by["fast"].unit("images").ceiling_ratio is None


def test_near_duplicates_are_na_when_clusters_are_unknown():
    rows = _rows("random", [[0.2, 0.3]])
    assert summarise(rows)[0].near_duplicates == 0.0
    row = summarise(rows, clusters_known=False)[0]
    assert row.near_duplicates is None and "n/a" in markdown_table([row])


def test_mean_curve_uses_rounds_every_seed_finished():
    rows = _rows("random", [[0.1, 0.3, 0.5], [0.3, 0.5]])
    curve = mean_curves(rows)[("warm", "random")]
    np.testing.assert_allclose(curve.y, [0.2, 0.4])
    np.testing.assert_allclose(curve.y_std, [0.1, 0.1])
    assert curve.seeds == 2


def test_protocol_without_random_has_no_ratios():
    row = summarise(_rows("entropy", [[0.1, 0.2]]))[0]
    assert math.isnan(row.target) and row.unit("images").ratio is None and row.unit("boxes").speedup is None


def test_random_stuck_at_zero_gives_na_not_a_fake_speedup():
    rows = _rows("random", [[0.0, 0.0, 0.0]]) + _rows("entropy", [[0.0, 0.0, 0.0]])
    by = {r.strategy: r for r in summarise(rows)}
    assert not by["entropy"].comparable and by["entropy"].unit("images").speedup is None
    assert "| n/a |" in markdown_table(list(by.values()))


def test_rows_without_edits_leave_the_edits_unit_empty():
    rows = [{k: v for k, v in r.items() if k not in ("edits", "new_edits")} for r in _rows("random", [[0.1, 0.2]])]
    row = summarise(rows)[0]
    assert row.unit("images").to_random_final == pytest.approx(20) and row.unit("edits").to_random_final is None


def test_boxes_per_pick_ignores_the_shared_round_zero():
    from labelwise.benchmark.summary import boxes_per_pick

    rows = [{"protocol": "warm", "strategy": "s", "round": r, "new_boxes": b, "new_images": 10}
            for r, b in ((0, 100), (1, 20), (2, 40))]
    assert boxes_per_pick(rows, "warm", "s") == pytest.approx(3.0)
    assert math.isnan(boxes_per_pick(rows, "warm", "other"))
