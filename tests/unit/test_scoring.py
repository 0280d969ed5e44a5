"""Scoring maths against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.domain import Detections
from labelwise.scoring import (
    ScoringRule,
    aggregate,
    combine,
    entropy,
    lowest_confidence,
    margin,
    normalise_weights,
    score_image,
)

LN3 = math.log(3)


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([[1.0, 0.0, 0.0]], [1.0]),
        ([[0.5, 0.3, 0.2]], [0.5]),
        ([[1 / 3, 1 / 3, 1 / 3]], [1 / 3]),
        ([[0.1, 0.9], [0.6, 0.4]], [0.9, 0.6]),
    ],
)
def test_lowest_confidence(probs, expected):
    np.testing.assert_allclose(lowest_confidence(np.array(probs)), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([[1.0, 0.0, 0.0]], [1.0]),
        ([[0.5, 0.3, 0.2]], [0.2]),
        ([[0.2, 0.5, 0.3]], [0.2]),
        ([[1 / 3, 1 / 3, 1 / 3]], [0.0]),
        ([[0.45, 0.45, 0.1]], [0.0]),
        ([[1.0]], [1.0]),
    ],
)
def test_margin(probs, expected):
    np.testing.assert_allclose(margin(np.array(probs)), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([[1.0, 0.0, 0.0]], [1.0]),  # 0 * ln 0 = 0
        ([[1 / 3, 1 / 3, 1 / 3]], [0.0]),
        ([[0.5, 0.5, 0.0]], [1 - math.log(2) / LN3]),
        ([[0.5, 0.3, 0.2]], [1 - (-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))) / LN3]),
        ([[0.5, 0.5]], [0.0]),
        ([[1.0]], [1.0]),
    ],
)
def test_entropy(probs, expected):
    np.testing.assert_allclose(entropy(np.array(probs)), expected, atol=1e-12)


@pytest.mark.parametrize("fn", [lowest_confidence, margin, entropy])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([0.5, 0.5]), r"probs must be \(N, C\) with rows summing to 1; got shape \(2,\)"),
        (np.array([[0.5, 0.4]]), r"rows must sum to 1 .* row 0 sums to 0.9"),
        (np.array([[np.nan, 1.0]]), r"must be finite"),
        (np.array([[1.5, -0.5]]), r"entries must lie in \[0, 1\]"),
        (np.zeros((2, 0)), r"at least one class column"),
    ],
)
def test_bad_probs_raise_with_expected_vs_actual(fn, bad, message):
    with pytest.raises(ValueError, match=message):
        fn(bad)


@pytest.mark.parametrize("fn", [lowest_confidence, margin, entropy])
def test_scores_lie_on_unit_interval(fn):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10) * 0.3, size=500)
    s = fn(p)
    assert s.shape == (500,)
    assert (s >= 0).all() and (s <= 1).all()


def test_empty_box_set_gives_empty_scores():
    for fn in (lowest_confidence, margin, entropy):
        assert fn(np.zeros((0, 4))).shape == (0,)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("min", 0.2),
        ("mean", (0.2 + 0.5 + 0.9 + 0.8) / 4),
        ("topk_mean", (0.2 + 0.5) / 2),
        ("sum", 1 / (1 + (0.8 + 0.5 + 0.1 + 0.2))),
    ],
)
def test_aggregate(how, expected):
    assert aggregate(np.array([0.5, 0.2, 0.9, 0.8]), how, top_k=2) == pytest.approx(expected)


def test_aggregate_rejects_unknown_rule_and_empty_input():
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate(np.array([0.5]), "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got shape \(0,\)"):
        aggregate(np.zeros(0))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (None, (0.9 + 0.3 + 0.6) / 3),
        ({"lowest_confidence": 1, "margin_sampling": 0, "entropy": 0}, 0.9),
        ({"lowest_confidence": 1, "margin_sampling": 3}, (0.9 + 3 * 0.3) / 4),
    ],
)
def test_combine(weights, expected):
    scores = {"lowest_confidence": 0.9, "margin_sampling": 0.3, "entropy": 0.6}
    assert combine(scores, weights) == pytest.approx(expected)


@pytest.mark.parametrize(
    "weights", [{"lowest_confidence": -1.0}, {"bogus": 1.0}, {"entropy": 0.0}, {"entropy": float("nan")}]
)
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError, match="weight"):
        normalise_weights(weights)


def _dets(conf, probs):
    probs = np.asarray(probs, dtype=np.float32)
    n = len(conf)
    return Detections(
        xyxy=np.tile([0, 0, 10, 10], (n, 1)),
        confidence=np.asarray(conf),
        class_id=probs.argmax(1),
        probs=probs,
    )


def test_score_image_uses_only_boxes_above_the_floor():
    dets = _dets([0.9, 0.05], [[0.9, 0.1], [0.5, 0.5]])
    s = score_image("img", dets, ScoringRule(confidence_floor=0.25))
    assert s.boxes_considered == 1
    assert s.scores["lowest_confidence"] == pytest.approx(0.9)
    assert s.scores["margin_sampling"] == pytest.approx(0.8)
    # Without the floor the background candidate (a 50/50 split) decides the min.
    s_all = score_image("img", dets, ScoringRule(confidence_floor=0.0))
    assert s_all.scores["margin_sampling"] == pytest.approx(0.0)


@pytest.mark.parametrize("no_box_score", [0.0, 1.0, 0.4])
def test_no_box_rule(no_box_score):
    dets = _dets([0.1], [[0.6, 0.4]])
    s = score_image("img", dets, ScoringRule(confidence_floor=0.5, no_box_score=no_box_score))
    assert s.boxes_considered == 0
    assert s.predicted_class == -1
    assert s.uncertainty_score == no_box_score
    assert set(s.scores.values()) == {no_box_score}


def test_predicted_class_is_the_least_certain_box():
    dets = _dets([0.9, 0.8], [[0.95, 0.05], [0.45, 0.55]])
    s = score_image("img", dets, ScoringRule())
    assert s.predicted_class == 1
    assert 0 <= s.uncertainty_score <= 1


def test_rule_validates():
    with pytest.raises(ValueError, match="confidence_floor must lie in"):
        ScoringRule(confidence_floor=1.5)
    with pytest.raises(ValueError, match="aggregation must be one of"):
        ScoringRule(aggregation="max")  # type: ignore[arg-type]
