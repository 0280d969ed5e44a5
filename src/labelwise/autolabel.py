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
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from labelwise.catalog import Catalog, ImageRecord, PendingImage, ProjectRecord
from labelwise.domain import Detections
from labelwise.images import ImageReadError, read_image_info

if TYPE_CHECKING:
    from labelwise.masks import ImageSegments


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


class SegmentOutput(Protocol):
    """One image's instance segmentation (see :class:`labelwise.segmenter.SegmentPrediction`)."""

    @property
    def detections(self) -> Detections:
        """The instances' boxes with their full class distributions."""
        ...

    def polygons_with_index(self) -> tuple[ImageSegments, np.ndarray]:
        """The instances' outlines in pixels of the image, and (K,) the detection row of each
        (a mask too small for an outline has none)."""
        ...


@runtime_checkable
class SegmentPredictor(Protocol):
    """A model that also outlines each instance (:class:`labelwise.segmenter.YoloSegmenter`):
    auto-label stores the outlines beside the boxes, for Label Studio's polygons."""

    def predict_segments(self, images: Sequence[Path]) -> Sequence[SegmentOutput]: ...


DEFAULT_WRITE_BATCH = 256
"""Images whose predictions / embeddings are stored per catalog call."""


def shares_pass(detector: object, embedder: object | None) -> bool:
    """Whether auto-label can take ``embedder``'s vectors from ``detector``'s prediction pass."""
    return (
        embedder is not None
        and not isinstance(detector, SegmentPredictor)  # its outlines come from predict_segments
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


class _Writer:
    """Holds predictions and embeddings until :meth:`flush` stores them (one transaction each)."""

    def __init__(self, catalog: Catalog, project: ProjectRecord, model_version: str,
                 embedder: ImageEmbedder | None, report: AutoLabelReport,
                 progress: Callable[[int], None] | None) -> None:
        self.catalog, self.project, self.model_version = catalog, project, model_version
        self.embedder, self.report, self.progress = embedder, report, progress
        self.preds: list[tuple[str, Detections]] = []
        self.outlines: dict[str, ImageSegments] = {}
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.finished = 0

    @property
    def held(self) -> int:
        """Images whose prediction or embedding is held (the larger of the two counts)."""
        return max(len(self.preds), len(self.ids))

    def predictions(self, ids: Sequence[str], dets: Sequence[Detections],
                    outlines: Sequence[ImageSegments] | None = None) -> None:
        """``outlines``: a segmentation model's, one per image (one outline per detection row)."""
        self.preds.extend(zip(ids, dets))
        if outlines is not None:
            self.outlines.update(zip(ids, outlines))

    def embeddings(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """``vectors``: (len(ids), dim) float32."""
        self.ids.extend(ids)
        self.vectors.append(vectors)

    def done(self, n: int) -> None:
        """``n`` more images were handled (predicted, embedded or reported as failed)."""
        self.finished += n

    def flush(self) -> None:
        t0 = time.perf_counter()
        if self.preds:
            self.report.predicted += self.catalog.save_predictions(self.project, self.model_version, self.preds,
                                                                   self.outlines or None)
        if self.embedder is not None and self.ids:
            self.report.embedded += self.catalog.save_embeddings(
                self.project, self.embedder.name, self.ids, np.concatenate(self.vectors))
        self.report.write_seconds += time.perf_counter() - t0
        if self.progress is not None and self.finished:
            self.progress(self.finished)
        self.preds, self.ids, self.vectors, self.finished = [], [], [], 0
        self.outlines = {}


def _predict_same_pass(images: list[ImageRecord], detector: FeaturePredictor, embedder: SamePassEmbedder,
                       writer: _Writer, report: AutoLabelReport) -> None:
    """Boxes and embeddings of ``images`` from one decode and one forward pass each."""
    t0 = time.perf_counter()
    decoded = _decoded(images, detector.read, report)
    if not decoded:
        return
    pixels = [px for _, px in decoded]
    dets, pooled = detector.predict_with_features(pixels)
    report.predict_seconds += time.perf_counter() - t0
    t0 = time.perf_counter()
    ok = [img for img, _ in decoded]
    vectors = embedder.embed_pooled([img.path for img in ok], pooled, pixels)
    report.embed_seconds += time.perf_counter() - t0
    ids = [img.image_id for img in ok]
    writer.predictions(ids, dets)
    writer.embeddings(ids, vectors)
    report.same_pass += len(ok)


def _predict_apart(work: list[PendingImage], detector: Predictor, embedder: ImageEmbedder | None,
                   writer: _Writer, report: AutoLabelReport) -> None:
    """Boxes and embeddings of the images that need only one of them (or whose embedder cannot
    share the detector's pass): each file is checked with a full decode first."""
    readable = {img.image_id for img in _readable([w.record for w in work], report)}
    batch = [w for w in work if w.record.image_id in readable]
    need_pred = [w.record for w in batch if w.needs_prediction]
    need_emb = [w.record for w in batch if w.needs_embedding]
    if need_pred:
        t0 = time.perf_counter()
        ids = [img.image_id for img in need_pred]
        if isinstance(detector, SegmentPredictor):
            segmented = detector.predict_segments([img.path for img in need_pred])
            report.predict_seconds += time.perf_counter() - t0
            outlined = [s.polygons_with_index() for s in segmented]
            # An instance too small for an outline is left out, boxes and outlines stay one to one.
            writer.predictions(ids, [s.detections.take(index) for s, (_, index) in zip(segmented, outlined)],
                               [outline for outline, _ in outlined])
        else:
            dets = detector.predict([img.path for img in need_pred])
            report.predict_seconds += time.perf_counter() - t0
            writer.predictions(ids, dets)
    if embedder is not None and need_emb:
        t0 = time.perf_counter()
        vectors = embedder.embed([img.path for img in need_emb])
        report.embed_seconds += time.perf_counter() - t0
        writer.embeddings([img.image_id for img in need_emb], vectors)


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
    counts = catalog.pending_counts(project, detector.version, image_ids)
    report.considered, report.already_predicted = counts.unlabelled, counts.already_predicted
    writer = _Writer(catalog, project, detector.version, embedder, report, progress)
    same_pass = shares_pass(detector, embedder)
    # Work is read from the catalog a page at a time (memory is one page's, whatever the pool
    # size); a page is whole batches (the smallest multiple of batch_size holding write_batch
    # images), predicted batch by batch and stored once write_batch images are held.
    page = -(-write_batch // batch_size) * batch_size
    for work in catalog.pending_images(project, detector.version, embedder.name if embedder else None,
                                       image_ids, chunk=page):
        for offset in range(0, len(work), batch_size):
            chunk = work[offset : offset + batch_size]
            rest = chunk
            if same_pass:
                both = [w.record for w in chunk if w.needs_prediction and w.needs_embedding]
                rest = [w for w in chunk if not (w.needs_prediction and w.needs_embedding)]
                _predict_same_pass(both, detector, embedder, writer, report)  # type: ignore[arg-type]
            _predict_apart(rest, detector, embedder, writer, report)
            writer.done(len(chunk))
            if writer.held >= write_batch:
                writer.flush()
    writer.flush()
    report.seconds = time.perf_counter() - start
    return report
