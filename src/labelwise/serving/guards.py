"""Guards that keep the serving API from flooding annotators.

* :class:`RateCaps`: at most N flags per project per minute, hour and day (sliding windows over
  the flag times; the clock is injectable, seconds since the epoch by default, so caps survive
  a restart when seeded from the outbox's creation times).
* :func:`nearest_distance` / :class:`NearDuplicateGuard`: suppress a flag when the image's
  embedding lies within a cosine distance (``1 - cos``, on [0, 2]) of an image already queued or
  flagged.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

WINDOWS: tuple[tuple[str, float], ...] = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))


class RateCaps:
    """Sliding-window flag counters per project; thread-safe.

    Args:
        per_minute, per_hour, per_day: caps (None = no cap; 0 = never flag).
        clock: seconds (float), monotone non-decreasing in practice; default :func:`time.time`.
    """

    def __init__(
        self,
        per_minute: int | None,
        per_hour: int | None,
        per_day: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.caps: dict[str, int | None] = {"minute": per_minute, "hour": per_hour, "day": per_day}
        for name, cap in self.caps.items():
            if cap is not None and cap < 0:
                raise ValueError(f"rate cap per {name} must be >= 0 or None; got {cap}")
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, project: str, now: float) -> deque[float]:
        events = self._events.setdefault(project, deque())
        horizon = now - WINDOWS[-1][1]
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def _counts(self, events: deque[float], now: float) -> dict[str, int]:
        return {name: sum(1 for t in events if t > now - span) for name, span in WINDOWS}

    def _blocked(self, events: deque[float], now: float) -> str | None:
        counts = self._counts(events, now)
        for name, _span in WINDOWS:
            cap = self.caps[name]
            if cap is not None and counts[name] >= cap:
                return f"rate_cap_{name}"
        return None

    def blocked(self, project: str) -> str | None:
        """``rate_cap_<window>`` of the first full window (minute first), or None."""
        with self._lock:
            now = self.clock()
            return self._blocked(self._prune(project, now), now)

    def try_acquire(self, project: str) -> str | None:
        """Record one flag unless a window is full; returns None on success, else the reason."""
        with self._lock:
            now = self.clock()
            events = self._prune(project, now)
            reason = self._blocked(events, now)
            if reason is None:
                events.append(now)
            return reason

    def seed(self, project: str, times: Iterable[float]) -> None:
        """Add past flag times (seconds, same clock), e.g. from the outbox at start-up."""
        with self._lock:
            events = self._events.setdefault(project, deque())
            merged = sorted([*events, *times])
            events.clear()
            events.extend(merged)
            self._prune(project, self.clock())

    def usage(self, project: str) -> dict[str, dict[str, int | None]]:
        """``{window: {"used": n, "cap": cap}}`` for the project right now."""
        with self._lock:
            now = self.clock()
            counts = self._counts(self._prune(project, now), now)
            return {name: {"used": counts[name], "cap": self.caps[name]} for name, _ in WINDOWS}


def nearest_distance(vector: np.ndarray, others: np.ndarray) -> tuple[int, float] | None:
    """(row, cosine distance) of the row of ``others`` (M, d) closest to ``vector`` (d,).

    Cosine distance is ``1 - cos`` on [0, 2]; zero vectors are treated as orthogonal to all.
    None when ``others`` has no rows. ValueError when the dimensions differ.
    """
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    m = np.asarray(others, dtype=np.float64)
    if m.size == 0:
        return None
    if m.ndim != 2 or m.shape[1] != v.shape[0]:
        raise ValueError(f"others must be (M, {v.shape[0]}) to match vector; got {m.shape}")
    nv = np.linalg.norm(v)
    nm = np.linalg.norm(m, axis=1)
    denom = np.where((nm > 0) & (nv > 0), nm * nv, 1.0)
    cos = np.where((nm > 0) & (nv > 0), m @ v / denom, 0.0)
    dist = np.clip(1.0 - cos, 0.0, 2.0)
    row = int(np.argmin(dist))
    return row, float(dist[row])


@dataclass(frozen=True)
class DuplicateCheck:
    """Outcome of one near-duplicate check."""

    duplicate: bool
    distance: float | None  # to the nearest reference image, None without references
    nearest: str | None  # its image id


class NearDuplicateGuard:
    """Near-duplicate when the nearest reference is strictly closer than ``threshold``
    (cosine distance; 0 disables the guard)."""

    def __init__(self, threshold: float) -> None:
        if not 0.0 <= threshold <= 2.0:
            raise ValueError(f"near-duplicate threshold must lie in [0, 2]; got {threshold}")
        self.threshold = threshold

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def check(self, vector: np.ndarray, references: dict[str, np.ndarray]) -> DuplicateCheck:
        """Compare ``vector`` (d,) with reference embeddings by image id."""
        ids = [k for k, v in references.items() if np.asarray(v).shape == np.asarray(vector).shape]
        if not ids:
            return DuplicateCheck(False, None, None)
        found = nearest_distance(vector, np.stack([references[i] for i in ids]))
        assert found is not None
        row, dist = found
        return DuplicateCheck(self.enabled and dist < self.threshold, dist, ids[row])
