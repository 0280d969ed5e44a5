"""Catalog operations on model outputs: per-image predictions and embeddings, by model version
or embedder. Arrays are stored as little-endian bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import select

from labelwise.catalog.base import CatalogMixin, insert_new
from labelwise.catalog.models import EmbeddingRow, PredictionRow
from labelwise.catalog.records import CatalogError, ProjectRecord, _detections
from labelwise.domain import Detections


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
        self, project: ProjectRecord, model_version: str, items: Sequence[tuple[str, Detections]]
    ) -> int:
        """Store predictions of one model version; already stored (image, version) pairs are kept
        (also when another writer stores them at the same time). Returns how many were added."""
        rows = [{"project_id": project.id, "image_id": image_id, "model_version": model_version,
                 "n_boxes": len(det), "num_classes": det.num_classes,
                 "xyxy": det.xyxy.astype("<f4").tobytes(),
                 "confidence": det.confidence.astype("<f4").tobytes(),
                 "class_id": det.class_id.astype("<i8").tobytes(),
                 "probs": det.probs.astype("<f4").tobytes()} for image_id, det in items]
        with self.session() as s, s.begin():
            return insert_new(s, PredictionRow, rows, ("project_id", "image_id", "model_version"))

    def predictions(
        self, project: ProjectRecord, model_version: str, image_ids: Sequence[str] | None = None
    ) -> dict[str, Detections]:
        with self.session() as s:
            q = select(PredictionRow).where(
                PredictionRow.project_id == project.id, PredictionRow.model_version == model_version
            )
            if image_ids is not None:
                q = q.where(PredictionRow.image_id.in_(list(image_ids)))
            return {row.image_id: _detections(row) for row in s.scalars(q).all()}

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
            if image_ids is not None:
                q = q.where(EmbeddingRow.image_id.in_(list(image_ids)))
            return {r.image_id: np.frombuffer(r.vector, "<f4").copy() for r in s.scalars(q).all()}

    def latest_embedder(self, project: ProjectRecord) -> str | None:
        with self.session() as s:
            return s.scalar(
                select(EmbeddingRow.embedder)
                .where(EmbeddingRow.project_id == project.id)
                .order_by(EmbeddingRow.id.desc())
                .limit(1)
            )
