"""The serving API over real HTTP (uvicorn on 127.0.0.1) with a REAL Label Studio server, a real
MLflow sqlite store and a real yaml-built YOLO (random weights, imgsz 96) on generated digits.

Auth and bad-input tables run in-process in tests/unit/test_serving_contract.py. The Label
Studio URL the app uses goes through a small TCP relay owned by this module, so a test
can take "Label Studio" away (nothing listens on that port: connection refused) and bring it
back without restarting the session's server. The random model finds no box above the floor on
these images, so every image scores 0 and the deployment (threshold 1) flags everything; the
confident-image test runs a second replica whose scripted model is sure of one upload.

Tests share one module-scoped deployment and run in file order (score-batch before the hot
reload changes the served model).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient
from PIL import Image

from labelwise.perf.serving import serve_in_thread
from labelwise.catalog import Catalog
from labelwise.config import DetectorSettings, EmbedderSettings, Settings
from labelwise.datasets.digits import DigitsConfig, generate_digits
from labelwise.domain import ImageStatus
from labelwise.labelstudio import LabelStudioClient
from labelwise.reasons import REASON_CODES
from labelwise.runtime import open_catalog
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch
from labelwise.serving import ServingSettings, create_app
from labelwise.serving.auth import create_api_key
from tests.relay import TcpRelay

pytestmark = pytest.mark.integration

CLASSES = [str(d) for d in range(10)]
GROUP = "field-cam-1"
MAX_UPLOAD = 256 * 1024


@dataclass
class Deployment:
    url: str
    http: httpx.Client  # with the project key
    settings: Settings
    catalog: Catalog
    key: str
    uploads: list[Path]  # images never added to the pool: the "field" traffic
    pool_ids: list[str]
    relay: TcpRelay
    ls: LabelStudioClient  # straight to the server, not through the relay
    admin: dict[str, str]  # headers with an all-projects key: reload and stats need one


def png_bytes(path: Path, tweak: bool = False) -> bytes:
    """The image as PNG bytes; ``tweak`` changes one pixel (a near-duplicate)."""
    pixels = np.array(Image.open(path).convert("RGB"))
    if tweak:
        pixels[0, 0] = (pixels[0, 0].astype(int) + 40) % 256
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def deployment(make_ls_settings, labelstudio, tmp_path_factory) -> Iterator[Deployment]:
    ls_url, token, _root = labelstudio
    relay = TcpRelay(int(ls_url.rsplit(":", 1)[1]))
    relay.start()
    base = make_ls_settings("serving", url=relay.url, retries=1, timeout_s=10.0)
    detector = DetectorSettings(model="yolov8n.yaml", imgsz=96, batch=4)
    embedder = EmbedderSettings(kind="detector")
    settings = base.model_copy(update={"detector": detector, "embedder": embedder})
    config = DigitsConfig(pool_images=10, val_images=1, test_images=0, duplicate_cluster_fraction=0)
    data = generate_digits(tmp_path_factory.mktemp("digits"), config)
    images = sorted(data.pool_images.glob("*.png"))
    catalog = open_catalog(settings)
    project = catalog.create_project("digits", CLASSES)
    pool_ids = catalog.add_images(project, images[:4]).added
    key, _ = create_api_key(catalog, ["digits"])
    admin_key, _ = create_api_key(catalog, [], all_projects=True)
    # fmt: off
    serving = ServingSettings(
        project="digits", routing_threshold=1.0, upload_group=GROUP,
        near_duplicate_distance=0.001, rate_per_minute=None, rate_per_hour=None,
        rate_per_day=None, max_upload_bytes=MAX_UPLOAD,
        poll_interval_s=2.0, delivery_retry_base_s=0.2, delivery_retry_max_s=1.0,
    )
    # fmt: on
    app = create_app(settings, serving, catalog=catalog)  # model: champion, else detector.model
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        LabelStudioClient(ls_url, token, retries=1) as ls,
    ):
        yield Deployment(url, http, settings, catalog, key, images[4:], pool_ids, relay, ls,
                         {"Authorization": f"Bearer {admin_key}"})
    relay.stop()
    catalog.close()


def predict(dep: Deployment, data: bytes, **kwargs: Any) -> httpx.Response:
    return dep.http.post("/v1/predict", files={"file": ("upload.png", data, "image/png")}, **kwargs)


def group_tasks(dep: Deployment, group: str) -> dict[str, dict[str, Any]]:
    """Tasks of the group's Data Manager tab in the REAL server, by image id."""
    ls_project = dep.catalog.project("digits").ls_project_id
    if ls_project is None:
        return {}
    title = f"group: {group}"
    views = [v for v in dep.ls.list_views(ls_project) if v["data"].get("title") == title]
    if not views:
        return {}
    tasks = dep.ls.list_tasks(ls_project, view_id=int(views[0]["id"]))
    return {t["data"]["image_id"]: t for t in tasks}


