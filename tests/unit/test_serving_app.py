"""The app in-process with a fake detector/embedder: flag pipeline, size cap, headers, reload."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from labelwise.config import Settings
from labelwise.domain import Detections, ImageStatus
from labelwise.serving import ServingSettings, create_app
from labelwise.serving import outbox
from labelwise.serving.auth import create_api_key
from labelwise.serving.holder import ServingModel


class FakeDetector:
    """One box whose class distribution is uncertain for red images and certain otherwise."""

    def __init__(self, version: str = "fake-v1") -> None:
        self.version = version

    def predict(self, paths):
        out = []
        for source in paths:  # files or (H, W, 3) BGR arrays, as YoloDetector.predict takes
            if isinstance(source, np.ndarray):
                rgb = source[:, :, ::-1].astype(np.float32)
            else:
                rgb = np.asarray(Image.open(source).convert("RGB"), np.float32)
            red = rgb.mean(axis=(0, 1))[0] > 128
            probs = [[0.5, 0.5]] if red else [[0.999, 0.001]]
            out.append(
                Detections(
                    np.array([[1, 2, 10, 12]], np.float32),
                    np.array([0.9], np.float32),
                    np.array([0]),
                    np.array(probs, np.float32),
                )
            )
        return out


class FakeEmbedder:
    name = "fake-colour"

    def embed(self, paths):
        rows = [
            np.asarray(Image.open(p).convert("RGB"), np.float32).mean(axis=(0, 1)) + 1
            for p in paths
        ]
        return np.stack([r / np.linalg.norm(r) for r in rows])


def png(colour, size=(24, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def app_env(tmp_path, catalog):
    settings = Settings(state_dir=tmp_path / "state")
    catalog.create_project("p", ["a", "b"])
    key, _ = create_api_key(catalog, ["p"])
    versions = ["fake-v1"]
    delivered = []

    def source(project):
        return (
            lambda: ServingModel(
                FakeDetector(versions[-1]), "fake.pt", "explicit", None, FakeEmbedder()
            )
        ), None

    serving = ServingSettings(
        project="p",
        routing_threshold=0.5,
        near_duplicate_distance=0.001,
        max_upload_bytes=4096,
        poll_interval_s=0,
        upload_group="g",
    )
    app = create_app(
        settings, serving, catalog=catalog, model_source=source, deliver=delivered.append
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, catalog, settings, versions, delivered


@pytest.fixture
def admin(catalog):
    """Headers of an all-projects key: what the admin endpoints (reload, stats) need."""
    key, _ = create_api_key(catalog, [], all_projects=True)
    return {"Authorization": f"Bearer {key}"}


def post(client, data, **kw):
    return client.post("/v1/predict", files={"file": ("x.png", data, "image/png")}, **kw)


def test_flag_pipeline_stores_durably_and_applies_guards(app_env, admin):
    client, catalog, settings, _, _ = app_env
    red = post(client, png((250, 0, 0))).json()
    assert (red["flagged"], red["queued_for_review"]) == (True, True)
    assert red["routing_score"] == 0.0 and red["boxes"][0]["class_name"] == "a"
    earlier = {k: red[f"evaluation_{k}"] for k in ("strategy", "score", "threshold")}  # deprecated
    assert earlier == {k: red[f"routing_{k}"] for k in ("strategy", "score", "threshold")}
    project = catalog.project("p")
    image = catalog.image(project, red["image_id"])
    assert image.status is ImageStatus.UNLABELLED  # the (fake) delivery does not queue it
    assert image.path == settings.state_dir / "uploads" / "p" / f"{red['image_id']}.png"
    assert catalog.predictions(project, "fake-v1")[red["image_id"]].probs.tolist() == [[0.5, 0.5]]
    assert set(catalog.embeddings(project, "fake-colour")) == {red["image_id"]}
    assert outbox.flagged_image_ids(catalog, project) == [red["image_id"]]
    assert post(client, png((250, 0, 0))).json()["flag_suppressed_reason"] == "already_flagged"
    near = post(client, png((251, 0, 0))).json()
    assert near["flag_suppressed_reason"] == "near_duplicate" and near["queued_for_review"] is False
    green = post(client, png((0, 250, 0))).json()
    assert (green["flagged"], green["queued_for_review"], green["flag_suppressed_reason"]) == (
        False,
        False,
        None,
    )
    assert not catalog.images(project, image_ids=[green["image_id"], near["image_id"]])
    assert not list(
        (settings.state_dir / "uploads" / "p" / ".incoming").iterdir()
    )  # temp files gone
    counts = client.get("/v1/serving/stats", headers=admin).json()["counts"]
    assert counts == {
        "predictions": 4,
        "flagged": 3,
        "queued_for_review": 1,
        "suppressed": {"already_flagged": 1, "near_duplicate": 1},
    }


def test_a_confident_prediction_writes_no_file(app_env):
    """Only flagged uploads touch the disk: the model predicts on the decoded pixels."""
    client, _, settings, _, _ = app_env
    uploads = settings.state_dir / "uploads"
    assert post(client, png((0, 250, 0))).json()["flagged"] is False
    assert not uploads.exists() or not [p for p in uploads.rglob("*") if p.is_file()]


def test_uploads_over_the_cap_are_413_even_without_content_length(app_env):
    client = app_env[0]
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, "PNG")
    assert len(buf.getvalue()) > 4096
    assert post(client, buf.getvalue()).status_code == 413

    boundary = "xyz"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\0" * 200_000
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    response = client.post(
        "/v1/predict",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413 and "file" in response.json()["detail"]


def test_reload_swaps_the_model_and_headers_follow(app_env, admin):
    client, _, _, versions, _ = app_env
    assert post(client, png((0, 0, 250))).headers["X-Model-Version"] == "fake-v1"
    versions.append("fake-v2")
    result = client.post("/v1/admin/reload", headers=admin).json()
    assert (result["previous_version"], result["model_version"], result["reloaded"]) == (
        "fake-v1",
        "fake-v2",
        True,
    )
    assert client.get("/healthz").headers["X-Model-Version"] == "fake-v2"
    assert post(client, png((0, 0, 251))).json()["model_version"] == "fake-v2"


def test_delivery_runs_off_the_request_path(app_env):
    client, catalog, _, _, delivered = app_env
    red = post(client, png((200, 10, 10))).json()
    import time

    deadline = time.monotonic() + 5
    while not delivered and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [item.image_id for item in delivered] == [red["image_id"]]
    assert delivered[0].group == "g" and delivered[0].model_version == "fake-v1"


def test_rate_caps_suppress_and_report(tmp_path, catalog, admin):
    settings = Settings(state_dir=tmp_path / "state")
    catalog.create_project("p", ["a", "b"])
    key, _ = create_api_key(catalog, ["p"])
    source = lambda project: (
        (lambda: ServingModel(FakeDetector(), "fake.pt", "explicit")),
        None,
    )  # noqa: E731
    capped = ServingSettings(
        project="p",
        routing_threshold=1.0,
        rate_per_minute=1,
        near_duplicate_distance=0.0,
        poll_interval_s=0,
    )
    app = create_app(
        settings, capped, catalog=catalog, model_source=source, deliver=lambda item: None
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        bodies = [post(client, png(colour)).json() for colour in ((0, 0, 200), (0, 200, 0))]
        usage = client.get("/v1/serving/stats", headers=admin).json()
    assert [b["flag_suppressed_reason"] for b in bodies] == [None, "rate_cap_minute"]
    assert [b["queued_for_review"] for b in bodies] == [True, False]
    assert usage["rate_caps"]["minute"] == {"used": 1, "cap": 1}
    assert usage["counts"]["suppressed"] == {"rate_cap_minute": 1}
    # a restart counts the flags already in the outbox
    again = create_app(
        settings, capped, catalog=catalog, model_source=source, deliver=lambda item: None
    )
    with TestClient(again) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        assert (
            post(client, png((200, 200, 0))).json()["flag_suppressed_reason"] == "rate_cap_minute"
        )


# -- admin endpoints need an all-projects key (issue 12, item 7) ---------------------------
ADMIN_ENDPOINTS = [("POST", "/v1/admin/reload"), ("GET", "/v1/serving/stats")]


@pytest.mark.faults
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=["reload", "stats"])
@pytest.mark.parametrize("query", ["", "?project_id=p"], ids=["default-project", "named-project"])
def test_admin_endpoints_refuse_a_single_project_key(app_env, method, path, query):
    """A key for project p only, even asking about p itself: 403 saying what is needed."""
    client = app_env[0]  # its default headers carry the single-project key
    response = client.request(method, path + query)
    assert response.status_code == 403, (
        f"expected 403 for a single-project key on {path}; got {response.status_code}: "
        f"{response.text[:200]}")
    detail = response.json()["detail"]
    assert f"{method} {path} needs an all-projects API key" in detail, detail
    assert "labelwise api-key create --all" in detail and "limited to projects ['p']" in detail


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=["reload", "stats"])
def test_admin_endpoints_serve_an_all_projects_key(app_env, admin, method, path):
    client = app_env[0]
    response = client.request(method, path + "?project_id=p", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["project_id"] == "p"


# -- one upload is one file (issue 12, item 7) ---------------------------------------------
# id, multipart parts, the field the 422 must name, the count it must report
REPEATED_PARTS = [
    ("two-files", [("file", ("a.png", png((250, 0, 0)), "image/png")),
                   ("file", ("b.png", png((0, 250, 0)), "image/png"))], "file", 2),
    ("three-files", [("file", (f"{k}.png", png((k, 0, 0)), "image/png")) for k in range(3)],
     "file", 3),
    ("two-projects", [("file", ("a.png", png((0, 0, 250)), "image/png")),
                      ("project", (None, "p")), ("project", (None, "p"))], "project", 2),
]


@pytest.mark.faults
@pytest.mark.parametrize(("parts", "field", "count"), [c[1:] for c in REPEATED_PARTS],
                         ids=[c[0] for c in REPEATED_PARTS])
def test_repeated_upload_parts_are_422_not_the_last_one(app_env, admin, parts, field, count):
    client = app_env[0]
    response = client.post("/v1/predict", files=parts)
    assert response.status_code == 422, (
        f"expected 422 for {count} {field!r} parts; got {response.status_code}: {response.text}")
    assert response.json()["detail"] == (
        f"{field}: expected one {field!r} part per request; got {count}")
    stats = client.get("/v1/serving/stats", headers=admin).json()
    assert stats["counts"].get("predictions", 0) == 0  # nothing was predicted or stored
    single = client.post("/v1/predict", files=parts[:1])
    assert single.status_code == 200, single.text


def test_a_classification_project_is_served_its_class_distribution(tmp_path, catalog, admin):
    """A real (yaml-built) classifier behind /v1/predict: the response carries the task and the
    full distribution, no boxes; the routing score is the softmax row's, flagged uploads queue."""
    from labelwise.classifier import YoloClassifier
    from labelwise.config import DetectorSettings
    from labelwise.task_types import TaskType
    from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics

    prepare_ultralytics(current_config_dir() or tmp_path / "ul")
    names = ["cat", "dog", "bird"]
    classifier = YoloClassifier.load("yolov8n-cls.yaml", DetectorSettings(imgsz=32, batch=4),
                                     tmp_path / "state", class_names=names)
    settings = Settings(state_dir=tmp_path / "state")
    catalog.create_project("c", names, task_type=TaskType.CLASSIFY)
    key, _ = create_api_key(catalog, ["c"])
    serving = ServingSettings(project="c", routing_threshold=0.99, poll_interval_s=0, upload_group="g")
    app = create_app(settings, serving, catalog=catalog, deliver=lambda _d: None,
                     model_source=lambda _p: ((lambda: ServingModel(classifier, "yolov8n-cls.yaml",
                                                                    "explicit")), None))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        reply = client.post("/v1/predict", files={"file": ("x.png", png((30, 120, 200), (40, 30)),
                                                            "image/png")}).json()
    assert reply["task"] == "classify" and reply["boxes"] == []
    assert [c["class_name"] for c in reply["classes"]] != [] and len(reply["classes"]) == 3
    probs = [c["probability"] for c in reply["classes"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert reply["scores"]["lowest_confidence"] == pytest.approx(probs[0], abs=1e-5)
    assert reply["flagged"] is True and reply["queued_for_review"] is True  # under 0.99
    stored = catalog.predictions(catalog.project("c"), classifier.version)[reply["image_id"]]
    assert len(stored) == 1 and stored.xyxy.tolist() == [[0, 0, 40, 30]]
