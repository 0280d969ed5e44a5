"""Auto-label: run a detector (and an embedder) over a project's unlabelled images.

Streams in batches with bounded memory and is resumable: images this model version already
predicted (and this embedder already embedded) are skipped, so a crashed or interrupted run picks
up where it stopped. Catalog writes are batched: predictions and embeddings are held for up to
``write_batch`` images and stored with one ``save_predictions`` and one ``save_embeddings`` call
(one transaction each), so a crash loses at most that many images' work. Files that vanished or
no longer decode are reported and skipped; they never stop the run.

When the embedder takes (part of) its vectors from the detector's pooled features
(``embedder.kind`` ``detector``, or ``auto`` without CLIP), the images that need both a prediction
and an embedding are decoded ONCE, by the detector's reader (a file that is missing or does not
decode is reported and skipped, as below), and get both from ONE forward pass
(:meth:`labelwise.detector.YoloDetector.predict_with_features`); the pixel thumbnail of ``auto`` is
made from the same decoded pixels. Images that need only one of the two take the plain path,
where each file is first checked with a full decode (:func:`labelwise.images.read_image_info`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class FeaturePredictor(Protocol):
    """A detector that also returns its pooled features from the same forward pass."""

    def read(self, path: Path) -> np.ndarray:
        """The (H, W, 3) uint8 BGR pixels the detector predicts on (FileNotFoundError /
        ValueError for a missing or undecodable file)."""
        ...

    def predict_with_features(self, images: Sequence[np.ndarray]) -> tuple[list[Detections], np.ndarray]:
        """(detections in input order, (N, D) float32 L2-normalised pooled features) of decoded images."""
        ...


@runtime_checkable
class SamePassEmbedder(Protocol):
    """An embedder whose vectors can be made from a detector's pooled features of the same pass."""

    def shares_pass_with(self, detector: object) -> bool:
        """Whether :meth:`embed_pooled` can use ``detector``'s pooled features."""
        ...

    def embed_pooled(
        self, paths: Sequence[Path], pooled: np.ndarray, pixels: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """(N, dim) float32 unit rows, given ``pooled`` (N, D) features of those images and the
        decoded ``pixels`` ((H, W, 3) uint8 BGR) the detector read."""
        ...


DEFAULT_WRITE_BATCH = 256
"""Images whose predictions / embeddings are stored per catalog call."""


def shares_pass(detector: object, embedder: object | None) -> bool:
    """Whether auto-label can take ``embedder``'s vectors from ``detector``'s prediction pass."""
    return (
        embedder is not None
        and isinstance(detector, FeaturePredictor)
        and isinstance(embedder, SamePassEmbedder)
        and embedder.shares_pass_with(detector)
    )


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
    write_seconds: float = 0.0
    same_pass: int = 0

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
            "write_seconds": round(self.write_seconds, 3),
            "same_pass": self.same_pass,
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


def _decoded(
    batch: list[ImageRecord], read: Callable[[Path], np.ndarray], report: AutoLabelReport
) -> list[tuple[ImageRecord, np.ndarray]]:
    """Each readable image with its pixels; the others go to ``report.failed`` with the reason."""
    ok = []
    for img in batch:
        try:
            ok.append((img, read(img.path)))
        except (FileNotFoundError, ValueError, OSError) as exc:
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
    write_batch: int = DEFAULT_WRITE_BATCH,
) -> AutoLabelReport:
    """Predict every unlabelled image not yet predicted by this model version, and embed every
    image (any status: diversity is measured against queued and labelled images too) not yet
    embedded by this embedder.

    Args:
        batch_size: images read and passed to the detector at a time.
        image_ids: restrict to these ids (a shard of the pool, for mapped tasks).
        progress: called with the number of images finished (stored) after each catalog write.
        write_batch: images held before their predictions and embeddings are stored (>= 1).

    Report: ``predict_seconds`` is the detector's time (with the same-pass embeddings),
    ``embed_seconds`` the embedder's own passes, ``write_seconds`` the catalog writes,
    ``same_pass`` the images embedded from the prediction pass.
    """
    if batch_size < 1 or write_batch < 1:
        raise ValueError(f"batch_size and write_batch must be >= 1; got {batch_size} and {write_batch}")
    check_class_names(project, detector)
    start = time.perf_counter()
    report = AutoLabelReport(model_version=detector.version, embedder=embedder.name if embedder else None)
    images = catalog.images(project, image_ids=image_ids)
    unlabelled = {img.image_id for img in images if img.status is ImageStatus.UNLABELLED}
    predicted = catalog.predicted_ids(project, detector.version)
    embedded = catalog.embedded_ids(project, embedder.name) if embedder else set()
    report.considered = len(unlabelled)
    report.already_predicted = len(unlabelled & predicted)
    same_pass = shares_pass(detector, embedder)

    def wants_prediction(img: ImageRecord) -> bool:
        return img.image_id in unlabelled and img.image_id not in predicted

    def wants_embedding(img: ImageRecord) -> bool:
        return embedder is not None and img.image_id not in embedded

    pending_preds: list[tuple[str, Detections]] = []
    pending_ids: list[str] = []
    pending_vecs: list[np.ndarray] = []
    pending_images = 0

    def flush() -> None:
        nonlocal pending_images
        t0 = time.perf_counter()
        if pending_preds:
            report.predicted += catalog.save_predictions(project, detector.version, pending_preds)
        if embedder is not None and pending_ids:
            report.embedded += catalog.save_embeddings(
                project, embedder.name, pending_ids, np.concatenate(pending_vecs)
            )
        report.write_seconds += time.perf_counter() - t0
        if progress is not None and pending_images:
            progress(pending_images)
        pending_preds.clear()
        pending_ids.clear()
        pending_vecs.clear()
        pending_images = 0

    todo = [img for img in images if wants_prediction(img) or wants_embedding(img)]
    for offset in range(0, len(todo), batch_size):
        chunk = todo[offset : offset + batch_size]
        rest = chunk
        if same_pass:
            both = [img for img in chunk if wants_prediction(img) and wants_embedding(img)]
            rest = [img for img in chunk if not (wants_prediction(img) and wants_embedding(img))]
            t0 = time.perf_counter()
            decoded = _decoded(both, detector.read, report)  # type: ignore[attr-defined]  # shares_pass checked it
            if decoded:
                pixels = [px for _, px in decoded]
                dets, pooled = detector.predict_with_features(pixels)  # type: ignore[attr-defined]
                report.predict_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                ok = [img for img, _ in decoded]
                vectors = embedder.embed_pooled([img.path for img in ok], pooled, pixels)  # type: ignore[union-attr]
                report.embed_seconds += time.perf_counter() - t0
                pending_preds.extend((img.image_id, d) for img, d in zip(ok, dets))
                pending_ids.extend(img.image_id for img in ok)
                pending_vecs.append(vectors)
                report.same_pass += len(ok)
        batch = _readable(rest, report)
        need_pred = [img for img in batch if wants_prediction(img)]
        need_emb = [img for img in batch if wants_embedding(img)]
        if need_pred:
            t0 = time.perf_counter()
            dets = detector.predict([img.path for img in need_pred])
            report.predict_seconds += time.perf_counter() - t0
            pending_preds.extend((img.image_id, d) for img, d in zip(need_pred, dets))
        if embedder is not None and need_emb:
            t0 = time.perf_counter()
            vectors = embedder.embed([img.path for img in need_emb])
            report.embed_seconds += time.perf_counter() - t0
            pending_ids.extend(img.image_id for img in need_emb)
            pending_vecs.append(vectors)
        pending_images += len(chunk)
        if len(pending_preds) >= write_batch or len(pending_ids) >= write_batch:
            flush()
    flush()
    report.seconds = time.perf_counter() - start
    return report
