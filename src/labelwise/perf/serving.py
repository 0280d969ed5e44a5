"""Serving overhead and throughput: ``POST /v1/predict`` over real HTTP vs the bare model.

Runs in a throw-away state folder: a digits image, a yaml-built YOLO (random weights, so the
figures measure the serving path, not accuracy), the API under uvicorn on 127.0.0.1 in its own
process, as deployed (a server in a thread of the client's process would share the client's
GIL: every byte httpx encodes or parses would be charged to the server).

* Latency: ``samples`` sequential requests, each paired with one bare ``detector.predict`` on
  the same image file (interleaved, so both see the same machine state); p50/p95 in ms and the
  overhead ratio HTTP / bare (goal <= 1.15). The latency client is the standard library's
  keep-alive ``http.client`` with the multipart body encoded once, so the figure is the
  server's: each sample covers sending the request, the whole server path and reading and
  JSON-decoding the answer.
* Load: ``requests`` requests from ``concurrency`` client threads (one httpx client each);
  requests/s over the wall time, and every status must be 200. Concurrent requests of equal
  image size share forward passes (``max_batch``; 1 turns batching off for comparison).

The threshold is 0 so nothing is flagged: the figures are those of the prediction path (flagged
images add one embedding and a few catalog writes; delivery is off the request path).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OVERHEAD_GOAL = 1.15


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, port: int | None = None, timeout_s: float = 60.0) -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 in a daemon thread; yields its base URL.

    The app's lifespan runs (start-up before the yield, shutdown after); the server is stopped
    and its thread joined on exit.
    """
    import uvicorn

    port = port or _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(
                    f"uvicorn did not start on 127.0.0.1:{port} within {timeout_s} s"
                )
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


