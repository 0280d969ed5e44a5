"""Catalog operations behind the Label Studio webhooks: find projects, images and rounds by
their Label Studio ids, and record annotation events once each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from labelwise.catalog.base import CatalogMixin
from labelwise.catalog.models import ImageRow, ProjectRow, ReviewEventRow
from labelwise.catalog.records import (
    ImageRecord,
    ProjectRecord,
    _image_record,
    _project_record,
)


class ReviewEventsMixin(CatalogMixin):
    """Label Studio review events of :class:`~labelwise.catalog.Catalog`."""

    def project_by_ls_id(self, ls_project_id: int) -> ProjectRecord | None:
        """The project linked to a Label Studio project id (see :meth:`set_ls_project`), if any."""
        with self.session() as s:
            row = s.scalar(select(ProjectRow).where(ProjectRow.ls_project_id == ls_project_id)
                           .order_by(ProjectRow.id).limit(1))
            return None if row is None else _project_record(row)

    def image_by_ls_task(self, project: ProjectRecord, ls_task_id: int) -> ImageRecord | None:
        """The image whose Label Studio task is ``ls_task_id``, if any."""
        with self.session() as s:
            row = s.scalar(select(ImageRow).where(ImageRow.project_id == project.id,
                                                  ImageRow.ls_task_id == ls_task_id).limit(1))
            return None if row is None else _image_record(row)

    def round_images(self, project: ProjectRecord, number: int) -> list[ImageRecord]:
        """Images queued in round ``number`` (whatever their status now), ordered by id."""
        with self.session() as s:
            rows = s.scalars(select(ImageRow).where(ImageRow.project_id == project.id,
                                                    ImageRow.queued_round == number)
                             .order_by(ImageRow.image_id)).all()
            return [_image_record(r) for r in rows]

    def record_review_event(
        self,
        project: ProjectRecord,
        *,
        ls_task_id: int,
        round_number: int | None,
        action: str,
        annotation_id: int | None,
        was_cancelled: bool,
        event_key: str,
    ) -> bool:
        """Store one annotation event; False (nothing stored) when ``event_key`` is known."""
        try:
            with self.session() as s, s.begin():
                known = s.scalar(select(ReviewEventRow.id).where(
                    ReviewEventRow.project_id == project.id, ReviewEventRow.event_key == event_key))
                if known is not None:
                    return False
                s.add(ReviewEventRow(project_id=project.id, ls_task_id=ls_task_id,
                                     round_number=round_number, action=action,
                                     annotation_id=annotation_id, was_cancelled=was_cancelled,
                                     event_key=event_key))
            return True
        except IntegrityError:  # the same event recorded concurrently
            return False

    def review_events(
        self,
        project: ProjectRecord,
        round_number: int | None = None,
        annotation_ids: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded events, oldest first: ``ls_task_id, round_number, action, annotation_id,
        was_cancelled, at``; optionally only those of a round or of some annotations."""
        with self.session() as s:
            q = select(ReviewEventRow).where(ReviewEventRow.project_id == project.id)
            if round_number is not None:
                q = q.where(ReviewEventRow.round_number == round_number)
            if annotation_ids is not None:
                q = q.where(ReviewEventRow.annotation_id.in_(list(annotation_ids)))
            return [{"ls_task_id": r.ls_task_id, "round_number": r.round_number,
                     "action": r.action, "annotation_id": r.annotation_id,
                     "was_cancelled": r.was_cancelled, "at": r.at}
                    for r in s.scalars(q.order_by(ReviewEventRow.id)).all()]
