"""Reviewer agreement: box F1, presence kappa and the merge rule against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.quality.agreement import (
    BoxAgreement,
    KappaResult,
    ReviewedBox,
    box_agreement,
    merge_reviews,
    presence_kappa,
)

SQ = [0.0, 0.0, 10.0, 10.0]
NONE: list[list[float]] = []

# Hand-computed image (IoU = intersection / union of 10 x 10 squares unless said):
#   A: a0 [0,0,10,10] c0   a1 [20,0,30,10] c1   a2 [40,0,50,10] c0
#   B: b0 [0,0,10,12] c0   b1 [20,0,30,10] c2   b2 [41,0,51,10] c0   b3 [60,0,70,10] c1
#   a0-b0: same class, IoU 100 / 120 = 0.833 -> matched
#   a1-b1: same box but class 1 vs 2 -> not matched
#   a2-b2: same class, inter 9 * 10 = 90, union 100 + 100 - 90 = 110, IoU 0.818 -> matched
#   b3: class 1 like a1, but IoU 0 -> unmatched
#   matched = 2, only_a = 1 (a1), only_b = 2 (b1, b3), F1 = 2 * 2 / (3 + 4) = 4/7
#   merged: (a0 + b0) / 2 = [0, 0, 10, 11] c0, (a2 + b2) / 2 = [40.5, 0, 50.5, 10] c0;
#   third look: a1, then b1, b3.
A_BOXES = [SQ, [20.0, 0.0, 30.0, 10.0], [40.0, 0.0, 50.0, 10.0]]
A_CLS = [0, 1, 0]
B_BOXES = [[0.0, 0.0, 10.0, 12.0], [20.0, 0.0, 30.0, 10.0], [41.0, 0.0, 51.0, 10.0], [60.0, 0.0, 70.0, 10.0]]
B_CLS = [0, 2, 0, 1]


def test_box_agreement_hand_computed():
    assert box_agreement(A_BOXES, A_CLS, B_BOXES, B_CLS) == BoxAgreement(
        matched=2, only_a=1, only_b=2, f1=pytest.approx(4 / 7))


@pytest.mark.parametrize(
    ("a", "a_cls", "b", "b_cls", "expected"),
    [
        (NONE, [], NONE, [], BoxAgreement(0, 0, 0, 1.0)),  # two empty images agree
        (NONE, [], [SQ], [0], BoxAgreement(0, 0, 1, 0.0)),
        ([SQ], [0], NONE, [], BoxAgreement(0, 1, 0, 0.0)),
        ([SQ], [0], [SQ], [0], BoxAgreement(1, 0, 0, 1.0)),
        ([SQ], [0], [SQ], [1], BoxAgreement(0, 1, 1, 0.0)),  # class must match
        ([SQ], [0], [[0.0, 0.0, 10.0, 20.0]], [0], BoxAgreement(1, 0, 0, 1.0)),  # IoU exactly 0.5 counts
        ([SQ], [0], [[0.0, 0.0, 10.0, 21.0]], [0], BoxAgreement(0, 1, 1, 0.0)),  # IoU 100/210 < 0.5
        # matching is within class: B's class-1 twin of a0 does not steal it from B's class-0 box
        ([SQ], [0], [SQ, [1.0, 0.0, 11.0, 10.0]], [1, 0], BoxAgreement(1, 0, 1, 2 / 3)),
        ([SQ, SQ], [0, 0], [SQ], [0], BoxAgreement(1, 1, 0, 2 / 3)),  # one-to-one
    ],
)
def test_box_agreement_table(a, a_cls, b, b_cls, expected):
    got = box_agreement(a, a_cls, b, b_cls)
    assert (got.matched, got.only_a, got.only_b) == (expected.matched, expected.only_a, expected.only_b)
    assert got.f1 == pytest.approx(expected.f1)


def test_box_agreement_is_symmetric_and_threshold_applies():
    ab = box_agreement(A_BOXES, A_CLS, B_BOXES, B_CLS)
    ba = box_agreement(B_BOXES, B_CLS, A_BOXES, A_CLS)
    assert (ba.matched, ba.only_a, ba.only_b, ba.f1) == (ab.matched, ab.only_b, ab.only_a, ab.f1)
    strict = box_agreement(A_BOXES, A_CLS, B_BOXES, B_CLS, iou_threshold=0.82)  # keeps a0-b0 only
    assert (strict.matched, strict.f1) == (1, pytest.approx(2 / 7))
    with pytest.raises(ValueError, match=r"iou_threshold must lie in \(0, 1\]; got 0.0"):
        box_agreement(A_BOXES, A_CLS, B_BOXES, B_CLS, iou_threshold=0.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([SQ], [0, 1], NONE, []), r"a_classes must have shape \(1,\) to match a_xyxy; got shape \(2,\)"),
        ((NONE, [], [0.0, 1.0, 2.0, 3.0], [0]), r"b_xyxy must have shape \(N, 4\).*got shape \(4,\)"),
        (([SQ], [-2], NONE, []), r"a_classes must be >= 0; got -2"),
    ],
)
def test_agreement_shape_errors(args, message):
    with pytest.raises(ValueError, match=message):
        box_agreement(*args)
    with pytest.raises(ValueError, match=message):
        merge_reviews(*args)


def test_merge_hand_computed():
    merged = merge_reviews(A_BOXES, A_CLS, B_BOXES, B_CLS)
    assert merged.agreed == (
        ReviewedBox("ab", 0, (0.0, 0.0, 10.0, 11.0)),
        ReviewedBox("ab", 0, (40.5, 0.0, 50.5, 10.0)),
    )
    assert merged.third_look == (
        ReviewedBox("a", 1, (20.0, 0.0, 30.0, 10.0)),
        ReviewedBox("b", 2, (20.0, 0.0, 30.0, 10.0)),
        ReviewedBox("b", 1, (60.0, 0.0, 70.0, 10.0)),
    )
    assert merged.needs_third_look
    np.testing.assert_allclose(merged.agreed_xyxy(), [[0, 0, 10, 11], [40.5, 0, 50.5, 10]])
    np.testing.assert_array_equal(merged.agreed_classes(), [0, 0])
    assert len(merged.agreed) == box_agreement(A_BOXES, A_CLS, B_BOXES, B_CLS).matched


def test_merge_full_agreement_and_empty():
    merged = merge_reviews([SQ], [3], [SQ], [3])
    assert merged.agreed == (ReviewedBox("ab", 3, tuple(SQ)),) and not merged.needs_third_look
    empty = merge_reviews(NONE, [], NONE, [])
    assert empty.agreed == () and empty.third_look == ()
    assert empty.agreed_xyxy().shape == (0, 4) and empty.agreed_classes().shape == (0,)


# Hand-computed kappa: 4 images, 3 classes -> 12 (image, class) presence items.
#   image:    0      1        2      3
#   A:       {0}   {0, 1}    {}     {2}      A "present" = 4 of 12, q_a = 1/3
#   B:       {0}   {1}       {2}    {2}      B "present" = 4 of 12, q_b = 1/3
#   disagreements: (image 1, class 0) and (image 2, class 2) -> p_o = 10/12 = 5/6
#   p_e = q_a q_b + (1 - q_a)(1 - q_b) = 1/9 + 4/9 = 5/9
#   kappa = (5/6 - 5/9) / (1 - 5/9) = (5/18) / (4/9) = 5/8 = 0.625
KAPPA_A = [[0], [0, 1, 1], [], [2]]  # repeats only count once
KAPPA_B = [[0, 0], [1], [2], [2]]


def test_presence_kappa_hand_computed():
    got = presence_kappa(KAPPA_A, KAPPA_B, num_classes=3)
    assert got == KappaResult(kappa=pytest.approx(0.625), observed=pytest.approx(5 / 6),
                              expected=pytest.approx(5 / 9), items=12, degenerate=False)


@pytest.mark.parametrize(
    ("a", "b", "num_classes", "kappa", "degenerate"),
    [
        ([[0], [1]], [[0], [1]], 2, 1.0, False),  # perfect agreement with variation
        ([[], []], [[], []], 2, 1.0, True),  # all absent for both: p_e = p_o = 1
        ([[0], [0]], [[0], [0]], 1, 1.0, True),  # all present for both
        ([[0], [0]], [[], []], 1, 0.0, False),  # A all present, B all absent: p_o = p_e = 0
        # 2 images x 1 class: A {present, absent}, B {absent, present}: p_o = 0, p_e = 1/2 -> -1
        ([[0], []], [[], [0]], 1, -1.0, False),
    ],
)
def test_presence_kappa_table(a, b, num_classes, kappa, degenerate):
    got = presence_kappa(a, b, num_classes)
    assert got.kappa == pytest.approx(kappa)
    assert got.degenerate is degenerate
    if degenerate:
        assert got.expected == 1.0 and got.observed == 1.0


@pytest.mark.parametrize(
    ("a", "b", "num_classes", "message"),
    [
        ([[0]], [[0], [1]], 2, r"expected 1 images in b_classes, got 2"),
        ([], [], 2, r"at least one image"),
        ([[0]], [[0]], 0, r"num_classes must be >= 1; got 0"),
        ([[2]], [[0]], 2, r"a_classes\[0\] class ids must lie in \[0, 2\); got \[2\]"),
        ([[0]], [[-1]], 2, r"b_classes\[0\] class ids must lie in \[0, 2\)"),
        ([[0.5]], [[0]], 2, r"a_classes\[0\] must hold integer class ids"),
    ],
)
def test_presence_kappa_errors(a, b, num_classes, message):
    with pytest.raises(ValueError, match=message):
        presence_kappa(a, b, num_classes)
