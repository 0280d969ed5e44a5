"""Opportunistic micro-batching: requests that arrive while the model is busy run together.

There is no timer. A request that finds the model idle runs at once, alone, so latency without
concurrency is unchanged. Requests that arrive meanwhile queue up; when the running batch ends,
one of them becomes the leader and runs every queued request of the same image shape (up to
``max_batch``) in one forward pass. Only equal shapes share a batch: ultralytics letterboxes a
batch of equal shapes exactly as a single image, so a result never depends on other traffic.

A batch that fails (one unreadable image) is retried image by image, so one bad upload fails
only its own request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

Source = Path | np.ndarray  # an image file or (H, W, 3) uint8 BGR pixels


@dataclass(eq=False)
class _Job(Generic[T]):
    path: Source
    shape: Hashable
    done: bool = False
    result: T | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


class MicroBatcher(Generic[T]):
    """Runs ``predict(sources) -> list[T]`` (a detector's ``Detections``, a segmenter's
    instances) for concurrent callers, batched.

    Args:
        predict: not thread-safe; only the leader calls it, holding ``lock``.
        max_batch: most images per call (>= 1).
        lock: shared with other users of the same model (e.g. embedding).
    """

    def __init__(
        self,
        predict: Callable[[Sequence[Source]], list[T]],
        max_batch: int,
        lock: threading.Lock | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self._predict = predict
        self.max_batch = max_batch
        self._lock = lock or threading.Lock()
        self._cond = threading.Condition()
        self._queue: deque[_Job[T]] = deque()
        self._busy = False
        self.stats = BatchStats()

    def _take(self, leader: _Job[T]) -> list[_Job[T]]:
        """The leader's job plus queued jobs of its shape, oldest first (call under _cond)."""
        self._queue.remove(leader)
        batch = [leader]
        for job in list(self._queue):
            if len(batch) >= self.max_batch:
                break
            if job.shape == leader.shape:
                self._queue.remove(job)
                batch.append(job)
        return batch

    def _run(self, batch: list[_Job[T]]) -> None:
        with self._lock:
            try:
                results = self._predict([job.path for job in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"expected {len(batch)} results; got {len(results)}")
                for job, dets in zip(batch, results):
                    job.result = dets
            except Exception as exc:  # noqa: BLE001 - retried alone, or handed to its caller
                if len(batch) == 1:
                    batch[0].error = exc
                else:
                    for job in batch:
                        try:
                            job.result = self._predict([job.path])[0]
                        except Exception as single:  # noqa: BLE001
                            job.error = single

    def predict(self, path: Source, shape: Hashable | None = None) -> T:
        """The result for one image (a file or BGR pixels); ``shape`` (e.g. (width, height))
        groups batchable images; None never shares a batch."""
        source = path if isinstance(path, np.ndarray) else Path(path)
        job: _Job[T] = _Job(source, shape if shape is not None else object())
        with self._cond:
            self._queue.append(job)
            while self._busy and not job.done:
                self._cond.wait()
            if not job.done:
                self._busy = True
                batch = self._take(job)
        if not job.done:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    for item in batch:
                        item.done = True
                    self._busy = False
                    self.stats.batches += 1
                    self.stats.images += len(batch)
                    self.stats.largest = max(self.stats.largest, len(batch))
                    self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result
