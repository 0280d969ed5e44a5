"""Rate caps (injectable clock) and the near-duplicate guard."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.serving.guards import NearDuplicateGuard, RateCaps, nearest_distance


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# (caps per minute/hour/day, [(seconds to advance, expected result of try_acquire)])
RATE_CASES = {
    # flags at t=0 and t=1; the one at t=0 leaves the window at t=60, the one at t=1 at t=61
    "minute-cap": (
        (2, None, None),
        [
            (0, None),
            (1, None),
            (1, "rate_cap_minute"),
            (57, "rate_cap_minute"),
            (1, None),
            (0.5, "rate_cap_minute"),
            (0.6, None),
        ],
    ),
    "hour-cap": (
        (None, 3, None),
        [(0, None), (100, None), (100, None), (100, "rate_cap_hour"), (3300, None)],
    ),
    "day-cap": (
        (None, None, 2),
        [(0, None), (7200, None), (7200, "rate_cap_day"), (86400 - 7200, None)],
    ),
    "minute-before-hour": (
        (1, 1, 1),
        [(0, None), (1, "rate_cap_minute"), (60, "rate_cap_hour"), (3600, "rate_cap_day")],
    ),
    "zero-means-never": ((0, None, None), [(0, "rate_cap_minute"), (1000, "rate_cap_minute")]),
    "no-caps": ((None, None, None), [(0, None)] * 50),
}


@pytest.mark.parametrize("case", list(RATE_CASES), ids=list(RATE_CASES))
def test_rate_caps_sliding_windows(case):
    caps, timeline = RATE_CASES[case]
    clock = Clock()
    rc = RateCaps(*caps, clock=clock)
    got = []
    for advance, _ in timeline:
        clock.t += advance
        got.append(rc.try_acquire("p"))
    assert got == [expected for _, expected in timeline]


def test_rate_caps_are_per_project_and_report_usage():
    clock = Clock()
    rc = RateCaps(1, 10, 100, clock=clock)
    assert rc.try_acquire("a") is None
    assert rc.blocked("a") == "rate_cap_minute"
    assert rc.blocked("b") is None and rc.try_acquire("b") is None
    assert rc.usage("a") == {
        "minute": {"used": 1, "cap": 1},
        "hour": {"used": 1, "cap": 10},
        "day": {"used": 1, "cap": 100},
    }
    clock.t += 61
    assert rc.usage("a")["minute"]["used"] == 0 and rc.usage("a")["hour"]["used"] == 1


def test_seeded_flags_count_after_a_restart():
    clock = Clock()
    rc = RateCaps(None, None, 3, clock=clock)
    rc.seed("p", [clock.t - 90000, clock.t - 5000, clock.t - 10])  # the first is older than a day
    assert rc.usage("p")["day"]["used"] == 2
    assert rc.try_acquire("p") is None
    assert rc.try_acquire("p") == "rate_cap_day"


def test_negative_caps_are_refused():
    with pytest.raises(ValueError, match="rate cap per hour must be >= 0 or None; got -1"):
        RateCaps(1, -1, None)


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(
    ("vector", "refs", "threshold", "duplicate", "nearest"),
    [
        ([1, 0, 0], {"a": [1, 0, 0]}, 0.05, True, "a"),  # identical: distance 0
        ([1, 0, 0], {"a": [2, 0, 0]}, 0.05, True, "a"),  # scale does not matter
        ([1, 0.1, 0], {"a": [1, 0, 0], "b": [0, 1, 0]}, 0.05, True, "a"),  # 1 - cos = 0.005
        ([1, 0.5, 0], {"a": [1, 0, 0]}, 0.05, False, "a"),  # 1 - cos = 0.106
        ([1, 0, 0], {"a": [-1, 0, 0]}, 0.05, False, "a"),  # opposite: distance 2
        ([1, 0, 0], {}, 0.05, False, None),  # nothing queued yet
        ([1, 0, 0], {"a": [1, 0, 0]}, 0.0, False, "a"),  # threshold 0 disables
        ([1, 0, 0], {"a": [1, 0]}, 0.05, False, None),  # other embedder's size is ignored
        ([0, 0, 0], {"a": [1, 0, 0]}, 0.05, False, "a"),  # zero vector: orthogonal to all
    ],
)
def test_near_duplicate_guard(vector, refs, threshold, duplicate, nearest):
    guard = NearDuplicateGuard(threshold)
    check = guard.check(
        np.asarray(vector, np.float32), {k: np.asarray(v, np.float32) for k, v in refs.items()}
    )
    assert check.duplicate is duplicate
    assert check.nearest == nearest


def test_nearest_distance_values_and_shapes():
    row, dist = nearest_distance(_unit([1, 1]), np.stack([_unit([0, 1]), _unit([1, 1.01])]))
    assert row == 1 and dist == pytest.approx(0.0, abs=1e-4)
    assert nearest_distance(np.ones(3), np.zeros((0, 3))) is None
    with pytest.raises(ValueError, match=r"others must be \(M, 3\) to match vector; got \(2, 2\)"):
        nearest_distance(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 2\]; got 3"):
        NearDuplicateGuard(3)