def _serve_main(settings_json: str, serving_json: str, port: int) -> None:
    """Child process: build the app from the settings and run uvicorn on 127.0.0.1:port."""
    import uvicorn

    from labelwise.config import Settings
    from labelwise.serving import ServingSettings, create_app

    app = create_app(
        Settings.model_validate_json(settings_json),
        ServingSettings.model_validate_json(serving_json),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def serve_in_process(settings: Any, serving: Any, timeout_s: float = 120.0) -> Iterator[str]:
    """Run the API for ``settings``/``serving`` under uvicorn in a spawned child process on
    127.0.0.1; yields its base URL once ``/healthz`` answers. The child is terminated (killed
    after 10 s) on exit.
    """
    import multiprocessing

    import httpx

    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(
        target=_serve_main,
        args=(settings.model_dump_json(), serving.model_dump_json(), port),
        name=f"labelwise-bench-serve-{port}",
        daemon=True,
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if not proc.is_alive():
                raise RuntimeError(f"the API process exited with code {proc.exitcode} before it "
                                   f"answered on {url}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer on {url}/healthz within {timeout_s} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


class _LeanClient:
    """POST one pre-encoded multipart body over a keep-alive ``http.client`` connection."""

    def __init__(self, url: str, path: str, headers: dict[str, str], files: dict[str, Any]) -> None:
        import http.client
        from urllib.parse import urlsplit

        import httpx

        encoded = httpx.Request("POST", url + path, headers=headers, files=files)
        self.body = encoded.read()
        self.headers = {k: v for k, v in encoded.headers.items() if k.lower() != "host"}
        self.path = path
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"serving URL must name a host; got {url!r}")
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(self) -> tuple[int, dict[str, Any], str | None]:
        """(status, decoded JSON answer, X-Model-Version)."""
        import json

        self.conn.request("POST", self.path, self.body, self.headers)
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        return response.status, payload, response.getheader("X-Model-Version")

    def close(self) -> None:
        self.conn.close()


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "p50": round(1000 * statistics.median(ordered), 2),
        "p95": round(1000 * p95, 2),
        "mean": round(1000 * statistics.fmean(ordered), 2),
    }


def bench_serving(
    requests: int = 200,
    concurrency: int = 4,
    samples: int = 60,
    imgsz: int = 128,
    model: str = "yolov8n.yaml",
    warmup: int = 5,
    threads: int = 0,
    max_batch: int = 8,
    pause_s: float = 0.05,
) -> dict[str, Any]:
    """Measure the serving path (see the module docstring); returns JSON-ready figures.

    Args:
        requests: requests of the load phase; concurrency: client threads in it.
        samples: interleaved (bare, HTTP) latency pairs.
        imgsz: inference size in pixels; model: a yaml name or .pt path.
        threads: torch intra-op threads (0 = every core).
        max_batch: most concurrent requests per forward pass (detector.batch; 1 = no batching).
        pause_s: idle time before each timed call. The bare model and the API run in two
            processes with their own torch thread pools; a pool keeps spinning for a moment
            after its work, which would steal the cores from the other process's next call.
    """
    from labelwise.config import DetectorSettings, EmbedderSettings, Settings
    from labelwise.datasets.digits import DigitsConfig, generate_digits
    from labelwise.runtime import load_detector, open_catalog
    from labelwise.serving import ServingSettings
    from labelwise.serving.auth import create_api_key

    if requests < 1 or concurrency < 1 or samples < 2:
        raise ValueError(
            f"requests, concurrency must be >= 1 and samples >= 2; got {requests}, "
            f"{concurrency}, {samples}"
        )
    with tempfile.TemporaryDirectory(prefix="labelwise-bench-serving-") as tmp:
        root = Path(tmp)
        ds = generate_digits(
            root / "digits", DigitsConfig(pool_images=2, val_images=1, test_images=0)
        )
        image = sorted(ds.pool_images.glob("*.png"))[0]
        data = image.read_bytes()
        settings = Settings(
            state_dir=root / "state",
            detector=DetectorSettings(model=model, imgsz=imgsz, batch=max_batch, threads=threads),
            embedder=EmbedderSettings(kind="none"),
        )
        catalog = open_catalog(settings)
        project = catalog.create_project("bench", list(ds.class_names))
        key, _ = create_api_key(catalog, [project.name])
        bare = load_detector(settings, project.class_names, model)
        serving = ServingSettings(
            project=project.name, model=model, routing_threshold=0.0, poll_interval_s=0
        )
        catalog.close()  # the API process opens its own
        headers = {"Authorization": f"Bearer {key}"}
        files = {"file": (image.name, data, "image/png")}
        with serve_in_process(settings, serving) as url:
            client = _LeanClient(url, "/v1/predict", headers, files)
            try:
                for _ in range(warmup):
                    bare.predict([image])
                    client.post()
                bare_s, http_s = [], []
                for _ in range(samples):
                    time.sleep(pause_s)  # let the other process's torch threads stop spinning
                    t0 = time.perf_counter()
                    bare.predict([image])
                    bare_s.append(time.perf_counter() - t0)
                    time.sleep(pause_s)
                    t0 = time.perf_counter()
                    status, answer, version = client.post()
                    http_s.append(time.perf_counter() - t0)
                    if status != 200:
                        raise RuntimeError(f"/v1/predict answered {status}: {answer}")
            finally:
                client.close()
            load = _load(url, headers, files, requests, concurrency)
    bare_ms, http_ms = _ms(bare_s), _ms(http_s)
    ratio50 = http_ms["p50"] / bare_ms["p50"]
    return {
        "model": model,
        "model_version": version,
        "imgsz": imgsz,
        "threads": threads,
        "max_batch": max_batch,
        "image_bytes": len(data),
        "bare_predict_ms": bare_ms,
        "http_predict_ms": http_ms,
        "overhead_ratio_p50": round(ratio50, 3),
        "overhead_ratio_p95": round(http_ms["p95"] / bare_ms["p95"], 3),
        "overhead_goal": OVERHEAD_GOAL,
        "meets_goal": ratio50 <= OVERHEAD_GOAL,
        "bare_images_per_s": round(1000 / bare_ms["p50"], 1),
        "load": load,
    }


def _load(
    url: str, headers: dict[str, str], files: dict[str, Any], requests: int, concurrency: int
) -> dict[str, Any]:
    import httpx

    per_client = [
        requests // concurrency + (1 if i < requests % concurrency else 0)
        for i in range(concurrency)
    ]
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client_run(n: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            for _ in range(n):
                t0 = time.perf_counter()
                status = client.post("/v1/predict", files=files).status_code
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    statuses.append(status)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_run, per_client))
    seconds = time.perf_counter() - t0
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "non_200": sum(1 for s in statuses if s != 200),
        "latency_ms": _ms(latencies),
    }


if __name__ == "__main__":  # pragma: no cover - python -m labelwise.perf.serving
    import json

    print(json.dumps(bench_serving(), indent=2))
