"""Catalog operations on model outputs: per-image predictions and embeddings, by model version
or embedder. Arrays are stored as little-endian bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import aliased

from labelwise.catalog.base import CatalogMixin, in_chunks, insert_new
from labelwise.catalog.models import EmbeddingRow, ImageRow, PredictionRow
from labelwise.catalog.records import (
    CatalogError,
    ImageRecord,
    ProjectRecord,
    _detections,
    _image_record,
)
from labelwise.columnar import PackedDetections
from labelwise.domain import Detections, ImageStatus

if TYPE_CHECKING:
    from labelwise.masks import ImageSegments

PACK_CHUNK = 20_000
"""Images per :class:`~labelwise.columnar.PackedDetections` chunk when streaming predictions."""
PENDING_CHUNK = 1_000
"""Images per chunk of :meth:`PredictionsMixin.pending_images`."""


@dataclass(frozen=True)
class PendingImage:
    """An image auto-label still has work for: a prediction from the model version (only
    unlabelled images are predicted), an embedding from the embedder, or both."""

    record: ImageRecord
    needs_prediction: bool
    needs_embedding: bool


@dataclass(frozen=True)
class PendingCounts:
    """How many unlabelled images auto-label considers, and how many of them this model
    version already predicted."""

    unlabelled: int
    already_predicted: int


def outline_text(boxes: Detections | np.ndarray, segments: ImageSegments, what: str) -> str:
    """The stored text of ``segments`` (:func:`labelwise.masks.format_segment_labels`), after
    checking it has one instance per box row with the row's class.

    Args:
        boxes: detections, or (N, 5) label rows (class id first).
        what: how the error names the item.

    Raises:
        CatalogError: a count or class that disagrees (expected vs got).
    """
    from labelwise.masks import format_segment_labels

    classes = (boxes.class_id if isinstance(boxes, Detections)
               else np.asarray(boxes, np.float64).reshape(-1, 5)[:, 0].astype(np.int64))
    if len(segments) != len(classes) or not np.array_equal(segments.class_ids, classes):
        raise CatalogError(f"{what}: outlines must match the box rows one to one; expected classes "
                           f"{classes.tolist()}, got {segments.class_ids.tolist()}")
    return format_segment_labels(segments)


class PredictionsMixin(CatalogMixin):
    """Predictions and embeddings of :class:`~labelwise.catalog.Catalog`."""

    def predicted_ids(self, project: ProjectRecord, model_version: str) -> set[str]:
        with self.session() as s:
            return set(
                s.scalars(
                    select(PredictionRow.image_id).where(
                        PredictionRow.project_id == project.id,
                        PredictionRow.model_version == model_version,
                    )
                ).all()
            )

    def save_predictions(
        self, project: ProjectRecord, model_version: str, items: Sequence[tuple[str, Detections]],
        segments: Mapping[str, ImageSegments] | None = None,
    ) -> int:
        """Store predictions of one model version; already stored (image, version) pairs are kept
        (also when another writer stores them at the same time). Returns how many were added.

        ``segments``: a segmentation model's instance outlines per image id, one instance per
        box row of its detections, same order and classes (:func:`outline_text`).
        """
        outlines = {i: outline_text(det, segments[i], f"prediction of image {i}")
                    for i, det in items if segments is not None and i in segments}
        rows = [{"project_id": project.id, "image_id": image_id, "model_version": model_version,
                 "n_boxes": len(det), "num_classes": det.num_classes,
                 "xyxy": det.xyxy.astype("<f4").tobytes(),
                 "confidence": det.confidence.astype("<f4").tobytes(),
                 "class_id": det.class_id.astype("<i8").tobytes(),
                 "probs": det.probs.astype("<f4").tobytes(),
                 "segments": outlines.get(image_id),
                 "mask_stability": (None if det.mask_stability is None
                                    else det.mask_stability.astype("<f4").tobytes())}
                for image_id, det in items]
        with self.session() as s, s.begin():
            return insert_new(s, PredictionRow, rows, ("project_id", "image_id", "model_version"))

    def predictions(
        self, project: ProjectRecord, model_version: str, image_ids: Sequence[str] | None = None
    ) -> dict[str, Detections]:
        with self.session() as s:
            q = select(PredictionRow).where(
                PredictionRow.project_id == project.id, PredictionRow.model_version == model_version
            )
            if image_ids is None:
                return {row.image_id: _detections(row) for row in s.scalars(q).all()}
            found: dict[str, Detections] = {}
            for ids in in_chunks(image_ids):
                for row in s.scalars(q.where(PredictionRow.image_id.in_(ids))).all():
                    found[row.image_id] = _detections(row)
            return found

    def prediction_segments(
        self, project: ProjectRecord, model_version: str, image_ids: Sequence[str]
    ) -> dict[str, ImageSegments]:
        """The stored instance outlines of ``model_version`` for ``image_ids`` (pixels of each
        image; images whose prediction has no outlines are left out)."""
        from labelwise.masks import parse_segment_labels

        found: dict[str, ImageSegments] = {}
        with self.session() as s:
            for ids in in_chunks(list(image_ids)):
                q = (select(PredictionRow.image_id, PredictionRow.segments, ImageRow.width, ImageRow.height)
                     .join(ImageRow, and_(ImageRow.project_id == PredictionRow.project_id,
                                          ImageRow.image_id == PredictionRow.image_id))
                     .where(PredictionRow.project_id == project.id,
                            PredictionRow.model_version == model_version,
                            PredictionRow.segments.is_not(None), PredictionRow.image_id.in_(ids)))
                for image_id, text, width, height in s.execute(q).all():
                    found[image_id] = parse_segment_labels(text, width, height,
                                                           source=f"stored outlines of image {image_id}")
        return found

    def packed_predictions(
        self, project: ProjectRecord, model_version: str, status: ImageStatus, *,
        chunk: int = PACK_CHUNK,
    ) -> Iterator[PackedDetections]:
        """The predictions of the images in ``status``, streamed in chunks of ``chunk`` images
        (ordered by image id, like :meth:`images`), without box coordinates: what scoring
        reads. Memory is one chunk's, whatever the pool size.

        Raises:
            CatalogError: stored rows of one model version disagree on the class count, or a
                stored array is corrupt (the message names the image).
        """
        q = (select(PredictionRow.image_id, PredictionRow.n_boxes, PredictionRow.num_classes,
                    PredictionRow.confidence, PredictionRow.class_id, PredictionRow.probs,
                    PredictionRow.mask_stability)
             .join(ImageRow, (ImageRow.project_id == PredictionRow.project_id)
                   & (ImageRow.image_id == PredictionRow.image_id))
             .where(PredictionRow.project_id == project.id,
                    PredictionRow.model_version == model_version,
                    ImageRow.status == status.value)
             .order_by(ImageRow.image_id))
        with self.session() as s:
            for part in s.execute(q, execution_options={"yield_per": chunk}).partitions():
                yield _pack(part, model_version)

    def pending_images(
        self, project: ProjectRecord, model_version: str, embedder: str | None,
        image_ids: Sequence[str] | None = None, *, chunk: int = PENDING_CHUNK,
    ) -> Iterator[list[PendingImage]]:
        """The images auto-label still has work for (ordered by image id), streamed in lists of
        at most ``chunk``: unlabelled images ``model_version`` has not predicted, and (with an
        ``embedder``) images of any status it has not embedded. Each list is one short keyset
        query (image id after the last one seen), so no transaction stays open while the caller
        stores what it made of the previous list, and memory is one list's, whatever the pool
        size. ``image_ids`` (a shard) is read in chunks of ids."""
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1; got {chunk}")
        pred = aliased(PredictionRow)
        emb = aliased(EmbeddingRow)
        unlabelled = ImageRow.status == ImageStatus.UNLABELLED.value
        q = (select(ImageRow, pred.id.is_(None), emb.id.is_(None) if embedder else false())
             .outerjoin(pred, and_(pred.project_id == ImageRow.project_id,
                                   pred.image_id == ImageRow.image_id,
                                   pred.model_version == model_version)))
        wanted = and_(unlabelled, pred.id.is_(None))
        if embedder is not None:
            q = q.outerjoin(emb, and_(emb.project_id == ImageRow.project_id,
                                      emb.image_id == ImageRow.image_id, emb.embedder == embedder))
            wanted = or_(wanted, emb.id.is_(None))
        q = q.where(ImageRow.project_id == project.id, wanted).order_by(ImageRow.image_id).limit(chunk)
        shards = [None] if image_ids is None else list(in_chunks(sorted(set(image_ids))))
        for shard in shards:
            shard_q = q if shard is None else q.where(ImageRow.image_id.in_(shard))
            after: str | None = None
            while True:
                page_q = shard_q if after is None else shard_q.where(ImageRow.image_id > after)
                with self.session() as s:
                    page = [PendingImage(record, bool(no_pred) and record.status is ImageStatus.UNLABELLED,
                                         bool(no_emb))
                            for record, no_pred, no_emb in
                            ((_image_record(r), p, e) for r, p, e in s.execute(page_q).all())]
                if not page:
                    break
                yield page
                after = page[-1].record.image_id

    def pending_counts(
        self, project: ProjectRecord, model_version: str, image_ids: Sequence[str] | None = None
    ) -> PendingCounts:
        """Unlabelled images (of ``image_ids``, or the project) and how many ``model_version``
        already predicted, counted in the database."""
        pred = aliased(PredictionRow)
        q = (select(func.count(ImageRow.id), func.count(pred.id))
             .outerjoin(pred, and_(pred.project_id == ImageRow.project_id,
                                   pred.image_id == ImageRow.image_id,
                                   pred.model_version == model_version))
             .where(ImageRow.project_id == project.id,
                    ImageRow.status == ImageStatus.UNLABELLED.value))
        total = done = 0
        with self.session() as s:
            for shard in ([None] if image_ids is None else list(in_chunks(image_ids))):
                part = q if shard is None else q.where(ImageRow.image_id.in_(shard))
                n, k = s.execute(part).one()
                total, done = total + int(n), done + int(k)
        return PendingCounts(total, done)

    def latest_model_version(self, project: ProjectRecord) -> str | None:
        """The model version whose predictions were stored most recently, if any."""
        with self.session() as s:
            return s.scalar(
                select(PredictionRow.model_version)
                .where(PredictionRow.project_id == project.id)
                .order_by(PredictionRow.id.desc())
                .limit(1)
            )

    # Embeddings -------------------------------------------------------------------------
    def embedded_ids(self, project: ProjectRecord, embedder: str) -> set[str]:
        with self.session() as s:
            return set(
                s.scalars(
                    select(EmbeddingRow.image_id).where(
                        EmbeddingRow.project_id == project.id, EmbeddingRow.embedder == embedder
                    )
                ).all()
            )

    def save_embeddings(
        self, project: ProjectRecord, embedder: str, image_ids: Sequence[str], vectors: np.ndarray
    ) -> int:
        """Store (N, d) float32 vectors for N image ids; existing ones are kept (also when another
        writer stores them at the same time). Returns how many were added."""
        vecs = np.asarray(vectors, dtype="<f4")
        if vecs.ndim != 2 or vecs.shape[0] != len(image_ids):
            raise CatalogError(
                f"vectors must be ({len(image_ids)}, d) for {len(image_ids)} ids; got {vecs.shape}"
            )
        rows = [{"project_id": project.id, "image_id": image_id, "embedder": embedder,
                 "dim": int(vec.shape[0]), "vector": vec.tobytes()}
                for image_id, vec in zip(image_ids, vecs)]
        with self.session() as s, s.begin():
            return insert_new(s, EmbeddingRow, rows, ("project_id", "image_id", "embedder"))

    def embeddings(
        self, project: ProjectRecord, embedder: str, image_ids: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        with self.session() as s:
            q = select(EmbeddingRow).where(
                EmbeddingRow.project_id == project.id, EmbeddingRow.embedder == embedder
            )
            if image_ids is None:
                return {r.image_id: np.frombuffer(r.vector, "<f4").copy()
                        for r in s.scalars(q).all()}
            found: dict[str, np.ndarray] = {}
            for ids in in_chunks(image_ids):
                for r in s.scalars(q.where(EmbeddingRow.image_id.in_(ids))).all():
                    found[r.image_id] = np.frombuffer(r.vector, "<f4").copy()
            return found

    def embedding_dim(self, project: ProjectRecord, embedder: str) -> int | None:
        """The length of ``embedder``'s vectors in this project (None: none stored)."""
        with self.session() as s:
            return s.scalar(select(EmbeddingRow.dim).where(
                EmbeddingRow.project_id == project.id, EmbeddingRow.embedder == embedder).limit(1))

    def latest_embedder(self, project: ProjectRecord) -> str | None:
        with self.session() as s:
            return s.scalar(
                select(EmbeddingRow.embedder)
                .where(EmbeddingRow.project_id == project.id)
                .order_by(EmbeddingRow.id.desc())
                .limit(1)
            )


