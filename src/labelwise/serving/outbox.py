"""The flag outbox: flagged images waiting for Label Studio, and the worker that delivers them.

A flagged image gets a row in ``flag_outbox`` in the same request that stored it in the pool, so
a Label Studio outage, a crash or a restart never loses it. :class:`DeliveryWorker` (the generic
:class:`~labelwise.outbox_worker.OutboxWorker` over this table) delivers due rows one by one, off
the request path, retrying failures with backoff until they go through; on start it makes every
pending row due at once (drain after a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.catalog.models import FlagOutboxRow, utcnow
from labelwise.catalog.outbox import DELIVERED, PENDING, Outbox, aware, retry_delay
from labelwise.outbox_worker import OutboxWorker

log = logging.getLogger(__name__)
__all__ = ["DELIVERED", "PENDING", "DeliveryWorker", "OutboxItem", "add_flag", "flag_outbox",
           "retry_delay"]


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


def _item(row: FlagOutboxRow, project: str) -> OutboxItem:
    return OutboxItem(row.id, project, row.image_id, row.model_version, row.upload_group,
                      row.evaluation_score, dict(row.scores or {}), row.attempts)


def flag_outbox(catalog: Catalog) -> Outbox[OutboxItem]:
    """The ``flag_outbox`` table's rows as :class:`OutboxItem`."""
    return Outbox(catalog, FlagOutboxRow, _item, lambda i: f"{i.project}/{i.image_id}")


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
    return [aware(t).timestamp() for t in found]


def outbox_counts(catalog: Catalog, project: ProjectRecord) -> dict[str, Any]:
    """``{"pending", "delivered", "oldest_pending_at", "last_error"}`` of one project."""
    return flag_outbox(catalog).counts(project)


class DeliveryWorker(OutboxWorker[OutboxItem]):
    """Delivers due flag rows with ``deliver(item)`` in a daemon thread (see
    :class:`~labelwise.outbox_worker.OutboxWorker` for the arguments)."""

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
        super().__init__(flag_outbox(catalog), deliver, base_s=base_s, max_s=max_s,
                         idle_s=idle_s, lease_s=lease_s, now=now, name="labelwise-flag-delivery")
        self.catalog = catalog
