"""A classification project's image scores are its softmax row's scores, with no aggregation and
no confidence floor (hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.config import Settings
from labelwise.scorebatch import scoring_rule
from labelwise.scoring import score_table
from labelwise.task_types import TaskType, classification_detections

LN3 = math.log(3)


def _entropy_score(p: list[float]) -> float:
    return 1 - -sum(x * math.log(x) for x in p if x > 0) / math.log(len(p))


ROWS = [
    # (softmax row, lowest_confidence, margin, entropy score), by hand
    ([0.7, 0.2, 0.1], 0.7, 0.5, 1 - (0.7 * math.log(1 / 0.7) + 0.2 * math.log(5) + 0.1 * math.log(10)) / LN3),
    ([1 / 3, 1 / 3, 1 / 3], 1 / 3, 0.0, 0.0),
    ([0.4, 0.35, 0.25], 0.4, 0.05, _entropy_score([0.4, 0.35, 0.25])),
    ([0.0, 0.0, 1.0], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("aggregation", ["min", "mean", "topk_mean", "sum"])
@pytest.mark.parametrize(("probs", "lc", "margin", "ent"), ROWS)
def test_scores_are_the_rows_own(probs, lc, margin, ent, aggregation):
    settings = Settings(scoring={"confidence_floor": 0.5, "aggregation": aggregation})
    rule = scoring_rule(settings, TaskType.CLASSIFY)
    [score] = list(score_table([("img", classification_detections(np.array(probs), 32, 32))], rule))
    expected = {"lowest_confidence": lc, "margin_sampling": margin, "entropy": ent}
    if aggregation == "sum":  # 1 / (1 + sum of (1 - score)) over the one row
        expected = {k: 1 / (1 + (1 - v)) for k, v in expected.items()}
    assert score.scores == pytest.approx(expected, abs=1e-6)
    assert score.uncertainty_score == pytest.approx(sum(expected.values()) / 3, abs=1e-6)
    assert score.boxes_considered == 1 and score.predicted_class == int(np.argmax(probs))


def test_a_low_top_probability_is_scored_not_blind():
    """Under the detection rule a row below the floor makes the image blind; a classification
    always has its distribution, whatever the detection floor says."""
    settings = Settings(scoring={"confidence_floor": 0.5})
    det = classification_detections(np.array([0.4, 0.35, 0.25]), 32, 32)
    [as_class] = list(score_table([("img", det)], scoring_rule(settings, TaskType.CLASSIFY)))
    [as_boxes] = list(score_table([("img", det)], scoring_rule(settings, TaskType.DETECT)))
    assert as_class.scores["lowest_confidence"] == pytest.approx(0.4)
    assert as_boxes.boxes_considered == 0  # blind under the box rule


def test_more_uncertain_rows_rank_first():
    rule = scoring_rule(Settings(), TaskType.CLASSIFY)
    items = [(f"i{k}", classification_detections(np.array(p), 8, 8)) for k, (p, *_rest) in enumerate(ROWS)]
    ranked = sorted(score_table(items, rule), key=lambda s: s.uncertainty_score)
    assert [s.image_id for s in ranked] == ["i1", "i2", "i0", "i3"]
