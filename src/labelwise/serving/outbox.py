"""The flag outbox: flagged images waiting for Label Studio, and the worker that delivers them.

A flagged image gets a row in ``flag_outbox`` in the same request that stored it in the pool, so
a Label Studio outage, a crash or a restart never loses it. :class:`DeliveryWorker` (a daemon
thread) delivers due rows one by one, off the request path; a failed delivery is retried after
``base_s * 2**(attempts - 1)`` seconds (capped at ``max_s``) until it goes through. On start the
worker makes every pending row due at once (drain after a restart).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, update

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.catalog.models import FlagOutboxRow, ProjectRow, utcnow

log = logging.getLogger(__name__)
PENDING, DELIVERED = "pending", "delivered"


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored datetime is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class OutboxItem:
    """One flagged image to deliver."""

    id: int
    project: str
    image_id: str
    model_version: str
    group: str
    evaluation_score: float
    scores: dict[str, float] = field(default_factory=dict)
    attempts: int = 0


def add_flag(
    catalog: Catalog,
    project: ProjectRecord,
    image_id: str,
    model_version: str,
    group: str,
    evaluation_score: float,
    scores: dict[str, float],
) -> bool:
    """Insert a pending row; False when the image was flagged before (rows are unique)."""
    with catalog.session() as s, s.begin():
        exists = s.scalar(
            select(FlagOutboxRow.id).where(
                FlagOutboxRow.project_id == project.id, FlagOutboxRow.image_id == image_id
            )
        )
        if exists is not None:
            return False
        s.add(
            FlagOutboxRow(
                project_id=project.id,
                image_id=image_id,
                model_version=model_version,
                upload_group=group,
                evaluation_score=float(evaluation_score),
                scores={k: float(v) for k, v in scores.items()},
            )
        )
        return True


def _item(row: FlagOutboxRow, project: str) -> OutboxItem:
    return OutboxItem(
        row.id,
        project,
        row.image_id,
        row.model_version,
        row.upload_group,
        row.evaluation_score,
        dict(row.scores or {}),
        row.attempts,
    )


def due_items(catalog: Catalog, now: datetime, limit: int = 50) -> list[OutboxItem]:
    """Pending rows whose next attempt is due, oldest first."""
    with catalog.session() as s:
        rows = s.execute(
            select(FlagOutboxRow, ProjectRow.name)
            .join(ProjectRow, ProjectRow.id == FlagOutboxRow.project_id)
            .where(FlagOutboxRow.status == PENDING, FlagOutboxRow.next_attempt_at <= now)
            .order_by(FlagOutboxRow.next_attempt_at, FlagOutboxRow.id)
            .limit(limit)
        ).all()
        return [_item(row, name) for row, name in rows]


def next_due(catalog: Catalog) -> datetime | None:
    with catalog.session() as s:
        found = s.scalar(
            select(func.min(FlagOutboxRow.next_attempt_at)).where(FlagOutboxRow.status == PENDING)
        )
        return _aware(found) if found is not None else None


def claim(catalog: Catalog, item: OutboxItem, now: datetime, lease_s: float) -> bool:
    """Take a due row for ``lease_s`` seconds (compare-and-set), so two workers (replicas of the
    API) never deliver the same row at once; False when another worker took it first."""
    with catalog.session() as s, s.begin():
        done = s.execute(
            update(FlagOutboxRow)
            .where(
                FlagOutboxRow.id == item.id,
                FlagOutboxRow.status == PENDING,
                FlagOutboxRow.attempts == item.attempts,
                FlagOutboxRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + timedelta(seconds=lease_s))
        )
        return (done.rowcount or 0) == 1


def is_flagged(catalog: Catalog, project: ProjectRecord, image_id: str) -> bool:
    with catalog.session() as s:
        return (
            s.scalar(
                select(FlagOutboxRow.id).where(
                    FlagOutboxRow.project_id == project.id, FlagOutboxRow.image_id == image_id
                )
            )
            is not None
        )


def mark_delivered(catalog: Catalog, row_id: int) -> None:
    with catalog.session() as s, s.begin():
        s.execute(
            update(FlagOutboxRow)
            .where(FlagOutboxRow.id == row_id)
            .values(
                status=DELIVERED,
                delivered_at=utcnow(),
                last_error=None,
                attempts=FlagOutboxRow.attempts + 1,
            )
        )


def mark_failed(catalog: Catalog, row_id: int, error: str, retry_at: datetime) -> None:
    with catalog.session() as s, s.begin():
        s.execute(
            update(FlagOutboxRow)
            .where(FlagOutboxRow.id == row_id)
            .values(
                attempts=FlagOutboxRow.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=retry_at,
            )
        )


def make_all_due(catalog: Catalog, now: datetime) -> int:
    """Every pending row becomes due now (used at start); returns how many are pending."""
    with catalog.session() as s, s.begin():
        done = s.execute(
            update(FlagOutboxRow).where(FlagOutboxRow.status == PENDING).values(next_attempt_at=now)
        )
        return int(done.rowcount or 0)


def outbox_counts(catalog: Catalog, project: ProjectRecord) -> dict[str, Any]:
    """``{"pending", "delivered", "oldest_pending_at", "last_error"}`` of one project."""
    with catalog.session() as s:
        rows = s.execute(
            select(FlagOutboxRow.status, func.count())
            .where(FlagOutboxRow.project_id == project.id)
            .group_by(FlagOutboxRow.status)
        ).all()
        oldest = s.execute(
            select(FlagOutboxRow.created_at, FlagOutboxRow.last_error)
            .where(FlagOutboxRow.project_id == project.id, FlagOutboxRow.status == PENDING)
            .order_by(FlagOutboxRow.id)
            .limit(1)
        ).first()
    counts: dict[str, Any] = {PENDING: 0, DELIVERED: 0}
    counts.update({status: n for status, n in rows})
    counts["oldest_pending_at"] = _aware(oldest[0]).isoformat() if oldest else None
    counts["last_error"] = oldest[1] if oldest else None
    return counts


def flagged_image_ids(catalog: Catalog, project: ProjectRecord) -> list[str]:
    with catalog.session() as s:
        return list(
            s.scalars(
                select(FlagOutboxRow.image_id).where(FlagOutboxRow.project_id == project.id)
            ).all()
        )


def flag_times(catalog: Catalog, project: ProjectRecord, since: datetime) -> list[float]:
    """Creation times (seconds since the epoch) of the project's rows since ``since``."""
    with catalog.session() as s:
        found = s.scalars(
            select(FlagOutboxRow.created_at).where(
                FlagOutboxRow.project_id == project.id, FlagOutboxRow.created_at >= since
            )
        ).all()
    return [_aware(t).timestamp() for t in found]


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds before the next try after ``attempts`` failed tries (>= 1): base * 2**(n-1)."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1; got {attempts}")
    return float(min(max_s, base_s * 2 ** min(attempts - 1, 30)))


