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
@pytest.mark.parametrize("conf", [[0.1], [0.2, 0.05], []], ids=["one-faint", "two-faint", "none"])
def test_blind_band_zero_reproduces_the_old_tie(no_box_score, conf):
    dets = _dets(conf, [[0.6, 0.4]] * len(conf)) if conf else Detections.empty(2)
    rule = ScoringRule(confidence_floor=0.5, no_box_score=no_box_score, blind_band=0.0)
    s = score_image("img", dets, rule)
    assert s.boxes_considered == 0
    assert s.predicted_class == -1
    assert s.uncertainty_score == no_box_score
    assert set(s.scores.values()) == {no_box_score}


def _blind_expected(conf, score, band=0.1, low=0.0):
    """The documented blind rule by hand: low + band * (0.5 * exp(-sum conf) + 0.5 * score)."""
    return low + band * (0.5 * math.exp(-sum(conf)) + 0.5 * score)


H532 = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
H9 = -(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05))


@pytest.mark.parametrize(
    ("conf", "probs", "rule", "expected", "predicted"),
    [
        # One faint box: the three box scores differ (0.5, 0.2, 1 - H / ln 3).
        ([0.2], [[0.5, 0.3, 0.2]], ScoringRule(),
         {"lowest_confidence": _blind_expected([0.2], 0.5),
          "margin_sampling": _blind_expected([0.2], 0.2),
          "entropy": _blind_expected([0.2], 1 - H532 / LN3)}, 0),
        # Two faint boxes, min aggregation: the confusing box decides each score.
        ([0.1, 0.2], [[0.05, 0.9, 0.05], [0.5, 0.3, 0.2]], ScoringRule(),
         {"lowest_confidence": _blind_expected([0.1, 0.2], 0.5),
          "margin_sampling": _blind_expected([0.1, 0.2], 0.2),
          "entropy": _blind_expected([0.1, 0.2], 1 - H532 / LN3)}, 0),
        # top_k = 1 keeps only the most confident faint box, but the evidence counts every box.
        ([0.1, 0.2], [[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], ScoringRule(top_k=1),
         {"lowest_confidence": _blind_expected([0.1, 0.2], 0.9),
          "margin_sampling": _blind_expected([0.1, 0.2], 0.85),
          "entropy": _blind_expected([0.1, 0.2], 1 - H9 / LN3)}, 0),
        # Band and offset are honoured; mean aggregation over both faint boxes.
        ([0.1, 0.2], [[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]],
         ScoringRule(aggregation="mean", no_box_score=0.3, blind_band=0.5),
         {"lowest_confidence": _blind_expected([0.1, 0.2], 0.7, 0.5, 0.3),
          "margin_sampling": _blind_expected([0.1, 0.2], 0.525, 0.5, 0.3),
          "entropy": _blind_expected([0.1, 0.2], 1 - (H532 + H9) / 2 / LN3, 0.5, 0.3)}, 0),
    ],
    ids=["one-faint", "min-of-two", "top-k-1", "band-offset-mean"],
)
def test_blind_rule_by_hand(conf, probs, rule, expected, predicted):
    s = score_image("img", _dets(conf, probs), rule)
    assert s.boxes_considered == 0
    assert s.predicted_class == predicted
    assert s.scores == pytest.approx(expected, rel=1e-6)
    assert s.uncertainty_score == pytest.approx(combine(expected, rule.weights), rel=1e-6)


def test_blind_scores_differ_between_score_names():
    """A confusing faint box ranks differently under each score: no more identical tie."""
    rule = ScoringRule()
    # Same evidence, so the box scores decide: lc / margin / entropy (H in nats).
    a = score_image("a", _dets([0.2], [[0.5, 0.3, 0.2]]), rule)    # 0.5  / 0.2  / H 1.030
    b = score_image("b", _dets([0.2], [[0.45, 0.45, 0.1]]), rule)  # 0.45 / 0.0  / H 0.949
    c = score_image("c", _dets([0.2], [[0.4, 0.35, 0.25]]), rule)  # 0.4  / 0.05 / H 1.081
    assert len(set(a.scores.values())) == 3
    ranked = {
        name: [x.image_id for x in sorted((a, b, c), key=lambda x: x.scores[name])]
        for name in ("lowest_confidence", "margin_sampling", "entropy")
    }
    assert ranked["lowest_confidence"] == ["c", "b", "a"]
    assert ranked["margin_sampling"] == ["b", "c", "a"]
    assert ranked["entropy"] == ["c", "a", "b"]
    assert len({tuple(order) for order in ranked.values()}) == 3


@pytest.mark.parametrize("aggregation", ["min", "mean", "topk_mean", "sum"])
def test_blind_images_with_more_faint_evidence_rank_first(aggregation):
    rule = ScoringRule(aggregation=aggregation)
    box = [0.6, 0.3, 0.1]
    by_evidence = [
        score_image("three", _dets([0.2, 0.2, 0.2], [box] * 3), rule),
        score_image("two", _dets([0.2, 0.2], [box] * 2), rule),
        score_image("one", _dets([0.2], [box]), rule),
        score_image("whisper", _dets([0.01], [box]), rule),
        score_image("nothing", Detections.empty(3), rule),
    ]
    values = [s.uncertainty_score for s in by_evidence]
    assert values == sorted(values) and len(set(values)) == len(values)
    for name in ("lowest_confidence", "margin_sampling", "entropy"):
        per_name = [s.scores[name] for s in by_evidence]
        assert per_name == sorted(per_name) and len(set(per_name)) == len(per_name)
    assert all(s.boxes_considered == 0 for s in by_evidence)


@pytest.mark.parametrize(("no_box_score", "blind_band"), [(0.0, 0.1), (0.3, 0.5), (0.7, 0.3)])
def test_image_with_no_detections_scores_the_top_of_the_band(no_box_score, blind_band):
    rule = ScoringRule(no_box_score=no_box_score, blind_band=blind_band)
    s = score_image("img", Detections.empty(4), rule)
    assert s.boxes_considered == 0 and s.predicted_class == -1
    assert s.uncertainty_score == no_box_score + blind_band
    assert set(s.scores.values()) == {no_box_score + blind_band}
    assert s.class_mass == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("no_box_score", "blind_band", "aggregation"),
    [(0.0, 0.1, "min"), (0.0, 1.0, "sum"), (0.9, 0.1, "mean"), (1.0, 0.0, "topk_mean"),
     (0.5, 0.5, "min")],
)
def test_blind_scores_lie_in_the_band_and_on_unit_interval(no_box_score, blind_band, aggregation):
    rng = np.random.default_rng(1)
    rule = ScoringRule(aggregation=aggregation, no_box_score=no_box_score, blind_band=blind_band)
    for _ in range(200):
        n = int(rng.integers(0, 8))
        probs = rng.dirichlet(np.ones(5) * 0.5, size=n) if n else np.zeros((0, 5))
        conf = rng.uniform(0.0, 0.2499, size=n)
        s = score_image("img", _dets(list(conf), probs) if n else Detections.empty(5), rule)
        assert s.boxes_considered == 0
        values = [s.uncertainty_score, *s.scores.values()]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert all(no_box_score <= v <= no_box_score + blind_band for v in values)
        if n and blind_band > 0:  # the class of the most confident faint box
            assert s.predicted_class == int(np.asarray(probs)[int(np.argmax(conf))].argmax())


