"""Outbox tables: durable rows of work to deliver to another service, retried until delivered.

Two outboxes use this: the serving API's flagged images (``flag_outbox``, delivered to Label
Studio) and the webhook receiver's learn requests (``learn_requests``, delivered to Prefect).
Each row is written in the same transaction as the fact that needs delivering, so an outage, a
crash or a restart never loses it; :class:`~labelwise.outbox_worker.OutboxWorker` delivers due
rows off the request path.

:class:`Outbox` is the row life cycle over one table with :class:`~labelwise.catalog.models.
OutboxColumns`: due rows, a compare-and-set claim (two workers never deliver one row at once),
delivered, failed with a retry time, all due at start-up, and counts for the status pages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import func, select, update

from labelwise.catalog.base import rows_updated
from labelwise.catalog.models import OutboxColumns, ProjectRow, utcnow
from labelwise.catalog.records import ProjectRecord
from labelwise.catalog.repository import Catalog

PENDING, DELIVERED = "pending", "delivered"


class OutboxItem(Protocol):
    """What the worker needs of an item: its row id and how many tries it had."""

    @property
    def id(self) -> int: ...

    @property
    def attempts(self) -> int: ...


Item = TypeVar("Item", bound=OutboxItem)


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored datetime is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds before the next try after ``attempts`` failed tries (>= 1): base * 2**(n-1)."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1; got {attempts}")
    return float(min(max_s, base_s * 2 ** min(attempts - 1, 30)))


class Outbox(Generic[Item]):
    """The rows of one outbox table.

    Args:
        model: the row class (an :class:`OutboxColumns` table).
        to_item: ``(row, project name) -> item`` (a frozen dataclass with ``id``/``attempts``).
        describe: a short name of an item for log lines (``"project/image"``).
    """

    def __init__(
        self,
        catalog: Catalog,
        model: type[OutboxColumns],
        to_item: Callable[[Any, str], Item],
        describe: Callable[[Item], str],
    ) -> None:
        self.catalog, self.model, self.to_item, self.describe = catalog, model, to_item, describe

    def due(self, now: datetime, limit: int = 50) -> list[Item]:
        """Pending rows whose next attempt is due, oldest first."""
        m = self.model
        with self.catalog.session() as s:
            rows = s.execute(
                select(m, ProjectRow.name)
                .join(ProjectRow, ProjectRow.id == m.project_id)
                .where(m.status == PENDING, m.next_attempt_at <= now)
                .order_by(m.next_attempt_at, m.id)
                .limit(limit)
            ).all()
            return [self.to_item(row, name) for row, name in rows]

    def next_due(self) -> datetime | None:
        m = self.model
        with self.catalog.session() as s:
            found = s.scalar(select(func.min(m.next_attempt_at)).where(m.status == PENDING))
            return aware(found) if found is not None else None

    def claim(self, item: Item, now: datetime, lease_s: float) -> bool:
        """Take a due row for ``lease_s`` seconds (compare-and-set), so two workers (replicas)
        never deliver the same row at once; False when another worker took it first."""
        m = self.model
        with self.catalog.session() as s, s.begin():
            return rows_updated(s, update(m)
                                .where(m.id == item.id, m.status == PENDING, m.attempts == item.attempts,
                                       m.next_attempt_at <= now)
                                .values(next_attempt_at=now + timedelta(seconds=lease_s))) == 1

    def mark_delivered(self, row_id: int, **values: Any) -> None:
        """The row went through (``values``: extra columns to record, e.g. the run created)."""
        m = self.model
        with self.catalog.session() as s, s.begin():
            s.execute(update(m).where(m.id == row_id).values(
                status=DELIVERED, delivered_at=utcnow(), last_error=None,
                attempts=m.attempts + 1, **values))

    def mark_failed(self, row_id: int, error: str, retry_at: datetime) -> None:
        m = self.model
        with self.catalog.session() as s, s.begin():
            s.execute(update(m).where(m.id == row_id).values(
                attempts=m.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at))

    def make_all_due(self, now: datetime) -> int:
        """Every pending row becomes due now (used at start); returns how many are pending."""
        m = self.model
        with self.catalog.session() as s, s.begin():
            return rows_updated(s, update(m).where(m.status == PENDING).values(next_attempt_at=now))

    def pending_count(self) -> int:
        """Pending rows of every project."""
        m = self.model
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).where(m.status == PENDING)) or 0)

    def counts(self, project: ProjectRecord) -> dict[str, Any]:
        """``{"pending", "delivered", "oldest_pending_at", "last_error"}`` of one project."""
        m = self.model
        with self.catalog.session() as s:
            rows = s.execute(
                select(m.status, func.count()).where(m.project_id == project.id)
                .group_by(m.status)
            ).all()
            oldest = s.execute(
                select(m.created_at, m.last_error)
                .where(m.project_id == project.id, m.status == PENDING)
                .order_by(m.id).limit(1)
            ).first()
        counts: dict[str, Any] = {PENDING: 0, DELIVERED: 0}
        counts.update({status: n for status, n in rows})
        counts["oldest_pending_at"] = aware(oldest[0]).isoformat() if oldest else None
        counts["last_error"] = oldest[1] if oldest else None
        return counts
