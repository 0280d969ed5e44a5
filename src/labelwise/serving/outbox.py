"""The flag outbox: flagged images waiting for Label Studio, and the worker that delivers them.

A flagged image gets a row in ``flag_outbox`` in the same request that stored it in the pool, so
a Label Studio outage, a crash or a restart never loses it. :class:`DeliveryWorker` (the generic
:class:`~labelwise.outbox_worker.OutboxWorker` over this table) delivers due rows one by one, off
the request path, retrying failures with backoff until they go through; on start it makes every
pending row due at once (drain after a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from labelwise.catalog import Catalog, FlaggedImage, ProjectRecord, utcnow
from labelwise.catalog.outbox import DELIVERED, PENDING, Outbox, retry_delay
from labelwise.outbox_worker import OutboxWorker

log = logging.getLogger(__name__)
__all__ = ["DELIVERED", "PENDING", "DeliveryWorker", "OutboxItem", "add_flag", "flag_outbox",
           "retry_delay"]

OutboxItem = FlaggedImage
"""One flagged image to deliver: the catalog's :class:`~labelwise.catalog.FlaggedImage`."""


def flag_outbox(catalog: Catalog) -> Outbox[OutboxItem]:
    """The ``flag_outbox`` table's rows as :class:`OutboxItem` (:meth:`Catalog.flag_outbox`)."""
    return catalog.flag_outbox()


def add_flag(
    catalog: Catalog,
    project: ProjectRecord,
    image_id: str,
    model_version: str,
    group: str,
    routing_score: float,
    scores: Mapping[str, float],
) -> bool:
    """Insert a pending row; False when the image was flagged before (rows are unique)."""
    return catalog.add_flag(project, image_id, model_version, group, routing_score, scores)


def is_flagged(catalog: Catalog, project: ProjectRecord, image_id: str) -> bool:
    """Whether ``image_id`` was flagged in ``project`` (delivered or not)."""
    return catalog.has_flag(project, image_id)


def flagged_image_ids(catalog: Catalog, project: ProjectRecord) -> list[str]:
    """Ids of the project's flagged images (delivered or not)."""
    return catalog.flagged_image_ids(project)


def flag_times(catalog: Catalog, project: ProjectRecord, since: datetime) -> list[float]:
    """Creation times (seconds since the epoch) of the project's rows since ``since``."""
    return [t.timestamp() for t in catalog.flags_since(project, since)]


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
