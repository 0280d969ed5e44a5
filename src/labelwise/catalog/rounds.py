"""Catalog operations on active-learning rounds: their scores and selection, status, params, and
the labels that come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update

from labelwise.catalog.base import CatalogMixin
from labelwise.catalog.models import ImageRow, LabelRow, RoundRow, ScoreRow
from labelwise.catalog.records import CatalogError, ProjectRecord
from labelwise.domain import ImageScore, ImageStatus


class RoundsMixin(CatalogMixin):
    """Rounds, scores and labels of :class:`~labelwise.catalog.Catalog`."""

    def next_round_number(self, project: ProjectRecord) -> int:
        with self.session() as s:
            current = s.scalar(select(func.max(RoundRow.number)).where(RoundRow.project_id == project.id))
            return 0 if current is None else int(current) + 1

    def record_round(
        self,
        project: ProjectRecord,
        number: int,
        strategy: str,
        model_version: str | None,
        params: dict[str, Any],
        scores: Sequence[ImageScore],
        selected: Sequence[str],
    ) -> int:
        """Store a round's scores and selection (replacing an unqueued proposal of that number)."""
        rank = {image_id: i for i, image_id in enumerate(selected)}
        with self.session() as s, s.begin():
            row = s.scalar(
                select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
            )
            if row is None:
                row = RoundRow(project_id=project.id, number=number)
                s.add(row)
            row.strategy, row.model_version, row.params = strategy, model_version, params
            s.flush()
            s.execute(delete(ScoreRow).where(ScoreRow.round_id == row.id))
            for sc in scores:
                s.add(ScoreRow(round_id=row.id, image_id=sc.image_id,
                               uncertainty_score=sc.uncertainty_score, scores=dict(sc.scores),
                               selected=sc.image_id in rank, rank=rank.get(sc.image_id)))
            return row.id

    def round_info(self, project: ProjectRecord, number: int) -> dict[str, Any]:
        with self.session() as s:
            row = s.scalar(
                select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
            )
            if row is None:
                raise CatalogError(f"project {project.name!r} has no round {number}")
            selected = s.scalars(
                select(ScoreRow.image_id).where(ScoreRow.round_id == row.id, ScoreRow.selected)
                .order_by(ScoreRow.rank)
            ).all()
            return {"number": row.number, "strategy": row.strategy, "model_version": row.model_version,
                    "params": row.params, "status": row.status, "selected": list(selected)}

    def transition_round(
        self, project: ProjectRecord, number: int, from_status: str | Sequence[str], to_status: str
    ) -> bool:
        """Atomically move a round from ``from_status`` to ``to_status`` (compare-and-set).

        True for exactly one caller when several race (webhook retries, reconciler, UI), so a
        continuation guarded by it runs once per batch.
        """
        allowed = [from_status] if isinstance(from_status, str) else list(from_status)
        with self.session() as s, s.begin():
            result = s.execute(
                update(RoundRow)
                .where(RoundRow.project_id == project.id, RoundRow.number == number,
                       RoundRow.status.in_(allowed))
                .values(status=to_status)
            )
            return (result.rowcount or 0) == 1

    def rounds(self, project: ProjectRecord, status: str | None = None) -> list[dict[str, Any]]:
        """Every round of the project (number, strategy, model_version, status), oldest first."""
        with self.session() as s:
            q = select(RoundRow).where(RoundRow.project_id == project.id)
            if status is not None:
                q = q.where(RoundRow.status == status)
            return [{"number": r.number, "strategy": r.strategy, "model_version": r.model_version,
                     "status": r.status, "params": r.params}
                    for r in s.scalars(q.order_by(RoundRow.number)).all()]

    def update_round_params(self, project: ProjectRecord, number: int, extra: dict[str, Any]) -> dict[str, Any]:
        """Merge ``extra`` into a round's params (figures recorded as the round proceeds)."""
        with self.session() as s, s.begin():
            row = s.scalar(select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number))
            if row is None:
                raise CatalogError(f"project {project.name!r} has no round {number}")
            row.params = {**(row.params or {}), **extra}
            return dict(row.params)

    def set_round_status(self, project: ProjectRecord, number: int, status: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
                      .values(status=status))

    # Labels -----------------------------------------------------------------------------
    def save_labels(
        self,
        project: ProjectRecord,
        labels: dict[str, np.ndarray],
        source: str,
        round_number: int | None = None,
        annotation_ids: dict[str, int] | None = None,
    ) -> int:
        """Store YOLO labels ((N, 5) [cls, cx, cy, w, h]) and mark the images labelled."""
        with self.session() as s, s.begin():
            for image_id, boxes in labels.items():
                arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
                row = s.scalar(select(LabelRow).where(LabelRow.project_id == project.id,
                                                      LabelRow.image_id == image_id))
                if row is None:
                    row = LabelRow(project_id=project.id, image_id=image_id)
                    s.add(row)
                row.boxes, row.source, row.labelled_round = arr.round(6).tolist(), source, round_number
                row.ls_annotation_id = (annotation_ids or {}).get(image_id)
                s.execute(update(ImageRow).where(ImageRow.project_id == project.id,
                                                 ImageRow.image_id == image_id)
                          .values(status=ImageStatus.LABELLED.value))
            return len(labels)

    def labels(self, project: ProjectRecord) -> dict[str, np.ndarray]:
        with self.session() as s:
            rows = s.scalars(select(LabelRow).where(LabelRow.project_id == project.id)).all()
            return {r.image_id: np.asarray(r.boxes, dtype=np.float64).reshape(-1, 5) for r in rows}
