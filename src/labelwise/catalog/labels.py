"""Catalog operations on reviewed labels: store YOLO rows per image (which marks it labelled),
and a segmentation label's instance outlines beside them; read them back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import and_, select, update

from labelwise.catalog.base import CatalogMixin
from labelwise.catalog.models import ImageRow, LabelRow
from labelwise.catalog.predictions import outline_text
from labelwise.catalog.records import ProjectRecord
from labelwise.domain import ImageStatus

if TYPE_CHECKING:
    from labelwise.masks import ImageSegments


class LabelsMixin(CatalogMixin):
    def save_labels(
        self,
        project: ProjectRecord,
        labels: dict[str, np.ndarray],
        source: str,
        round_number: int | None = None,
        annotation_ids: dict[str, int] | None = None,
        segments: Mapping[str, ImageSegments] | None = None,
    ) -> int:
        """Store YOLO labels ((N, 5) [cls, cx, cy, w, h]) and mark the images labelled.

        ``segments``: a segmentation label's instance outlines per image id, one per box row,
        same order and classes (refused otherwise, nothing stored); an image without an entry
        keeps no outlines.
        """
        outlines = {i: outline_text(labels[i], seg, f"label of image {i}")
                    for i, seg in (segments or {}).items() if i in labels}
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
                row.segments = outlines.get(image_id)
                s.execute(update(ImageRow).where(ImageRow.project_id == project.id,
                                                 ImageRow.image_id == image_id)
                          .values(status=ImageStatus.LABELLED.value))
            return len(labels)

    def label_rounds(self, project: ProjectRecord) -> dict[str, int | None]:
        """Image id -> the round its stored label came from (None: labelled outside a round)."""
        with self.session() as s:
            rows = s.execute(select(LabelRow.image_id, LabelRow.labelled_round)
                             .where(LabelRow.project_id == project.id)).all()
        return {str(image_id): (None if rnd is None else int(rnd)) for image_id, rnd in rows}

    def label_segments(self, project: ProjectRecord) -> dict[str, ImageSegments]:
        """The instance outlines of every label that has them (pixels of each image)."""
        from labelwise.masks import parse_segment_labels

        with self.session() as s:
            q = (select(LabelRow.image_id, LabelRow.segments, ImageRow.width, ImageRow.height)
                 .join(ImageRow, and_(ImageRow.project_id == LabelRow.project_id,
                                      ImageRow.image_id == LabelRow.image_id))
                 .where(LabelRow.project_id == project.id, LabelRow.segments.is_not(None)))
            return {image_id: parse_segment_labels(text, width, height, source=f"label of image {image_id}")
                    for image_id, text, width, height in s.execute(q).all()}

    def labels(self, project: ProjectRecord) -> dict[str, np.ndarray]:
        with self.session() as s:
            rows = s.scalars(select(LabelRow).where(LabelRow.project_id == project.id)).all()
            return {r.image_id: np.asarray(r.boxes, dtype=np.float64).reshape(-1, 5) for r in rows}
