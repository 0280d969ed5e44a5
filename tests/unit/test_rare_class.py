"""Rarity-aware selection: class mass, rarity weights, and the rare_class_diverse strategy."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.domain import Detections, ImageScore, class_box_counts
from labelwise.scoring import ScoringRule, class_mass, score_image
from labelwise.selection import rare_class_gain, rarity_weights
from labelwise.strategies import SelectionRequest, select


def dets(conf: list[float], probs: list[list[float]]) -> Detections:
    n = len(conf)
    return Detections(
        np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        np.array(conf, np.float32),
        np.array([int(np.argmax(p)) for p in probs], np.int64),
        np.array(probs, np.float32).reshape(n, -1),
    )


@pytest.mark.parametrize(
    ("conf", "probs", "expected"),
    [
        ([0.5], [[1.0, 0.0, 0.0]], [0.5, 0.0, 0.0]),
        ([0.5, 0.1], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], [0.25, 0.25, 0.1]),
        ([0.02], [[0.0, 1.0, 0.0]], [0.0, 0.02, 0.0]),  # under any floor, still counted (faintly)
    ],
    ids=["one-box", "two-boxes", "faint-box"],
)
def test_class_mass_is_confidence_weighted_class_distribution(conf, probs, expected):
    np.testing.assert_allclose(class_mass(dets(conf, probs)), expected, atol=1e-6)


def test_class_mass_of_no_boxes_is_zero_and_scores_carry_it():
    empty = Detections.empty(3)
    np.testing.assert_array_equal(class_mass(empty), np.zeros(3))
    rule = ScoringRule(confidence_floor=0.25)
    faint = score_image("a", dets([0.1], [[0.0, 0.0, 1.0]]), rule)
    assert faint.boxes_considered == 0 and faint.class_mass == pytest.approx((0.0, 0.0, 0.1))


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 0, 0], [1.0, 1.0, 1.0]),
        ([9, 9, 0], [0.1 / 1.2 * 3, 0.1 / 1.2 * 3, 1.0 / 1.2 * 3]),
        ([59, 2, 2], [3 * (1 / 60) / (1 / 60 + 2 / 3), 3 * (1 / 3) / (1 / 60 + 2 / 3), 3 * (1 / 3) / (1 / 60 + 2 / 3)]),
    ],
    ids=["nothing-labelled", "one-missing-class", "long-tail"],
)
def test_rarity_weights_are_inverse_counts_with_mean_one(counts, expected):
    w = rarity_weights(np.array(counts))
    np.testing.assert_allclose(w, expected, rtol=1e-9)
    assert w.mean() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.zeros(0), np.array([1.0, -1.0]), np.ones((2, 2)), np.array([np.nan])])
def test_rarity_weights_refuse_bad_counts(bad):
    with pytest.raises(ValueError, match="class_counts must be a non-empty 1-D array of counts >= 0"):
        rarity_weights(bad)


def test_rare_class_gain_checks_shapes():
    np.testing.assert_allclose(rare_class_gain(np.array([[1.0, 2.0]]), np.array([0.5, 1.5])), [3.5])
    with pytest.raises(ValueError, match=r"class_mass must be \(N, C\) and weights \(C,\); got \(1, 2\) and \(3,\)"):
        rare_class_gain(np.array([[1.0, 2.0]]), np.ones(3))


def test_class_box_counts_over_label_arrays():
    labels = [np.array([[0, .5, .5, .1, .1], [2, .5, .5, .1, .1]]), np.zeros((0, 5)), np.array([[2, .1, .1, .1, .1]])]
    np.testing.assert_array_equal(class_box_counts(labels, 3), [1, 0, 2])


def _pool(rng: np.random.Generator, n: int = 40) -> tuple[list[ImageScore], np.ndarray]:
    """Images 0..n-1; images 0-3 hold class-2 mass (the rare class), the rest classes 0/1."""
    scores = []
    for i in range(n):
        mass = (0.0, 0.2, 0.9) if i < 4 else (float(rng.uniform(0.5, 2)), float(rng.uniform(0, 1)), 0.0)
        s = float(rng.uniform(0.3, 0.7))
        scores.append(ImageScore(f"i{i}", s, {"lowest_confidence": s, "margin_sampling": s, "entropy": s}, 1, 0, mass))
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return scores, emb


def test_rare_class_diverse_picks_images_of_the_class_the_labelled_set_lacks():
    scores, emb = _pool(np.random.default_rng(0))
    req = SelectionRequest(scores=scores, limit=4, rng=np.random.default_rng(1), embeddings=emb,
                           labelled_class_counts=np.array([60, 30, 1]))
    assert sorted(select("rare_class_diverse", req).tolist()) == [0, 1, 2, 3]
    balanced = SelectionRequest(scores=scores, limit=4, rng=np.random.default_rng(1), embeddings=emb,
                                labelled_class_counts=np.array([1, 1, 60]))
    assert not set(select("rare_class_diverse", balanced).tolist()) & {0, 1, 2, 3}


def test_rare_class_diverse_refuses_mismatched_counts_and_missing_mass():
    scores, emb = _pool(np.random.default_rng(0))
    req = SelectionRequest(scores=scores, limit=4, rng=np.random.default_rng(1), embeddings=emb,
                           labelled_class_counts=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"labelled_class_counts must be \(3,\) like class_mass; got shape \(2,\)"):
        select("rare_class_diverse", req)
    bare = [ImageScore(s.image_id, s.uncertainty_score, s.scores, 1) for s in scores]
    with pytest.raises(ValueError, match="needs every image score's class_mass"):
        select("rare_class_diverse", SelectionRequest(scores=bare, limit=4, rng=np.random.default_rng(1), embeddings=emb))


@pytest.mark.parametrize(
    ("conf", "floor", "expected"),
    [
        ([], 0.25, 0.0),  # nothing sent, nothing seen
        ([0.9, 0.8], 0.25, 0.1 + 0.2),  # sent boxes wrong with probability 1 - confidence
        ([0.1, 0.05], 0.25, 0.15),  # unsent boxes are objects to draw with probability confidence
        ([0.9, 0.1], 0.25, 0.1 + 0.1),
    ],
    ids=["empty", "confident", "faint", "mixed"],
)
def test_expected_edits(conf, floor, expected):
    from labelwise.scoring import expected_edits

    d = dets(conf, [[1.0, 0.0, 0.0]] * len(conf)) if conf else Detections.empty(3)
    assert expected_edits(d, floor) == pytest.approx(expected, abs=1e-6)
    assert score_image("x", d, ScoringRule(confidence_floor=floor)).expected_edits == pytest.approx(expected, abs=1e-6)


def test_edit_aware_prefers_the_rare_uncertain_image_that_needs_few_edits():
    rule = ScoringRule(confidence_floor=0.25)
    # a (rare class 2, confident boxes: cheap to review) vs b (rare class 2, many faint boxes to
    # draw and wrong sent ones: expensive) vs c (common class 0, cheap)
    a = score_image("a", dets([0.9, 0.6], [[0.0, 0.2, 0.8], [1.0, 0.0, 0.0]]), rule)
    b = score_image("b", dets([0.6, 0.3, 0.2, 0.2, 0.2], [[0.0, 0.2, 0.8]] * 5), rule)
    c = score_image("c", dets([0.9, 0.9], [[1.0, 0.0, 0.0]] * 2), rule)
    assert a.expected_edits < b.expected_edits
    emb = np.eye(3, dtype=np.float32)
    req = SelectionRequest([a, b, c], 1, np.random.default_rng(0), embeddings=emb,
                           labelled_class_counts=np.array([50, 20, 1]))
    assert select("edit_aware_diverse", req).tolist() == [0]
