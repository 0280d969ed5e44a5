"""Pool-wide scoring by columns: the chunk scorer against a plain per-image reference, the
score table, packed detections and lazily read embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.columnar import SCORE_COLUMNS, PackedDetections, ScoreTable
from labelwise.domain import Detections, ImageScore
from labelwise.scoring import (
    BOX_SCORES,
    SCORE_NAMES,
    ScoringRule,
    combine,
    score_image,
    score_packed,
    unscored,
)
from labelwise.selection import LazyRows, diverse_select

# A plain per-image statement of the rule (scoring's module docstring), written the obvious way:
# the oracle the chunk scorer must agree with.


def _reference_aggregate(s: np.ndarray, how: str, k: int) -> float:
    if how == "min":
        return float(s.min())
    if how == "mean":
        return float(s.mean())
    if how == "topk_mean":
        return float(np.sort(s)[:k].mean())
    return float(1.0 / (1.0 + (1.0 - s).sum()))


def reference_score(image_id: str, d: Detections, rule: ScoringRule) -> ImageScore:
    conf = d.confidence.astype(np.float64)
    probs = d.probs.astype(np.float64)
    mass = tuple((probs * conf[:, None]).sum(axis=0)) if len(d) else (0.0,) * d.num_classes
    sent = conf >= rule.confidence_floor
    edits = float((1 - conf[sent]).sum() + conf[~sent].sum())
    keep = d.confidence >= rule.confidence_floor
    low, band = rule.no_box_score, rule.blind_band
    if keep.any():
        per_box = {n: BOX_SCORES[n](probs[keep]) for n in SCORE_NAMES}
        scores = {n: _reference_aggregate(v, rule.aggregation, rule.top_k) for n, v in per_box.items()}
        worst = int(np.argmin(sum(rule.weights[n] * per_box[n] for n in SCORE_NAMES)))
        return ImageScore(image_id, combine(scores, rule.weights), scores, int(keep.sum()),
                          int(d.class_id[keep][worst]), mass, edits)
    if band == 0:
        return ImageScore(image_id, low, dict.fromkeys(SCORE_NAMES, low), 0, -1, mass, edits)
    if len(d) == 0:
        return ImageScore(image_id, low + band, dict.fromkeys(SCORE_NAMES, low + band), 0, -1, mass, edits)
    order = np.argsort(-conf, kind="stable")[: rule.top_k]
    evidence = 1 - np.exp(-conf.sum())
    scores = {n: float(np.clip(low + band * (0.5 * (1 - evidence) + 0.5 * _reference_aggregate(
        BOX_SCORES[n](probs[order]), rule.aggregation, rule.top_k)), low, low + band))
        for n in SCORE_NAMES}
    combined = float(np.clip(combine(scores, rule.weights), low, low + band))
    return ImageScore(image_id, combined, scores, 0, int(d.class_id[order[0]]), mass, edits)


def _random_detections(rng: np.random.Generator, n: int, c: int) -> Detections:
    probs = rng.dirichlet(np.full(c, 0.5), size=n).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    conf = rng.choice([rng.random(), 0.25, 0.1], size=n) if n else np.zeros(0)
    return Detections(rng.random((n, 4)) * 100, conf, probs.argmax(1) if n else np.zeros(0), probs)


def _assert_same(got: ImageScore, want: ImageScore) -> None:
    assert got.image_id == want.image_id
    assert (got.boxes_considered, got.predicted_class) == (want.boxes_considered, want.predicted_class)
    assert got.uncertainty_score == pytest.approx(want.uncertainty_score, abs=1e-12)
    assert got.scores == pytest.approx(want.scores, abs=1e-12)
    np.testing.assert_allclose(got.class_mass, want.class_mass, atol=1e-12)
    assert got.expected_edits == pytest.approx(want.expected_edits, abs=1e-12)


rules = st.builds(
    ScoringRule,
    aggregation=st.sampled_from(["min", "mean", "topk_mean", "sum"]),
    top_k=st.integers(1, 4),
    confidence_floor=st.sampled_from([0.0, 0.1, 0.25, 0.6]),
    blind_band=st.sampled_from([0.0, 0.1, 0.3]),
    weights=st.sampled_from([None, {"lowest_confidence": 1.0}, {"margin_sampling": 2.0, "entropy": 1.0}]),
)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rule=rules, classes=st.integers(1, 6))
def test_chunk_scores_equal_the_per_image_reference(seed, rule, classes):
    rng = np.random.default_rng(seed)
    items = [(f"img{i}", _random_detections(rng, int(rng.integers(0, 6)), classes)) for i in range(12)]
    table = score_packed(PackedDetections.of(items), rule)
    assert len(table) == len(items)
    for (image_id, d), got in zip(items, table, strict=True):
        _assert_same(got, reference_score(image_id, d, rule))


def test_an_images_scores_do_not_depend_on_its_neighbours():
    rng = np.random.default_rng(3)
    items = [(f"img{i}", _random_detections(rng, int(rng.integers(0, 8)), 5)) for i in range(40)]
    rule = ScoringRule(aggregation="topk_mean", blind_band=0.2)
    table = score_packed(PackedDetections.of(items), rule)
    for (image_id, d), row in zip(items, table, strict=True):
        alone = score_image(image_id, d, rule)
        assert row == alone  # exactly: same boxes, same order of operations


def test_table_round_trips_image_scores_and_selects_rows():
    scores = [ImageScore("a", 0.2, {"lowest_confidence": 0.3, "margin_sampling": 0.1, "entropy": 0.2},
                         2, 1, (0.5, 1.5), 0.7),
              ImageScore("b", 0.9, {"lowest_confidence": 0.9, "margin_sampling": 0.8, "entropy": 1.0},
                         1, 0, (1.0, 0.0), 0.1)]
    table = ScoreTable.of(scores)
    assert list(table) == scores
    assert table[-1] == scores[1]
    assert list(table.take(np.array([False, True]))) == [scores[1]]
    assert list(table[::-1]) == scores[::-1]
    assert list(ScoreTable.concat([table, table.take([0])])) == [*scores, scores[0]]
    np.testing.assert_array_equal(table.column("margin_sampling"), [0.1, 0.8])
    np.testing.assert_array_equal(table.column("combined"), [0.2, 0.9])
    assert [r[0] for r in table.rows()] == ["a", "b"]
    assert list(ScoreTable.unscored(["x"])) == [unscored("x")]
    with pytest.raises(KeyError, match="unknown score 'nope'"):
        table.column("nope")
    with pytest.raises(IndexError):
        table[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"counts": [2]}, r"confidence and class_id must be \(2,\)"),
        ({"probs": [[0.5, 0.6]]}, r"rows must sum to 1 .* \(image 'a'\)"),
        ({"class_id": [3]}, r"class_id must lie in \[0, 1\]"),
        ({"confidence": [1.5]}, r"confidence must lie in \[0, 1\]"),
        ({"counts": [-1, 2]}, r"counts must be \(1,\) non-negative"),
    ],
)
def test_packed_detections_say_what_is_wrong(kwargs, message):
    base = {"image_ids": ("a",), "counts": [1], "confidence": [0.5], "class_id": [0], "probs": [[0.5, 0.5]]}
    with pytest.raises(ValueError, match=message):
        PackedDetections(**{**base, **kwargs})


def test_score_columns_follow_the_score_names():
    assert SCORE_COLUMNS == SCORE_NAMES


def test_diverse_select_reads_only_the_candidate_pool_from_lazy_rows():
    rng = np.random.default_rng(0)
    n, d = 500, 8
    emb = rng.normal(size=(n, d)).astype(np.float32)
    scores = rng.random(n)
    read: list[int] = []

    def fetch(rows: np.ndarray) -> np.ndarray:
        read.extend(rows.tolist())
        return emb[rows]

    lazy = diverse_select(scores, LazyRows(n, d, fetch), 5, 0.5, np.random.default_rng(1), candidate_pool=30)
    eager = diverse_select(scores, emb, 5, 0.5, np.random.default_rng(1), candidate_pool=30)
    np.testing.assert_array_equal(lazy, eager)
    assert len(read) == 30
    with pytest.raises(ValueError, match=r"fetch must return \(2, 8\) rows; got \(1, 8\)"):
        LazyRows(n, d, lambda rows: emb[:1])[np.array([0, 1])]
    with pytest.raises(IndexError, match=r"row indices must lie in \[0, 500\)"):
        LazyRows(n, d, fetch)[np.array([500])]
