"""Loop rules: promotion gate and plateau."""

from __future__ import annotations

import pytest

from labelwise.promotion import decide_promotion, has_plateaued


@pytest.mark.parametrize(
    ("candidate", "champion", "tolerance", "promote"),
    [
        (0.30, None, 0.0, True),
        (0.31, 0.30, 0.0, True),
        (0.30, 0.30, 0.0, True),
        (0.29, 0.30, 0.0, False),
        (0.29, 0.30, 0.02, True),
        (0.27, 0.30, 0.02, False),
    ],
)
def test_promotion_gate(candidate, champion, tolerance, promote):
    assert decide_promotion(candidate, champion, tolerance).promote is promote


def test_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="tolerance must be >= 0; got -0.1"):
        decide_promotion(0.3, 0.2, -0.1)


@pytest.mark.parametrize(
    ("history", "epsilon", "rounds", "plateaued"),
    [
        ([0.1, 0.2, 0.3], 0.01, 2, False),
        ([0.1, 0.3, 0.301, 0.302], 0.01, 2, True),
        ([0.1, 0.3, 0.301, 0.35], 0.01, 2, False),
        ([0.3, 0.301], 0.01, 2, False),  # not enough rounds to tell
        ([0.3, 0.29, 0.28], 0.01, 2, True),  # falling counts as no gain
    ],
)
def test_plateau(history, epsilon, rounds, plateaued):
    assert has_plateaued(history, epsilon, rounds) is plateaued