def _stabilities(rows: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """(B,) float32 mask stabilities of a chunk, NaN for rows stored without; None if no row has them."""
    if all(r[6] is None for r in rows):
        return None
    return np.concatenate([np.full(int(r[1]), np.nan, np.float32) if r[6] is None
                           else np.frombuffer(r[6], "<f4") for r in rows]).astype(np.float32)


def _pack(rows: Sequence[Sequence[Any]], model_version: str) -> PackedDetections:
    """One chunk of ``(image_id, n_boxes, num_classes, confidence, class_id, probs,
    mask_stability)`` rows (a row without stabilities gives NaN for its boxes)."""
    classes = {int(r[2]) for r in rows}
    if len(classes) != 1:
        raise CatalogError(f"predictions of model version {model_version!r} must share one class "
                           f"count; got {sorted(classes)}")
    (c,) = classes
    counts = np.fromiter((int(r[1]) for r in rows), np.int64, len(rows))
    try:
        return PackedDetections(
            tuple(str(r[0]) for r in rows), counts,
            np.frombuffer(b"".join(r[3] for r in rows), "<f4"),
            np.frombuffer(b"".join(r[4] for r in rows), "<i8"),
            np.frombuffer(b"".join(r[5] for r in rows), "<f4").reshape(-1, c),
            _stabilities(rows),
        )
    except ValueError as exc:
        raise CatalogError(f"stored predictions of model version {model_version!r} are corrupt: "
                           f"{exc}") from None