@pytest.mark.parametrize(
    ("conf", "probs"),
    [
        ([0.9, 0.05], [[0.9, 0.1], [0.5, 0.5]]),
        ([0.9, 0.8], [[0.95, 0.05], [0.45, 0.55]]),
        ([0.3], [[0.6, 0.4]]),
    ],
)
@pytest.mark.parametrize("blind_band", [0.1, 0.5, 1.0])
def test_blind_band_leaves_images_with_boxes_over_the_floor_alone(conf, probs, blind_band):
    dets = _dets(conf, probs)
    before = score_image("img", dets, ScoringRule(blind_band=0.0))
    after = score_image("img", dets, ScoringRule(blind_band=blind_band))
    assert after == before
    assert after.boxes_considered >= 1


def test_blind_band_is_recorded_and_set_from_settings():
    from labelwise.config import ScoringSettings, Settings
    from labelwise.scorebatch import scoring_rule

    assert ScoringRule().as_params()["blind_band"] == 0.1
    assert ScoringRule(blind_band=0.25).as_params()["blind_band"] == 0.25
    rule = scoring_rule(Settings(scoring=ScoringSettings(blind_band=0.3, no_box_score=0.2)))
    assert (rule.blind_band, rule.no_box_score) == (0.3, 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blind_band": -0.1}, r"blind_band must lie in \[0, 1\]; got -0.1"),
        ({"blind_band": 1.5}, r"blind_band must lie in \[0, 1\]; got 1.5"),
        ({"no_box_score": 0.95, "blind_band": 0.1},
         r"no_box_score \+ blind_band must be <= 1; got 0.95 \+ 0.1"),
        ({"no_box_score": 1.0}, r"no_box_score \+ blind_band must be <= 1; got 1.0 \+ 0.1"),
    ],
)
def test_blind_band_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScoringRule(**kwargs)


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
