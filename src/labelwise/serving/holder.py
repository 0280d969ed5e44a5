"""The model being served, swapped atomically on hot reload.

A :class:`ServingModel` is immutable: a request reads ``holder.current`` once and uses that
object to the end, so a reload never changes the model under a request in flight. Detectors are
not thread-safe; each ServingModel serialises its own inference with a lock, and the old one
keeps working for the requests that hold it while the new one takes new requests.

:class:`ModelHolder` knows how to load the project's model (``loader``) and how to ask the
registry for the champion's version (``champion_version``); :class:`ChampionWatcher` polls that
every ``interval_s`` seconds and reloads when the alias moved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from labelwise.autolabel import SegmentPredictor
from labelwise.domain import Detections
from labelwise.masks import ImageSegments
from labelwise.serving.batching import MicroBatcher, Source

log = logging.getLogger(__name__)


class Predictor(Protocol):
    version: str

    def predict(self, paths: Sequence[Source]) -> list[Detections]: ...


@dataclass(frozen=True)
class Instances:
    """One served image's answer: the boxes, and a segmentation model's instance outlines (one
    per box row, pixels of the image; None for other models)."""

    detections: Detections
    outlines: ImageSegments | None = None


def _instances_of(model: Predictor) -> Callable[[Sequence[Source]], list[Instances]]:
    """The batch function of ``model``: a segmentation model's boxes with their outlines (an
    instance too small for an outline is left out, as auto-label does), else its boxes."""
    if isinstance(model, SegmentPredictor):
        segmenter = model

        def outlined(sources: Sequence[Source]) -> list[Instances]:
            out = []
            for seg in segmenter.predict_segments(sources):  # type: ignore[arg-type]
                outline, index = seg.polygons_with_index()
                out.append(Instances(seg.detections.take(index), outline))
            return out

        return outlined
    return lambda sources: [Instances(d) for d in model.predict(sources)]


@dataclass(frozen=True)
class ServingModel:
    """One loaded model and what it was loaded from.

    Attributes:
        detector: has ``predict(paths) -> list[Detections]`` and ``version``.
        embedder: optional, ``name`` and ``embed(paths) -> (N, d)``; used for near-duplicates.
        source: ``champion`` (registry alias), ``configured`` (detector.model) or ``explicit``.
        registry_version: the registry version when loaded from the champion alias.
        loaded_at: seconds since the epoch.
        max_batch: most concurrent requests run in one forward pass (see
            :mod:`labelwise.serving.batching`).
    """

    detector: Predictor
    ref: str
    source: str
    registry_version: str | None = None
    embedder: Any = None
    loaded_at: float = field(default_factory=time.time)
    max_batch: int = 8
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    batcher: MicroBatcher[Instances] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "batcher", MicroBatcher(_instances_of(self.detector), self.max_batch, self.lock)
        )

    @property
    def version(self) -> str:
        return str(self.detector.version)

    def predict(self, path: Source, shape: Hashable | None = None) -> Detections:
        """Detections of one image file or (H, W, 3) uint8 BGR array. Concurrent requests with the same ``shape`` (e.g.
        (width, height)) may share a forward pass; None runs alone."""
        return self.batcher.predict(path, shape).detections

    def predict_instances(self, path: Source, shape: Hashable | None = None) -> Instances:
        """:meth:`predict` with a segmentation model's outlines."""
        return self.batcher.predict(path, shape)

    def embed(self, path: Path) -> np.ndarray | None:
        """(d,) embedding of one image file, None without an embedder."""
        if self.embedder is None:
            return None
        with self.lock:
            return np.asarray(self.embedder.embed([path]), dtype=np.float32)[0]

    def describe(self) -> dict[str, Any]:
        stats = self.batcher.stats
        return {
            "model_version": self.version,
            "ref": self.ref,
            "source": self.source,
            "registry_version": self.registry_version,
            "embedder": getattr(self.embedder, "name", None),
            "loaded_at": self.loaded_at,
            "batches": {
                "forward_passes": stats.batches,
                "images": stats.images,
                "largest": stats.largest,
                "max_batch": self.max_batch,
            },
        }


@dataclass(frozen=True)
class ReloadResult:
    reloaded: bool
    previous: str | None
    current: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "reloaded": self.reloaded,
            "previous_version": self.previous,
            "model_version": self.current,
            "reason": self.reason,
        }


class ModelHolder:
    """Holds the current :class:`ServingModel` of one project.

    Args:
        loader: builds a fresh ServingModel (slow: load weights, warm up).
        champion_version: the registry champion's version now (None when there is none), or
            None when the model is not tied to the registry (an explicit file).
    """

    def __init__(
        self,
        loader: Callable[[], ServingModel],
        champion_version: Callable[[], str | None] | None = None,
    ) -> None:
        self._loader = loader
        self._champion_version = champion_version
        self._current: ServingModel | None = None
        self._reload_lock = threading.Lock()
        self.reloads = 0
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> ServingModel:
        """The model to use for one request (loads it on first use)."""
        model = self._current
        if model is None:
            with self._reload_lock:
                if self._current is None:
                    self._current = self._loader()
                model = self._current
        return model

    def swap(self, model: ServingModel) -> ServingModel | None:
        """Install ``model``; returns the previous one (still usable by requests holding it)."""
        previous, self._current = self._current, model
        return previous

    def reload(self, reason: str = "requested") -> ReloadResult:
        """Load again from the source and swap (even when the version did not change)."""
        with self._reload_lock:
            previous = self._current.version if self._current else None
            fresh = self._loader()
            self.swap(fresh)
            self.reloads += 1
            self.last_error = None
        log.info("model reloaded (%s): %s -> %s", reason, previous, fresh.version)
        return ReloadResult(previous != fresh.version, previous, fresh.version, reason)

    def champion_moved(self) -> bool:
        """True when the registry champion differs from the loaded model's registry version."""
        if self._champion_version is None:
            return False
        now = self._champion_version()
        loaded = self._current.registry_version if self._current else None
        return now is not None and now != loaded

    def check(self) -> ReloadResult | None:
        """Reload when the champion alias moved; None when nothing changed."""
        if self._current is None or not self.champion_moved():
            return None
        return self.reload("champion alias moved")


class ChampionWatcher:
    """A daemon thread calling :meth:`ModelHolder.check` on every holder every ``interval_s``.

    Errors (registry down, broken weights) are logged and kept in ``holder.last_error``; the
    loaded model keeps serving.
    """

    def __init__(self, holders: Callable[[], list[ModelHolder]], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0; got {interval_s}")
        self._holders = holders
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checks = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="labelwise-champion-watch", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for holder in self._holders():
                try:
                    holder.check()
                except Exception as exc:  # noqa: BLE001 - keep serving the loaded model
                    holder.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("champion check failed: %s", holder.last_error)
            self.checks += 1

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
