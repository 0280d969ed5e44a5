"""The worker that drains an outbox (:mod:`labelwise.catalog.outbox`) in a daemon thread.

It delivers due rows one by one with ``deliver(item)``; a failed delivery is retried after
``base_s * 2**(attempts - 1)`` seconds (capped at ``max_s``) until it goes through. On start it
makes every pending row due at once (drain after a restart); ``wake()`` makes it look now (a new
row was written); between looks it sleeps at most ``idle_s`` (rows written by other processes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic

from labelwise.catalog.models import utcnow
from labelwise.catalog.outbox import Item, Outbox, retry_delay

log = logging.getLogger(__name__)


class OutboxWorker(Generic[Item]):
    """Delivers due rows of ``outbox`` with ``deliver(item)``.

    Args:
        deliver: raises on failure (any exception: retried later); returns on success, a dict
            of extra columns to record on the row (or None).
        base_s, max_s: retry backoff in seconds (see :func:`retry_delay`).
        idle_s: longest sleep between looks at the outbox, seconds.
        lease_s: how long a claimed row is hidden from other workers while it is delivered.
        name: the thread's name.
    """

    def __init__(
        self,
        outbox: Outbox[Item],
        deliver: Callable[[Item], dict[str, Any] | None],
        *,
        base_s: float = 1.0,
        max_s: float = 60.0,
        idle_s: float = 5.0,
        lease_s: float = 600.0,
        now: Callable[[], datetime] = utcnow,
        name: str = "labelwise-outbox",
    ) -> None:
        self.outbox = outbox
        self.deliver = deliver
        self.base_s, self.max_s, self.idle_s, self.lease_s = base_s, max_s, idle_s, lease_s
        self.now = now
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Make every pending row due and start draining."""
        self.outbox.make_all_due(self.now())
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A new row was written: look now instead of at the next timer."""
        self._wake.set()

    def run_once(self) -> int:
        """Try every due row once; returns how many were delivered."""
        done = 0
        for item in self.outbox.due(self.now()):
            if self._stop.is_set():
                break
            if not self.outbox.claim(item, self.now(), self.lease_s):
                continue  # another replica is delivering it
            try:
                extra = self.deliver(item)
            except Exception as exc:  # noqa: BLE001 - every failure is retried later
                attempts = item.attempts + 1
                delay = retry_delay(attempts, self.base_s, self.max_s)
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.outbox.mark_failed(item.id, self.last_error,
                                        self.now() + timedelta(seconds=delay))
                log.warning("delivery of %s failed (attempt %d, retry in %.1f s): %s",
                            self.outbox.describe(item), attempts, delay, self.last_error)
                continue
            self.outbox.mark_delivered(item.id, **(extra or {}))
            self.delivered += 1
            done += 1
        return done

    def _sleep_seconds(self) -> float:
        upcoming = self.outbox.next_due()
        if upcoming is None:
            return self.idle_s
        return min(self.idle_s, max(0.0, (upcoming - self.now()).total_seconds()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                wait = self._sleep_seconds()
            except Exception as exc:  # noqa: BLE001 - e.g. database locked; try again soon
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: outbox loop failed: %s", self.name, self.last_error)
                wait = self.idle_s
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