class DeliveryWorker:
    """Delivers due outbox rows with ``deliver(item)`` in a daemon thread.

    Args:
        deliver: raises on failure (e.g. LabelStudioUnavailable); returns on success.
        base_s, max_s: retry backoff (see :func:`retry_delay`).
        idle_s: longest sleep between looks at the outbox (rows written by other processes).
        lease_s: how long a claimed row is hidden from other workers while it is delivered.
    """

    def __init__(
        self,
        catalog: Catalog,
        deliver: Callable[[OutboxItem], None],
        *,
        base_s: float = 1.0,
        max_s: float = 60.0,
        idle_s: float = 5.0,
        lease_s: float = 600.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.catalog = catalog
        self.deliver = deliver
        self.base_s, self.max_s, self.idle_s, self.lease_s = base_s, max_s, idle_s, lease_s
        self.now = now
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Make every pending row due and start draining."""
        make_all_due(self.catalog, self.now())
        self._thread = threading.Thread(
            target=self._run, name="labelwise-flag-delivery", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """A new row was written: look now instead of at the next timer."""
        self._wake.set()

    def run_once(self) -> int:
        """Try every due row once; returns how many were delivered."""
        done = 0
        for item in due_items(self.catalog, self.now()):
            if self._stop.is_set():
                break
            if not claim(self.catalog, item, self.now(), self.lease_s):
                continue  # another replica is delivering it
            try:
                self.deliver(item)
            except Exception as exc:  # noqa: BLE001 - every failure is retried later
                attempts = item.attempts + 1
                delay = retry_delay(attempts, self.base_s, self.max_s)
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                mark_failed(
                    self.catalog, item.id, self.last_error, self.now() + timedelta(seconds=delay)
                )
                log.warning(
                    "delivery of %s/%s failed (attempt %d, retry in %.1f s): %s",
                    item.project,
                    item.image_id,
                    attempts,
                    delay,
                    self.last_error,
                )
                continue
            mark_delivered(self.catalog, item.id)
            self.delivered += 1
            done += 1
        return done

    def _sleep_seconds(self) -> float:
        upcoming = next_due(self.catalog)
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
                log.warning("outbox loop failed: %s", self.last_error)
                wait = self.idle_s
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
