"""Deciding whether a served image goes to annotators, and storing it durably when it does.

An image whose routing score is below the threshold is *flagged*. A flagged image is queued
for review unless a guard suppresses it (``flag_suppressed_reason``):

* ``already_in_pool``: the project already has the image as queued, labelled or rejected;
* ``already_flagged``: an earlier request flagged the same bytes;
* ``rate_cap_minute`` / ``rate_cap_hour`` / ``rate_cap_day``: the project's cap is reached;
* ``near_duplicate``: its embedding is within the cosine-distance threshold of an image already
  queued or flagged;
* ``store_failed``: the catalog could not store it (logged; the prediction is still answered).

Queuing stores, in this order: the file under ``uploads/``, the catalog image, its prediction
for the serving model version, its embedding, and the outbox row (the worker delivers it).
Decisions of one project are serialised so two concurrent near-duplicates cannot both pass.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.domain import Detections, ImageStatus
from labelwise.masks import ImageSegments
from labelwise.serving import outbox
from labelwise.serving.guards import NearDuplicateGuard, RateCaps
from labelwise.serving.holder import ServingModel
from labelwise.serving.uploads import DecodedUpload, keep, upload_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlagDecision:
    queued: bool
    reason: str | None = None
    duplicate_distance: float | None = None


class ServingStats:
    """Counters of one server process (thread-safe), per project."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {}

    def add(self, project: str, *names: str) -> None:
        with self._lock:
            bucket = self.counts.setdefault(project, Counter())
            for name in names:
                bucket[name] += 1

    def snapshot(self, project: str) -> dict[str, Any]:
        with self._lock:
            bucket = dict(self.counts.get(project, Counter()))
        suppressed = {
            k.removeprefix("suppressed:"): v
            for k, v in bucket.items()
            if k.startswith("suppressed:")
        }
        return {
            "predictions": bucket.get("predictions", 0),
            "flagged": bucket.get("flagged", 0),
            "queued_for_review": bucket.get("queued", 0),
            "suppressed": suppressed,
        }


class FlagService:
    """Applies the guards and stores queued images (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        state_dir: Path,
        caps: RateCaps,
        guard: NearDuplicateGuard,
        group: str,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.catalog = catalog
        self.state_dir = Path(state_dir)
        self.caps = caps
        self.guard = guard
        self.group = group
        self.wake = wake
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, project: ProjectRecord) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(project.id, threading.Lock())

    def _references(self, project: ProjectRecord, embedder: str) -> dict[str, np.ndarray]:
        """Embeddings of the images already queued or flagged (the near-duplicate references)."""
        ids = {img.image_id for img in self.catalog.images(project, ImageStatus.QUEUED)}
        ids.update(outbox.flagged_image_ids(self.catalog, project))
        return self.catalog.embeddings(project, embedder, sorted(ids)) if ids else {}

    def consider(
        self,
        project: ProjectRecord,
        model: ServingModel,
        upload: DecodedUpload,
        incoming: Path,
        detections: Detections,
        routing_score: float,
        scores: dict[str, float],
        outlines: ImageSegments | None = None,
    ) -> FlagDecision:
        """Guards, then durable storage of a flagged image (with a segmentation model's
        ``outlines`` beside its boxes). Never raises for a guard."""
        with self._lock(project):
            known = self.catalog.images(project, image_ids=[upload.image_id])
            if known and known[0].status is not ImageStatus.UNLABELLED:
                return FlagDecision(False, "already_in_pool")
            if outbox.is_flagged(self.catalog, project, upload.image_id):
                return FlagDecision(False, "already_flagged")
            reason = self.caps.blocked(project.name)
            if reason is not None:
                return FlagDecision(False, reason)
            vector = model.embed(incoming) if model.embedder is not None else None
            distance = None
            if vector is not None and self.guard.enabled:
                check = self.guard.check(vector, self._references(project, model.embedder.name))
                distance = check.distance
                if check.duplicate:
                    return FlagDecision(False, "near_duplicate", distance)
            reason = self.caps.try_acquire(project.name)
            if reason is not None:
                return FlagDecision(False, reason, distance)
            try:
                self._store(
                    project,
                    model,
                    upload,
                    incoming,
                    detections,
                    vector,
                    routing_score,
                    scores,
                    known_path=known[0].path if known else None,
                    outlines=outlines,
                )
            except Exception:  # noqa: BLE001 - the prediction is still answered
                log.exception(
                    "storing flagged image %s of %s failed", upload.image_id, project.name
                )
                return FlagDecision(False, "store_failed", distance)
        self.wake()
        return FlagDecision(True, None, distance)

    def _store(
        self,
        project: ProjectRecord,
        model: ServingModel,
        upload: DecodedUpload,
        incoming: Path,
        detections: Detections,
        vector: np.ndarray | None,
        routing_score: float,
        scores: dict[str, float],
        known_path: Path | None,
        outlines: ImageSegments | None = None,
    ) -> None:
        if known_path is None or not known_path.is_file():
            path = keep(upload_dir(self.state_dir, project), incoming, upload)
            # max_pixels=None: decode_upload already applied the pool's pixel cap
            report = self.catalog.add_images(project, [path], max_pixels=None)
            if report.failed:
                raise ValueError(f"catalog refused {path}: {report.failed[0][1]}")
        self.catalog.save_predictions(project, model.version, [(upload.image_id, detections)],
                                      {upload.image_id: outlines} if outlines is not None else None)
        if vector is not None:
            self.catalog.save_embeddings(
                project, model.embedder.name, [upload.image_id], vector.reshape(1, -1)
            )
        outbox.add_flag(
            self.catalog,
            project,
            upload.image_id,
            model.version,
            self.group,
            routing_score,
            scores,
        )
