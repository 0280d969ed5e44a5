"""Pick reasons: one code and one sentence per queue item, from what score-batch holds."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.domain import Detections
from labelwise.reasons import REASON_CODES, PickContext, PickReason, explain_pick, explain_queue
from labelwise.scoring import ScoringRule, score_image
from labelwise.strategies import STRATEGIES, get_strategy

NAMES = tuple(str(i) for i in range(10))


def dets(*boxes: tuple[float, list[float]]) -> Detections:
    """Boxes given as (confidence, class distribution over 10 classes)."""
    if not boxes:
        return Detections.empty(10)
    probs = np.asarray([p for _, p in boxes], np.float32)
    return Detections(
        xyxy=np.asarray([[10 * k, 10, 10 * k + 8, 18] for k in range(len(boxes))], np.float32),
        confidence=np.asarray([c for c, _ in boxes], np.float32),
        class_id=probs.argmax(1),
        probs=probs,
    )


def onehot(c: int, p: float = 0.95, second: int | None = None, q: float = 0.0) -> list[float]:
    row = np.full(10, (1.0 - p - q) / (9 if second is None else 8), np.float64)
    row[c] = p
    if second is not None:
        row[second] = q
    return list(row)


RULE = ScoringRule()


@pytest.mark.parametrize(("boxes", "code", "words"), [
    ((), "no_box", ["no box above 0.25", "missing objects"]),
    (((0.12, onehot(3)),), "no_box", ["best guess: class 3 at 0.12"]),
    (((0.8, onehot(5, 0.46, 8, 0.44)),), "ambiguous_class", ["1 box with class margin < 0.1", "classes 5, 8"]),
    (((0.7, onehot(5, 0.46, 8, 0.44)), (0.9, onehot(2, 0.45, 1, 0.40))), "ambiguous_class",
     ["2 boxes", "classes 1, 2, 5, 8"]),
    (((0.31, onehot(2)), (0.9, onehot(4))), "low_confidence", ["1 box under 0.5", "lowest 0.31", "class 2"]),
    (((0.9, onehot(4)),), "uncertain", ["uncertainty score", "lowest confidence 0.90"]),
])
def test_the_uncertainty_reason_names_what_the_boxes_show(boxes, code, words) -> None:
    d = dets(*boxes)
    why = explain_pick(score_image("img", d, RULE), d, PickContext("weighted_combination", 0.25, NAMES))
    assert why.code == code and why.codes == (code,)
    for word in words:
        assert word in why.text, why.text


@pytest.mark.parametrize(("probs", "code", "text"), [
    (onehot(5, 0.46, 8, 0.44), "ambiguous_class", "class 5 or 8: margin 0.02 < 0.1"),
    (onehot(2, 0.42, 7, 0.2), "low_confidence", "top class 2 at 0.42 (under 0.5)"),
    (onehot(4, 0.9), "uncertain", "(top class 4 at 0.90, margin 0.89)"),
])
def test_a_classified_image_is_explained_by_its_class_not_boxes(probs, code, text) -> None:
    from labelwise.scorebatch import scoring_rule
    from labelwise.config import Settings
    from labelwise.task_types import TaskType, classification_detections

    d = classification_detections(np.asarray(probs), 32, 32)
    context = PickContext("weighted_combination", 0.0, NAMES, task_type=TaskType.CLASSIFY)
    why = explain_pick(score_image("img", d, scoring_rule(Settings(), TaskType.CLASSIFY)), d, context)
    assert why.code == code and text in why.text and "box" not in why.text, why.text


@pytest.mark.parametrize(("strategy", "distance", "code", "codes", "words"), [
    ("random", 0.9, "random", ("random",), ["at random"]),
    ("cold_start", 0.62, "cold_start", ("cold_start",), ["no trained model yet", "distance 0.62"]),
    ("cold_start", None, "cold_start", ("cold_start",), ["cover the pool"]),
    ("diverse_uncertainty", 0.62, "no_box", ("no_box", "far_from_labelled"),
     ["far from every labelled or queued image (distance 0.62)"]),
    ("diverse_uncertainty", 0.05, "no_box", ("no_box",), ["no box above"]),
])
def test_strategy_and_distance_parts(strategy, distance, code, codes, words) -> None:
    d = dets()
    why = explain_pick(score_image("img", d, RULE), d, PickContext(strategy, 0.25, NAMES), distance)
    assert (why.code, why.codes) == (code, codes)
    for word in words:
        assert word in why.text, why.text
    assert "far from" not in why.text or "far_from_labelled" in why.codes


def test_a_rarity_strategy_names_the_rare_class_it_expects() -> None:
    d = dets((0.4, onehot(7, 0.9)), (0.9, onehot(1, 0.9)))
    counts = np.asarray([0, 50, 40, 40, 40, 40, 40, 2, 40, 40], np.float64)
    why = explain_queue(get_strategy("rare_class_diverse"), [score_image("img", d, RULE)], [d], 0.25,
                        NAMES, labelled_counts=counts,
                        candidate_mass=np.asarray([score_image("img", d, RULE).class_mass]))[0]
    assert why.code == "rare_class", why
    assert "rare class 7 expected" in why.text and "2 labelled" in why.text
    assert why.codes == ("rare_class", "low_confidence")


def test_a_common_class_is_not_called_rare() -> None:
    d = dets((0.9, onehot(1, 0.9)))
    counts = np.asarray([0, 50, 40, 40, 40, 40, 40, 2, 40, 40], np.float64)
    why = explain_queue(get_strategy("rare_class_diverse"), [score_image("img", d, RULE)], [d], 0.25,
                        NAMES, labelled_counts=counts,
                        candidate_mass=np.asarray([score_image("img", d, RULE).class_mass]))[0]
    assert "rare_class" not in why.codes


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_gives_every_pick_a_known_code_and_a_sentence(name: str) -> None:
    """Contract: whatever the strategy, each queue item gets a reason from the table."""
    rng = np.random.default_rng(0)
    boxes = [dets(), dets((0.12, onehot(3))), dets((0.8, onehot(5, 0.46, 8, 0.44))),
             dets((0.31, onehot(2))), dets((0.9, onehot(4)))]
    scores = [score_image(f"i{k}", d, RULE) for k, d in enumerate(boxes)]
    emb = rng.normal(size=(5, 8)).astype(np.float32)
    reasons = explain_queue(get_strategy(name), scores, boxes, 0.25, NAMES,
                            picked_embeddings=emb, labelled_embeddings=rng.normal(size=(3, 8)),
                            labelled_counts=np.ones(10), candidate_mass=np.asarray([s.class_mass for s in scores]))
    assert len(reasons) == 5
    for why in reasons:
        assert why.code in REASON_CODES and why.text and why.codes[0] == why.code


def test_a_reason_with_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="codes must start with code"):
        PickReason("bored", "?", ("bored",))


@pytest.mark.parametrize(("data", "match"), [
    ([], "batch must be a score-batch dict"),
    ({"queue": "x"}, r"batch\['queue'\] must be a list"),
    ({"queue": [{"uncertainty_score": 0.1}]}, r"batch\['queue'\]\[0\] must be a dict with an image_id"),
    ({"queue": [{"image_id": "a", "uncertainty_score": "high"}]}, r"\['uncertainty_score'\] must be a number"),
    ({"queue": [{"image_id": "a"}, {"image_id": "a"}]}, "appears twice"),
])
def test_a_batch_crossing_a_boundary_is_parsed_once_with_messages_naming_the_field(data, match) -> None:
    from labelwise.domain import ScoreBatch

    with pytest.raises(ValueError, match=match):
        ScoreBatch.from_json(data)


def test_a_batch_survives_its_json_round_trip() -> None:
    from labelwise.domain import QueueItem, ScoreBatch

    batch = ScoreBatch("p", "entropy", "v1", [QueueItem("a", 0.25, {"entropy": 0.25}, "t.jpg",
                                                       "no_box", "no box above 0.25", rank=1)],
                       {"round": 3, "limit": 1})
    again = ScoreBatch.from_json(batch.as_json())
    assert again == batch and again.round_number == 3
