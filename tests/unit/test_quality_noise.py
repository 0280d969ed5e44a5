"""The simulated annotator's label noise: each kind at its rate, recorded exactly as injected."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.review.simulate import (
    ADD_SIDE_RANGE,
    SHIFT_MAX_IOU,
    LabelNoise,
    apply_label_noise,
    box_iou,
    shift_box,
)

TRUTH = np.array([[0, 0.3, 0.3, 0.2, 0.2], [1, 0.7, 0.7, 0.2, 0.3], [2, 0.5, 0.5, 0.1, 0.1]])


@pytest.mark.parametrize(
    ("noise", "rows", "kinds"),
    [
        (LabelNoise(), 3, []),
        (LabelNoise(drop=1.0), 0, ["drop", "drop", "drop"]),
        (LabelNoise(add=1.0), 6, ["add", "add", "add"]),
        (LabelNoise(shift=1.0), 3, ["shift", "shift", "shift"]),
        (LabelNoise(swap=1.0), 3, ["swap", "swap", "swap"]),
        (LabelNoise(drop=1.0, swap=1.0, shift=1.0), 0, ["drop", "drop", "drop"]),  # dropped: no more
        (LabelNoise(swap=1.0, shift=1.0), 3, ["swap", "shift"] * 3),
    ],
)
def test_each_kind_at_rate_one(noise, rows, kinds):
    noisy, errors = apply_label_noise(TRUTH, 3, noise, np.random.default_rng(0), "img")
    assert noisy.shape == (rows, 5)
    assert [e.kind for e in errors] == kinds
    assert all(e.image_id == "img" for e in errors)


def test_recorded_errors_describe_the_noisy_and_the_true_boxes():
    noisy, errors = apply_label_noise(TRUTH, 3, LabelNoise(swap=1.0, shift=1.0),
                                      np.random.default_rng(1), "img")
    for i, (swap, shift) in enumerate(zip(errors[::2], errors[1::2])):
        assert swap.true_class_id == int(TRUTH[i, 0]) != swap.class_id == int(noisy[i, 0])
        assert shift.true_box == tuple(TRUTH[i, 1:]) and shift.box == tuple(noisy[i, 1:])
        assert box_iou(noisy[i, 1:], TRUTH[i, 1:]) < SHIFT_MAX_IOU
    _, added = apply_label_noise(TRUTH, 3, LabelNoise(add=1.0), np.random.default_rng(2), "img")
    lo, hi = ADD_SIDE_RANGE
    for e in added:
        cx, cy, w, h = e.box
        assert e.true_box is None and lo <= w <= hi and lo <= h <= hi
        assert w / 2 <= cx <= 1 - w / 2 and h / 2 <= cy <= 1 - h / 2 and 0 <= e.class_id < 3


@pytest.mark.parametrize("kind", ["drop", "add", "shift", "swap"])
def test_rates_are_met_and_one_rate_does_not_move_the_others(kind):
    many = np.tile(TRUTH, (400, 1))  # 1,200 boxes
    noise = LabelNoise(**{kind: 0.2})
    _, errors = apply_label_noise(many, 3, noise, np.random.default_rng(3), "img")
    assert abs(len(errors) / len(many) - 0.2) < 0.04
    # four draws per box whatever the rates: adding another kind keeps which boxes get this one
    other = "add" if kind != "add" else "drop"
    _, both = apply_label_noise(many, 3, LabelNoise(**{kind: 0.2, other: 0.2}),
                                np.random.default_rng(3), "img")
    assert sum(e.kind == kind for e in both) == len(errors)


def test_single_class_never_swaps_and_empty_images_get_nothing():
    one = TRUTH.copy()
    one[:, 0] = 0
    _, errors = apply_label_noise(one, 1, LabelNoise(swap=1.0), np.random.default_rng(0), "img")
    assert errors == []
    noisy, errors = apply_label_noise(np.zeros((0, 5)), 3, LabelNoise(add=1.0, drop=1.0),
                                      np.random.default_rng(0), "img")
    assert noisy.shape == (0, 5) and errors == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: LabelNoise(drop=1.5), "drop rate must be a probability in \\[0, 1\\]; got 1.5"),
        (lambda: LabelNoise(shift=-0.1), "shift rate must be a probability"),
        (lambda: apply_label_noise(TRUTH, 0, LabelNoise(), np.random.default_rng(0), "x"),
         "num_classes must be >= 1; got 0"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_shift_box_falls_back_when_no_candidate_qualifies():
    whole = np.array([0.5, 0.5, 1.0, 1.0])
    for seed in range(5):
        moved = shift_box(whole, np.random.default_rng(seed))
        assert box_iou(moved, whole) < SHIFT_MAX_IOU
