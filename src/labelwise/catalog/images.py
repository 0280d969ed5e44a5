"""Catalog operations on images: add files, query by status or id, move them through the queue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import func, select, update

from labelwise.catalog.base import CatalogMixin, rows_updated
from labelwise.catalog.models import ImageRow
from labelwise.catalog.records import (
    AddReport,
    CatalogError,
    ImageRecord,
    ProjectRecord,
    _image_record,
)
from labelwise.domain import ImageStatus
from labelwise.images import DEFAULT_MAX_PIXELS, ImageReadError, expand_sources, read_image_info


class ImagesMixin(CatalogMixin):
    """Images of :class:`~labelwise.catalog.Catalog`."""

    def add_images(
        self,
        project: ProjectRecord,
        source: str | Path | Iterable[Path],
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> AddReport:
        """Add image files; bad files are reported and skipped, duplicates ignored.

        ``source`` is a file, folder or glob (see :func:`labelwise.images.expand_sources`) or
        an iterable of paths. Identity is the content hash, so the same picture under two
        names is stored once. A bad file (missing, zero bytes, not an image, truncated, or
        more than ``max_pixels`` pixels: ``images.max_pixels`` of the settings) lands in
        ``report.failed`` with the reason; the good files are added all the same. Sizes are
        the EXIF-oriented image's (:mod:`labelwise.images`); an image already in the catalog
        with another stored size (added before that rule) gets the oriented size
        (``report.resized``).
        """
        paths = expand_sources(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
        report = AddReport()
        infos = []
        for path in paths:
            try:
                infos.append(read_image_info(path, max_pixels))
            except ImageReadError as exc:
                report.failed.append((str(path), str(exc)))
        with self.session() as s, s.begin():
            known = {
                image_id: (width, height)
                for image_id, width, height in s.execute(
                    select(ImageRow.image_id, ImageRow.width, ImageRow.height).where(
                        ImageRow.project_id == project.id
                    )
                ).all()
            }
            for info in infos:
                if info.image_id in known:
                    report.existing.append(info.image_id)
                    if known[info.image_id] != (info.width, info.height):
                        s.execute(
                            update(ImageRow)
                            .where(
                                ImageRow.project_id == project.id,
                                ImageRow.image_id == info.image_id,
                            )
                            .values(width=info.width, height=info.height)
                        )
                        known[info.image_id] = (info.width, info.height)
                        report.resized.append(info.image_id)
                    continue
                known[info.image_id] = (info.width, info.height)
                s.add(
                    ImageRow(
                        project_id=project.id,
                        image_id=info.image_id,
                        path=str(info.path),
                        width=info.width,
                        height=info.height,
                    )
                )
                report.added.append(info.image_id)
        return report

    def images(
        self,
        project: ProjectRecord,
        status: ImageStatus | Sequence[ImageStatus] | None = None,
        image_ids: Sequence[str] | None = None,
    ) -> list[ImageRecord]:
        """Images of a project (ordered by id), optionally filtered by status or id."""
        with self.session() as s:
            q = select(ImageRow).where(ImageRow.project_id == project.id)
            if status is not None:
                wanted = [status] if isinstance(status, ImageStatus) else list(status)
                q = q.where(ImageRow.status.in_([w.value for w in wanted]))
            if image_ids is not None:
                q = q.where(ImageRow.image_id.in_(list(image_ids)))
            return [_image_record(r) for r in s.scalars(q.order_by(ImageRow.image_id)).all()]

    def image_ids(
        self, project: ProjectRecord, status: ImageStatus | Sequence[ImageStatus] | None = None
    ) -> list[str]:
        """The ids of a project's images (ordered like :meth:`images`), optionally by status:
        one column, no record per image, for pool-wide sets."""
        with self.session() as s:
            q = select(ImageRow.image_id).where(ImageRow.project_id == project.id)
            if status is not None:
                wanted = [status] if isinstance(status, ImageStatus) else list(status)
                q = q.where(ImageRow.status.in_([w.value for w in wanted]))
            return list(s.scalars(q.order_by(ImageRow.image_id)).all())

    def image(self, project: ProjectRecord, image_id: str) -> ImageRecord:
        found = self.images(project, image_ids=[image_id])
        if not found:
            raise CatalogError(f"project {project.name!r} has no image {image_id!r}")
        return found[0]

    def require_images(self, project: ProjectRecord, image_ids: Sequence[str]) -> list[ImageRecord]:
        """The records of ``image_ids`` in the given order; CatalogError names unknown ids."""
        records = {r.image_id: r for r in self.images(project, image_ids=image_ids)}
        missing = [i for i in image_ids if i not in records]
        if missing:
            raise CatalogError(f"project {project.name!r} has no image(s) {missing[:10]}")
        return [records[i] for i in image_ids]

    def status_counts(self, project: ProjectRecord) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(ImageRow.status, func.count())
                .where(ImageRow.project_id == project.id)
                .group_by(ImageRow.status)
            ).all()
        counts = {st.value: 0 for st in ImageStatus}
        counts.update({status: n for status, n in rows})
        return counts

    def set_status(
        self, project: ProjectRecord, image_ids: Sequence[str], status: ImageStatus
    ) -> int:
        with self.session() as s, s.begin():
            return rows_updated(s, update(ImageRow)
                                .where(ImageRow.project_id == project.id,
                                       ImageRow.image_id.in_(list(image_ids)))
                                .values(status=status.value))

    def mark_queued(
        self,
        project: ProjectRecord,
        task_ids: dict[str, int],
        round_number: int | None,
        group: str | None,
    ) -> None:
        """Record Label Studio task ids and mark those images queued, in one transaction."""
        with self.session() as s, s.begin():
            for image_id, task_id in task_ids.items():
                s.execute(
                    update(ImageRow)
                    .where(ImageRow.project_id == project.id, ImageRow.image_id == image_id)
                    .values(
                        status=ImageStatus.QUEUED.value,
                        ls_task_id=task_id,
                        queued_round=round_number,
                        upload_group=group,
                    )
                )
