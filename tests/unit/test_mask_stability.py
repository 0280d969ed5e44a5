"""Mask stability: the measure against hand-computed values, its blend into image scores, and its
path through Detections, packing and the scoring rule of each task type."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.columnar import PackedDetections
from labelwise.config import ScoringSettings, Settings
from labelwise.domain import Detections
from labelwise.scorebatch import scoring_rule
from labelwise.scoring import ScoringRule, mask_aware, score_packed, score_table
from labelwise.task_types import TaskType


def _dets(probs: list[list[float]], conf: list[float], stability: list[float] | None = None) -> Detections:
    p = np.asarray(probs, np.float32)
    n = len(p)
    return Detections(np.tile(np.array([[0, 0, 4, 4]], np.float32), (n, 1)), np.asarray(conf, np.float32),
                      p.argmax(axis=1), p, None if stability is None else np.asarray(stability, np.float32))


# ------------------------------------------------------------------ the measure (torch, real ops)
def _logits(*rows: list[float]) -> "object":
    import torch

    return torch.tensor([rows], dtype=torch.float32)  # (1, h, w)


@pytest.mark.parametrize(
    ("rows", "box", "expected"),
    [
        # |logit > 1| / |logit > -1| inside the box
        ([[3.0, 3.0], [3.0, 3.0]], [0, 0, 2, 2], 1.0),  # every pixel decided
        ([[3.0, 0.5], [-0.5, -3.0]], [0, 0, 2, 2], 1 / 3),  # 1 strong of 3 above -1
        ([[3.0, 0.5], [-0.5, -3.0]], [0, 0, 1, 2], 1 / 2),  # the box keeps column 0: 3 and -0.5
        ([[9.0, 9.0], [0.5, -3.0]], [0, 1, 2, 2], 0.0),  # row 1 only: 0.5 is above -1, not above 1
        ([[-5.0, -5.0], [-5.0, -5.0]], [0, 0, 2, 2], 0.0),  # no mask at all: not a settled one
    ],
)
def test_mask_stability_against_hand_counts(rows, box, expected):
    import torch

    from labelwise.segment_inference import mask_stability

    got = mask_stability(_logits(*rows), torch.tensor([box], dtype=torch.float32))
    assert got.shape == (1,) and math.isclose(float(got[0]), expected, abs_tol=1e-7)


def test_mask_stability_needs_a_positive_offset():
    import torch

    from labelwise.segment_inference import mask_stability

    with pytest.raises(ValueError, match=r"offset must be > 0 \(logit units\); got 0"):
        mask_stability(_logits([1.0]), torch.tensor([[0, 0, 1, 1]], dtype=torch.float32), offset=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_are_exactly_ultralytics_process_mask(seed):
    """The masks built beside the stabilities are those of ``process_mask(upsample=True)``."""
    import torch
    from ultralytics.utils import ops

    from labelwise.segment_inference import masks_and_stability

    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(8, 12, 16, generator=g)
    coeffs = torch.randn(5, 8, generator=g)
    xy = torch.rand(5, 2, generator=g) * torch.tensor([40.0, 30.0])
    boxes = torch.cat([xy, xy + 4 + torch.rand(5, 2, generator=g) * 20], dim=1)
    masks, stability = masks_and_stability(protos, coeffs, boxes, (48, 64))
    assert torch.equal(masks, ops.process_mask(protos, coeffs, boxes, (48, 64), upsample=True))
    assert stability.shape == (5,) and bool(((stability >= 0) & (stability <= 1)).all())
    empty_masks, empty_stability = masks_and_stability(protos, coeffs[:0], boxes[:0], (48, 64))
    assert empty_masks.shape == (0, 48, 64) and empty_stability.shape == (0,)


# ------------------------------------------------------------------ the blend
@pytest.mark.parametrize(
    ("scores", "stability", "weight", "expected"),
    [
        ([0.9, 0.2], [0.1, 1.0], 0.5, [0.5, 0.6]),
        ([0.9, 0.2], [0.1, 1.0], 0.0, [0.9, 0.2]),
        ([0.9, 0.2], [0.1, 1.0], 1.0, [0.1, 1.0]),
        ([0.9, 0.2], [np.nan, 0.0], 0.25, [0.9, 0.15]),  # NaN = no mask: the class score stays
        ([0.9, 0.2], None, 0.5, [0.9, 0.2]),
    ],
)
def test_mask_aware_blends_known_stabilities(scores, stability, weight, expected):
    got = mask_aware(np.array(scores), None if stability is None else np.array(stability), weight)
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mask_aware(np.zeros(2), np.zeros(2), 1.5), r"mask_weight must lie in \[0, 1\]; got 1.5"),
        (lambda: mask_aware(np.zeros(2), np.zeros(3), 0.5),
         r"stability must be \(2,\) like the box scores; got \(3,\)"),
        (lambda: ScoringRule(mask_weight=-0.1), r"mask_weight must lie in \[0, 1\]; got -0.1"),
        (lambda: _dets([[1.0, 0.0]], [0.9], [1.2]), r"mask_stability must lie in \[0, 1\]; got min 1.2"),
        (lambda: _dets([[1.0, 0.0]], [0.9], [0.5, 0.5]),
         r"mask_stability must be \(1,\) to match xyxy; got shape \(2,\)"),
    ],
)
def test_bad_stabilities_and_weights_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_soft_outline_makes_an_image_uncertain_only_with_a_mask_weight():
    """Two images with the same confident class; one instance's outline is soft. Class scores
    alone tie them; with a mask weight the soft one ranks first (lower), by the hand-computed
    blend of each score."""
    clear = _dets([[0.9, 0.1]], [0.8], [0.95])
    soft = _dets([[0.9, 0.1]], [0.8], [0.2])
    items = [("clear", clear), ("soft", soft)]
    plain = score_table(items, ScoringRule())
    assert plain.combined[0] == plain.combined[1]
    table = score_table(items, ScoringRule(mask_weight=0.5))
    for row, m in ((0, 0.95), (1, 0.2)):
        np.testing.assert_allclose(table.by_name[row], 0.5 * plain.by_name[row] + 0.5 * m, atol=1e-9)
    assert table.combined[1] < table.combined[0]


def test_images_without_stabilities_score_as_before_beside_ones_with():
    rule = ScoringRule(mask_weight=0.7)
    boxes = _dets([[0.6, 0.4], [0.2, 0.8]], [0.5, 0.3])
    mixed = PackedDetections.of([("plain", boxes), ("seg", _dets([[0.6, 0.4]], [0.5], [0.3]))])
    assert mixed.mask_stability is not None and np.isnan(mixed.mask_stability[:2]).all()
    assert mixed.mask_stability[2] == np.float32(0.3)
    alone = score_packed(PackedDetections.of([("plain", boxes)]), rule)
    np.testing.assert_array_equal(score_packed(mixed, rule).by_name[0], alone.by_name[0])
    assert PackedDetections.of([("plain", boxes)]).mask_stability is None


def test_take_keeps_each_rows_stability():
    det = _dets([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], [0.9, 0.2, 0.6], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(det.above(0.5).mask_stability, np.float32([0.1, 0.3]))
    np.testing.assert_array_equal(det.take(np.array([2, 0])).mask_stability, np.float32([0.3, 0.1]))
    assert _dets([[1.0, 0.0]], [0.9]).take(np.array([0])).mask_stability is None


@pytest.mark.parametrize(
    ("task", "expected"),
    [(TaskType.SEGMENT, 0.4), (TaskType.DETECT, 0.0), (TaskType.CLASSIFY, 0.0)],
)
def test_only_a_segmentation_rule_takes_the_mask_weight(tmp_path, task, expected):
    settings = Settings(state_dir=tmp_path, scoring=ScoringSettings(mask_weight=0.4))
    rule = scoring_rule(settings, task)
    assert rule.mask_weight == expected and rule.as_params()["mask_weight"] == expected
