"""Hot reload: atomic swaps, in-flight requests keep their model, the champion watcher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labelwise.domain import Detections
from labelwise.serving.holder import ChampionWatcher, ModelHolder, ServingModel


class SlowDetector:
    """Blocks in predict until released, so a swap can happen mid-request."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, paths):
        self.entered.set()
        assert self.release.wait(5)
        return [Detections.empty(2) for _ in paths]


class Registry:
    """A fake model registry: the champion version and a loader of it."""

    def __init__(self) -> None:
        self.version = "1"
        self.loads = 0
        self.fail = False

    def load(self) -> ServingModel:
        if self.fail:
            raise RuntimeError("registry unreachable")
        self.loads += 1
        det = SlowDetector(f"model-v{self.version}")
        det.release.set()
        return ServingModel(det, f"models:/m@champion", "champion", self.version)

    def champion(self) -> str | None:
        return self.version


def test_in_flight_request_keeps_its_model_across_a_swap():
    registry = Registry()
    holder = ModelHolder(registry.load, registry.champion)
    old = holder.current
    old.detector.release.clear()
    results = {}

    def request():
        model = holder.current  # read once, used to the end
        dets = model.predict(Path("x.png"))
        results["version"] = model.version
        results["n"] = len(dets)

    t = threading.Thread(target=request)
    t.start()
    assert old.detector.entered.wait(5)
    registry.version = "2"
    result = holder.reload()  # swaps while the request is inside predict
    assert result.as_json() == {
        "reloaded": True,
        "previous_version": "model-v1",
        "model_version": "model-v2",
        "reason": "requested",
    }
    assert holder.current.version == "model-v2"
    old.detector.release.set()
    t.join(5)
    assert results == {"version": "model-v1", "n": 0}  # finished on the model it started with
    assert holder.current.predict(Path("y.png")) is not None


def test_check_reloads_only_when_the_alias_moved():
    registry = Registry()
    holder = ModelHolder(registry.load, registry.champion)
    assert holder.check() is None  # nothing loaded yet: nothing to compare
    holder.current
    assert holder.check() is None and registry.loads == 1
    registry.version = "3"
    assert holder.check().current == "model-v3"
    assert holder.check() is None and registry.loads == 2


def test_explicit_files_are_not_watched():
    registry = Registry()
    holder = ModelHolder(registry.load, None)
    holder.current
    registry.version = "9"
    assert holder.champion_moved() is False and holder.check() is None


def test_watcher_polls_and_survives_errors():
    registry = Registry()
    holder = ModelHolder(registry.load, registry.champion)
    holder.current
    watcher = ChampionWatcher(lambda: [holder], interval_s=0.05)
    watcher.start()
    try:
        registry.fail, registry.version = True, "2"
        deadline = time.monotonic() + 5
        while holder.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "registry unreachable" in holder.last_error
        assert holder.current.version == "model-v1"  # keeps serving the loaded model
        registry.fail = False
        while holder.current.version != "model-v2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert holder.current.version == "model-v2"
    finally:
        watcher.stop()
    with pytest.raises(ValueError, match="interval_s must be > 0; got 0"):
        ChampionWatcher(lambda: [], 0)


def test_concurrent_first_use_loads_once():
    registry = Registry()
    holder = ModelHolder(registry.load, registry.champion)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(holder.current)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.loads == 1 and len({id(m) for m in seen}) == 1


def test_embed_without_embedder_is_none():
    model = ServingModel(SlowDetector("v"), "x.pt", "explicit")
    assert model.embed(Path("x.png")) is None

    class Emb:
        name = "e"

        def embed(self, paths):
            return np.ones((len(paths), 4))

    assert ServingModel(SlowDetector("v"), "x.pt", "explicit", embedder=Emb()).embed(
        Path("x")
    ).shape == (4,)


class RecordingDetector:
    """Returns one box whose x1 encodes the image's number; records every batch; ``bad`` fails."""

    version = "rec"

    def __init__(self, delay_s: float = 0.05) -> None:
        self.batches: list[list[str]] = []
        self.delay_s = delay_s

    def predict(self, paths):
        names = [Path(p).stem for p in paths]
        self.batches.append(names)
        time.sleep(self.delay_s)
        if "bad" in names:
            raise ValueError("cannot decode image bad.png")
        return [
            Detections(
                np.array([[float(n), 0, 1, 1]], np.float32),
                np.ones(1, np.float32),
                np.zeros(1, np.int64),
                np.ones((1, 1), np.float32),
            )
            for n in names
        ]


def _concurrent(model: ServingModel, jobs: list[tuple[str, object]]) -> dict[str, object]:
    results: dict[str, object] = {}

    def run(name, shape):
        try:
            results[name] = float(model.predict(Path(f"{name}.png"), shape).xyxy[0, 0])
        except ValueError as exc:
            results[name] = str(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(10)
    return results


@pytest.mark.parametrize(
    ("shapes", "max_batch", "largest_at_least", "largest_at_most"),
    [
        ([(8, 8)] * 8, 4, 2, 4),  # concurrent equal shapes share passes, never above max_batch
        ([(8, 8)] * 6, 1, 1, 1),  # max_batch 1: one image per pass
        ([(8, 8), (9, 9)] * 4, 8, 2, 8),
    ],
)
def test_concurrent_requests_share_forward_passes(
    shapes, max_batch, largest_at_least, largest_at_most
):
    det = RecordingDetector()
    model = ServingModel(det, "x.pt", "explicit", max_batch=max_batch)
    jobs = [(str(i), shape) for i, shape in enumerate(shapes)]
    results = _concurrent(model, jobs)
    assert results == {str(i): float(i) for i in range(len(shapes))}  # each gets its own answer
    sizes = [len(b) for b in det.batches]
    assert sum(sizes) == len(shapes) and largest_at_least <= max(sizes) <= largest_at_most
    shape_of = dict(jobs)
    assert all(len({shape_of[n] for n in batch}) == 1 for batch in det.batches)  # shapes never mix
    assert model.describe()["batches"]["images"] == len(shapes)


def test_alone_requests_are_not_delayed_and_none_shape_never_batches():
    det = RecordingDetector(delay_s=0.0)
    model = ServingModel(det, "x.pt", "explicit", max_batch=8)
    t0 = time.perf_counter()
    assert float(model.predict(Path("3.png"), (8, 8)).xyxy[0, 0]) == 3.0
    assert time.perf_counter() - t0 < 0.05
    _concurrent(model, [(str(i), None) for i in range(4)])
    assert all(len(batch) == 1 for batch in det.batches)


def test_one_bad_image_fails_only_its_own_request():
    det = RecordingDetector()
    model = ServingModel(det, "x.pt", "explicit", max_batch=8)
    jobs = [("1", (8, 8)), ("2", (8, 8)), ("bad", (8, 8)), ("4", (8, 8)), ("5", (8, 8))]
    results = _concurrent(model, jobs)
    assert results == {"1": 1.0, "2": 2.0, "bad": "cannot decode image bad.png", "4": 4.0, "5": 5.0}
