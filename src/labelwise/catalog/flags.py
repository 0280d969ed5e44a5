"""Catalog operations on the serving API's flagged images (the ``flag_outbox`` table).

An image flagged by the serving API gets one row per project, written in the request that stored
it in the pool and delivered to Label Studio later (:class:`labelwise.serving.outbox.
DeliveryWorker`). Here: add a flag (once per image), check one, list the flagged ids, the flag
times since an instant (the rate caps), and the table as an :class:`~labelwise.catalog.outbox.
Outbox` of :class:`FlaggedImage` for the delivery worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from labelwise.catalog.base import CatalogMixin
from labelwise.catalog.models import FlagOutboxRow
from labelwise.catalog.records import CatalogError, ProjectRecord

if TYPE_CHECKING:
    from labelwise.catalog.outbox import Outbox
    from labelwise.catalog.repository import Catalog


@dataclass(frozen=True)
class FlaggedImage:
    """One flagged image to deliver (a ``flag_outbox`` row).

    Attributes:
        id: the row id (the outbox's handle).
        project: the project's name.
        image_id: the image's content id.
        model_version: the model that flagged it.
        group: the upload group whose serving round it joins.
        routing_score: the score that flagged it.
        scores: the per-measure scores behind it.
        attempts: delivery tries so far.
    """

    id: int
    project: str
    image_id: str
    model_version: str
    group: str
    routing_score: float
    scores: dict[str, float] = field(default_factory=dict)
    attempts: int = 0


def _flagged_image(row: FlagOutboxRow, project: str) -> FlaggedImage:
    return FlaggedImage(row.id, project, row.image_id, row.model_version, row.upload_group,
                        row.routing_score, dict(row.scores or {}), row.attempts)


class FlagsMixin(CatalogMixin):
    """Flagged images of :class:`~labelwise.catalog.Catalog`."""

    def add_flag(
        self,
        project: ProjectRecord,
        image_id: str,
        model_version: str,
        group: str,
        routing_score: float,
        scores: Mapping[str, float],
    ) -> bool:
        """Store a pending flag of ``image_id``; False (nothing stored) when the image was
        flagged before, also by another process at the same instant (one row per image).

        Raises:
            CatalogError: an empty ``image_id`` or ``group``.
        """
        if not image_id or not group:
            raise CatalogError(
                f"a flag needs an image_id and an upload group; got image_id={image_id!r}, "
                f"group={group!r}"
            )
        try:
            with self.session() as s, s.begin():
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
                        routing_score=float(routing_score),
                        scores={k: float(v) for k, v in scores.items()},
                    )
                )
                return True
        except IntegrityError:  # flagged by another process between the check and the insert
            if self.has_flag(project, image_id):
                return False
            raise

    def has_flag(self, project: ProjectRecord, image_id: str) -> bool:
        """Whether ``image_id`` was flagged in ``project`` (delivered or not)."""
        with self.session() as s:
            found = s.scalar(
                select(FlagOutboxRow.id).where(
                    FlagOutboxRow.project_id == project.id, FlagOutboxRow.image_id == image_id
                )
            )
            return found is not None

    def flagged_image_ids(self, project: ProjectRecord) -> list[str]:
        """Ids of the project's flagged images (delivered or not), in the order flagged."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(FlagOutboxRow.image_id)
                    .where(FlagOutboxRow.project_id == project.id)
                    .order_by(FlagOutboxRow.id)
                ).all()
            )

    def flags_since(self, project: ProjectRecord, since: datetime) -> list[datetime]:
        """When each of the project's flags at or after ``since`` was stored (UTC, oldest
        first).

        Raises:
            CatalogError: ``since`` is naive (every stored time is UTC; expected an aware one).
        """
        from labelwise.catalog.outbox import aware  # not at the top: it imports the Catalog

        if since.tzinfo is None:
            raise CatalogError(f"since must be timezone-aware (UTC); got naive {since.isoformat()}")
        with self.session() as s:
            found = s.scalars(
                select(FlagOutboxRow.created_at)
                .where(FlagOutboxRow.project_id == project.id, FlagOutboxRow.created_at >= since)
                .order_by(FlagOutboxRow.created_at, FlagOutboxRow.id)
            ).all()
        return [aware(t) for t in found]

    def flag_outbox(self) -> Outbox[FlaggedImage]:
        """The ``flag_outbox`` table as an outbox of :class:`FlaggedImage` (due rows, claims,
        delivered / failed, counts), for :class:`labelwise.serving.outbox.DeliveryWorker`."""
        from labelwise.catalog.outbox import Outbox

        return Outbox(cast("Catalog", self), FlagOutboxRow, _flagged_image,
                      lambda item: f"{item.project}/{item.image_id}")


__all__ = ["FlaggedImage", "FlagsMixin"]
