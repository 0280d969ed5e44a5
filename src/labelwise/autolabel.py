"""Auto-label: run a detector (and an embedder) over a project's unlabelled images.

Streams in batches with bounded memory, commits after every batch, and is resumable: images
this model version already predicted (and this embedder already embedded) are skipped, so a
crashed or interrupted run picks up where it stopped. Files that vanished or no longer decode
are reported and skipped; they never stop the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from labelwise.catalog import Catalog, ImageRecord, ProjectRecord
from labelwise.domain import Detections, ImageStatus
from labelwise.images import ImageReadError, read_image_info


class Predictor(Protocol):
    """What auto-label needs of a detector (see :class:`labelwise.detector.YoloDetector`)."""

    @property
    def version(self) -> str: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def predict(self, paths: Sequence[Path]) -> list[Detections]: ...


class ImageEmbedder(Protocol):
    """What auto-label needs of an embedder (see :mod:`labelwise.embedder`)."""

    @property
    def name(self) -> str: ...

    def embed(self, paths: Sequence[Path]) -> np.ndarray: ...


@dataclass
class AutoLabelReport:
    model_version: str
    embedder: str | None
    considered: int = 0
    predicted: int = 0
    already_predicted: int = 0
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    predict_seconds: float = 0.0
    embed_seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "model_version": self.model_version,
            "embedder": self.embedder,
            "considered": self.considered,
            "predicted": self.predicted,
            "already_predicted": self.already_predicted,
            "embedded": self.embedded,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "seconds": round(self.seconds, 3),
            "predict_seconds": round(self.predict_seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
        }


def check_class_names(project: ProjectRecord, detector: Predictor) -> None:
    if tuple(detector.class_names) != tuple(project.class_names):
        raise ValueError(
            f"detector classes {list(detector.class_names)} do not match project "
            f"{project.name!r} classes {list(project.class_names)}"
        )


def _readable(batch: list[ImageRecord], report: AutoLabelReport) -> list[ImageRecord]:
    ok = []
    for img in batch:
        try:
            read_image_info(img.path, max_pixels=None)  # the pool's cap applied at add time
            ok.append(img)
        except ImageReadError as exc:
            report.failed.append((str(img.path), str(exc)))
    return ok


def auto_label(
    catalog: Catalog,
    project: ProjectRecord,
    detector: Predictor,
    embedder: ImageEmbedder | None = None,
    batch_size: int = 32,
    image_ids: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AutoLabelReport:
    """Predict every unlabelled image not yet predicted by this model version, and embed every
    image (any status: diversity is measured against queued and labelled images too) not yet
    embedded by this embedder.

    Args:
        image_ids: restrict to these ids (a shard of the pool, for mapped tasks).
        progress: called with the number of images finished after each batch.
    """
    check_class_names(project, detector)
    start = time.perf_counter()
    report = AutoLabelReport(model_version=detector.version, embedder=embedder.name if embedder else None)
    images = catalog.images(project, image_ids=image_ids)
    unlabelled = {img.image_id for img in images if img.status is ImageStatus.UNLABELLED}
    predicted = catalog.predicted_ids(project, detector.version)
    embedded = catalog.embedded_ids(project, embedder.name) if embedder else set()
    report.considered = len(unlabelled)
    report.already_predicted = len(unlabelled & predicted)

    def wants_prediction(img: ImageRecord) -> bool:
        return img.image_id in unlabelled and img.image_id not in predicted

    def wants_embedding(img: ImageRecord) -> bool:
        return embedder is not None and img.image_id not in embedded

    todo = [img for img in images if wants_prediction(img) or wants_embedding(img)]
    for offset in range(0, len(todo), batch_size):
        chunk = todo[offset : offset + batch_size]
        batch = _readable(chunk, report)
        need_pred = [img for img in batch if wants_prediction(img)]
        if need_pred:
            t0 = time.perf_counter()
            dets = detector.predict([img.path for img in need_pred])
            report.predict_seconds += time.perf_counter() - t0
            report.predicted += catalog.save_predictions(
                project, detector.version, [(img.image_id, d) for img, d in zip(need_pred, dets)]
            )
        need_emb = [img for img in batch if wants_embedding(img)]
        if embedder is not None and need_emb:
            t0 = time.perf_counter()
            vectors = embedder.embed([img.path for img in need_emb])
            report.embed_seconds += time.perf_counter() - t0
            report.embedded += catalog.save_embeddings(
                project, embedder.name, [img.image_id for img in need_emb], vectors
            )
        if progress is not None:
            progress(len(chunk))
    report.seconds = time.perf_counter() - start
    return report