def stats(dep: Deployment) -> dict[str, Any]:
    response = dep.http.get("/v1/serving/stats", headers=dep.admin)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------------------- flagging
def test_low_score_image_is_flagged_and_lands_in_the_group_view(deployment):
    dep = deployment
    response = predict(dep, png_bytes(dep.uploads[0]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["flagged"] and body["queued_for_review"] and body["flag_suppressed_reason"] is None
    assert body["routing_strategy"] == "entropy" and body["routing_score"] < 1.0
    assert body["upload_group"] == GROUP
    assert response.headers["X-Model-Version"] == body["model_version"]
    image_id = body["image_id"]
    project = dep.catalog.project("digits")
    stored = dep.catalog.image(project, image_id)  # durable in the pool, bytes under uploads/
    assert stored.path.read_bytes() == png_bytes(dep.uploads[0])
    assert stored.path.parent == dep.settings.state_dir / "uploads" / "digits"
    assert image_id in dep.catalog.predictions(project, body["model_version"], [image_id])
    task = wait_for(lambda: group_tasks(dep, GROUP).get(image_id), 30, "the task in the group view")
    assert task["data"]["group"] == GROUP
    queued = lambda: dep.catalog.image(project, image_id).status is ImageStatus.QUEUED  # noqa: E731
    wait_for(queued, 10, "the image to be queued")
    again = predict(dep, png_bytes(dep.uploads[0])).json()
    assert again["flagged"] and not again["queued_for_review"]
    assert again["flag_suppressed_reason"] == "already_in_pool"
    near = predict(dep, png_bytes(dep.uploads[0], tweak=True)).json()
    assert near["image_id"] != image_id and near["flag_suppressed_reason"] == "near_duplicate"
    counts = stats(dep)["counts"]
    assert counts["suppressed"] == {"already_in_pool": 1, "near_duplicate": 1}


def test_confident_image_is_not_flagged(deployment):
    """A second replica whose model is sure of one upload and unsure of another, with a real
    threshold between their scores: the confident image is answered and left alone, the
    uncertain one is flagged, stored and reaches its group's tab in Label Studio."""
    from labelwise.domain import Detections
    from labelwise.serving.holder import ServingModel

    dep = deployment
    confident_path, uncertain_path = dep.uploads[1], dep.uploads[4]
    rgb = {path: np.array(Image.open(path).convert("RGB"))
           for path in (confident_path, uncertain_path)}
    top = {confident_path: 0.991, uncertain_path: 1.0 / len(CLASSES)}  # top class probability

    class ScriptedDetector:
        """One box at confidence 0.9 over the two uploads; sure or unsure of its class."""

        version = "scripted-v1"

        def predict(self, sources: list[Any]) -> list[Detections]:
            out = []
            for pixels in sources:  # (H, W, 3) BGR arrays, as YoloDetector.predict takes
                (path,) = [p for p, x in rgb.items() if np.array_equal(pixels[:, :, ::-1], x)]
                rest = (1.0 - top[path]) / (len(CLASSES) - 1)
                probs = np.full((1, len(CLASSES)), rest, np.float32)
                probs[0, 0] = top[path]
                out.append(Detections(np.array([[1, 1, 40, 40]], np.float32),
                                      np.array([0.9], np.float32), np.array([0]), probs))
            return out

    def source(project):  # type: ignore[no-untyped-def]
        return (lambda: ServingModel(ScriptedDetector(), "scripted.pt", "explicit")), None

    group = "replica-2"
    threshold = 0.5
    replica = ServingSettings(
        project="digits", routing_threshold=threshold, upload_group=group,
        rate_per_minute=None, rate_per_hour=None, rate_per_day=None,
        poll_interval_s=0, delivery_retry_base_s=0.2, delivery_retry_max_s=1.0,
    )
    app = create_app(dep.settings, replica, catalog=dep.catalog, model_source=source)
    project = dep.catalog.project("digits")
    with TestClient(app) as client:
        def post(path: Path) -> dict[str, Any]:
            response = client.post(
                "/v1/predict",
                files={"file": ("x.png", png_bytes(path), "image/png")},
                headers={"Authorization": f"Bearer {dep.key}"},
            )
            assert response.status_code == 200, response.text
            return response.json()

        sure, unsure = post(confident_path), post(uncertain_path)
        assert sure["routing_threshold"] == unsure["routing_threshold"] == threshold
        assert unsure["routing_score"] < threshold < sure["routing_score"], (sure, unsure)
        decision = (sure["flagged"], sure["queued_for_review"], sure["flag_suppressed_reason"])
        assert decision == (False, False, None)
        flagged = (unsure["flagged"], unsure["queued_for_review"], unsure["flag_suppressed_reason"])
        assert flagged == (True, True, None)
        wait_for(lambda: unsure["image_id"] in group_tasks(dep, group), 30,
                 "the uncertain image in the replica's group tab")
        wait_for(lambda: stats(dep)["outbox"]["pending"] == 0, 30, "the outbox to drain")
    assert not dep.catalog.images(project, image_ids=[sure["image_id"]])
    assert dep.catalog.images(project, image_ids=[unsure["image_id"]])
    assert sure["image_id"] not in group_tasks(dep, group)
    assert sure["image_id"] not in group_tasks(dep, GROUP)


@pytest.mark.faults
def test_labelstudio_down_never_fails_a_prediction_and_the_flag_arrives_later(deployment):
    dep = deployment
    dep.relay.stop()  # nothing listens on the app's Label Studio port now
    try:
        response = predict(dep, png_bytes(dep.uploads[2]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["queued_for_review"] is True
        def tried() -> dict[str, Any] | None:
            s = stats(dep)["outbox"]
            return s if s["pending"] >= 1 and s["last_error"] else None

        failing = wait_for(tried, 30, "a failed delivery attempt")
        assert "LabelStudioUnavailable" in failing["last_error"]
        assert body["image_id"] not in group_tasks(dep, GROUP)
    finally:
        dep.relay.start()  # "Label Studio is back"
    wait_for(lambda: stats(dep)["outbox"]["pending"] == 0, 30, "the outbox to drain")
    assert body["image_id"] in group_tasks(dep, GROUP)


def test_every_response_carries_the_model_version(deployment):
    dep = deployment
    for path in ("/healthz", "/v1/serving/stats", "/v1/label/score-batch?project_id=p&limit=0"):
        assert dep.http.get(path).headers.get("X-Model-Version", "").startswith("yolov8n-"), path


# ------------------------------------------------------------------------------- labelling API
def test_auto_label_then_score_batch_matches_the_cli(deployment):
    dep = deployment
    body = {"project_id": "digits", "model": "yolov8n.yaml"}
    started = dep.http.post("/v1/labeling/auto", json=body)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    second = dep.http.post("/v1/labeling/auto", json={"project_id": "digits"})  # one run at a time
    assert second.status_code in (202, 409), second.text
    runs = [run_id] + ([second.json()["run_id"]] if second.status_code == 202 else [])
    if second.status_code == 409:
        assert "still running" in second.json()["detail"]
    def finished(run: str) -> dict[str, Any]:
        def status() -> dict[str, Any] | None:
            s = dep.http.get(f"/v1/labeling/auto/{run}").json()
            return s if s["status"] != "running" else None

        return wait_for(status, 90, "auto-label to finish")

    done = [finished(run) for run in runs]
    assert [d["status"] for d in done] == ["completed"] * len(runs), done
    report = done[0]["report"]
    assert report["predicted"] >= len(dep.pool_ids) and report["embedded"] >= 1
    wait_for(lambda: stats(dep)["outbox"]["pending"] == 0, 30, "the outbox to drain")
    diverse = {"limit": 2, "diversity_weight": 0.3}
    cases = (("entropy", {"limit": 3}), ("diverse_uncertainty", diverse))
    for strategy, params in cases:
        query = {"project_id": "digits", "strategy": strategy, **params}
        response = dep.http.get("/v1/label/score-batch", params=query)
        assert response.status_code == 200, response.text
        got = response.json()
        request = ScoreBatchRequest.from_settings(dep.settings, "digits", strategy=strategy,
                                                  **params)
        cli = build_score_batch(dep.catalog, dep.settings, request, record=False).as_json()
        for item in cli["queue"]:
            item["thumbnail"] = f"{dep.url}/v1/thumbnails/{item['image_id']}?project_id=digits"
        assert got == cli
        assert got["queue"], got
        thumb = dep.http.get(got["queue"][0]["thumbnail"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).size[0] <= 128


def test_assignments_queue_exactly_those_images(deployment):
    dep = deployment
    project = dep.catalog.project("digits")
    free = [i for i in dep.pool_ids
            if dep.catalog.image(project, i).status is ImageStatus.UNLABELLED]
    ids = free[:2]
    body = {"project_id": "digits", "image_ids": ids, "group": "manual"}
    response = dep.http.post("/v1/assignments/queue", json=body)
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["image_ids"]) == sorted(ids) and body["result"]["created"] == 2
    assert sorted(group_tasks(dep, "manual")) == sorted(ids)
    assert all(dep.catalog.image(project, i).status is ImageStatus.QUEUED for i in ids)
    again = dep.http.post("/v1/assignments/queue", json={"project_id": "digits", "image_ids": ids})
    assert again.status_code == 409 and "image_ids" in again.text


def test_the_product_pages_client_runs_verbatim(deployment):
    """The product page's closed-loop client, its three calls unchanged (``requests``, real
    HTTP): the queue to label next, auto-label with a form body, then the assignment of that
    queue as JSON without ``project_id`` (the key is limited to the project)."""
    dep = deployment
    base, pid = dep.url, "digits"
    auth = {"Authorization": f"Bearer {dep.key}"}
    # --- the client's call 1 ---
    batch = requests.get(f"{base}/v1/label/score-batch", headers=auth,
                         params={"project_id": pid, "strategy": "entropy", "limit": 10}).json()
    queue = batch["queue"]
    ids = [item["image_id"] for item in queue]
    assert queue and batch["strategy"] == "entropy", batch
    scores = [item["uncertainty_score"] for item in queue]
    assert scores == sorted(scores)
    for item in queue:
        assert set(item["scores"]) == {"lowest_confidence", "margin_sampling", "entropy"}, item
        assert item["reason"] in REASON_CODES and item["reason_text"], item  # why it was picked
        thumb = requests.get(item["thumbnail"], headers=auth)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"
    # --- the client's call 2 ---
    started = requests.post(f"{base}/v1/labeling/auto", headers=auth,
                            data={"project_id": pid, "tasks": "detect"})
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["project_id"], run["tasks"]) == (pid, ["detect"])

    def finished() -> dict[str, Any] | None:
        s = dep.http.get(f"/v1/labeling/auto/{run['run_id']}").json()
        return s if s["status"] != "running" else None

    assert wait_for(finished, 90, "auto-label to finish")["status"] == "completed"
    # --- the client's call 3 ---
    assigned = requests.post(f"{base}/v1/assignments/queue", headers=auth,
                             json={"image_ids": ids})
    assert assigned.status_code == 200, assigned.text
    body = assigned.json()
    assert body["project_id"] == pid and sorted(body["image_ids"]) == sorted(ids)
    assert body["result"]["created"] == len(ids)
    project = dep.catalog.project(pid)
    assert all(dep.catalog.image(project, i).status is ImageStatus.QUEUED for i in ids)


# ------------------------------------------------------------------------------- MLflow
def digest(model_version: str) -> str:
    """The weights digest of a model version (``<file stem>-<digest>``)."""
    return model_version.rsplit("-", 1)[-1]


def _register(dep: Deployment, seed: int, round_number: int, map50_95: float) -> tuple[str, str]:
    """Register weights of a yaml model built with ``seed`` as champion; returns (registry
    version, weights digest)."""
    from labelwise.detector import YoloDetector
    from labelwise.learn import tracker_for

    det = YoloDetector.load("yolov8n.yaml", dep.settings.detector, dep.settings.state_dir,
                            class_names=CLASSES, seed=seed)
    weights = det.save(dep.settings.state_dir / "candidates" / f"seed-{seed}.pt")
    tracker = tracker_for(dep.settings, "digits")
    run_id = tracker.start_round(None, round_number, {"strategy": "entropy"})
    tracker.log_metrics(run_id, {"mAP50-95": map50_95, "labelled_images": 4.0}, step=round_number)
    version = tracker.register_weights(run_id, weights)
    tracker.end_run(run_id)
    tracker.client.set_registered_model_alias(tracker.model_name, "champion", version)
    return version, digest(det.version)


def test_hot_reload_by_endpoint_and_by_poll_without_dropping_requests(deployment):
    dep = deployment
    before = stats(dep)["model"]
    assert before["source"] == "configured"  # no champion when the app started
    registry_v1, model_v1 = _register(dep, seed=1, round_number=1, map50_95=0.1)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        files = {"file": ("x.png", png_bytes(dep.uploads[3]), "image/png")}
        with httpx.Client(base_url=dep.url, headers=dep.http.headers, timeout=60) as c:
            while not stop.is_set():
                r = c.post("/v1/predict", files=files)
                statuses.append(r.status_code)
                versions.add(r.headers.get("X-Model-Version", ""))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        response = dep.http.post("/v1/admin/reload", headers=dep.admin)
        assert response.status_code == 200, response.text
        assert digest(response.json()["model_version"]) == model_v1
        assert response.json()["registry_version"] == registry_v1
        registry_v2, model_v2 = _register(dep, seed=2, round_number=2, map50_95=0.2)
        polled = lambda: digest(stats(dep)["model"]["model_version"]) == model_v2  # noqa: E731
        wait_for(polled, 30, "the poll to load v2")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert statuses and set(statuses) == {200}  # nothing dropped across two swaps
    assert {digest(v) for v in versions} <= {digest(before["model_version"]), model_v1, model_v2}
    assert model_v2 in {digest(v) for v in versions}
    after = predict(dep, png_bytes(dep.uploads[3]))
    assert after.headers["X-Model-Version"] == after.json()["model_version"]
    assert digest(after.json()["model_version"]) == model_v2
    assert stats(dep)["model"]["registry_version"] == registry_v2


def test_rounds_come_from_mlflow(deployment):
    dep = deployment
    response = dep.http.get("/v1/rounds", params={"project_id": "digits"})
    assert response.status_code == 200, response.text
    rounds = {r["round"]: r["metrics"] for r in response.json()["rounds"]}
    assert rounds[1]["mAP50-95"] == pytest.approx(0.1)
    assert rounds[2]["mAP50-95"] == pytest.approx(0.2)
