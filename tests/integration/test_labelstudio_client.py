"""LabelStudioClient against a real Label Studio server (started once per test session).

The retry/error-mapping tests at the bottom need no server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_sdk.core.api_error import ApiError
from PIL import Image

from labelwise.config import LabelStudioSettings
from labelwise.domain import Detections
from labelwise.labelstudio import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioMaybeApplied,
    LabelStudioRequestError,
    LabelStudioUnavailable,
    build_label_config,
    detections_to_ls_result,
    local_files_url,
    ls_result_to_yolo,
    yolo_to_ls_result,
)
from labelwise.perf.labelstudio_import import bench_import
from tests.labelstudio_server import LabelStudioServer, free_port

NAMES = ["cat", "dog", "bird"]
W, H = 96, 64


@pytest.fixture(scope="module")
def ls_server(labelstudio_server: LabelStudioServer) -> LabelStudioServer:
    """The session's server (tests/integration/conftest.py): one start for every module."""
    return labelstudio_server


@pytest.fixture(scope="module")
def client(ls_server: LabelStudioServer) -> Iterator[LabelStudioClient]:
    settings = LabelStudioSettings(url=ls_server.url, api_key=ls_server.token, retries=2)
    with LabelStudioClient.from_settings(settings, retry_base_delay_s=0.05) as c:
        yield c


@pytest.fixture(scope="module")
def project_id(client: LabelStudioClient) -> int:
    return client.ensure_project(f"labelwise-it-{uuid.uuid4().hex[:6]}", build_label_config(NAMES))


@pytest.fixture(scope="module")
def batch_dir(ls_server: LabelStudioServer) -> Path:
    """Three PNGs in a subfolder of the document root."""
    folder = ls_server.document_root / "batch-1"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        colour = (40 * i, 255 - 40 * i, 128)
        Image.new("RGB", (W, H), colour).save(folder / f"img {i}.png")
    return folder


def _detections(seed: int) -> Detections:
    rng = np.random.default_rng(seed)
    n = 2 + seed % 2
    xy = rng.uniform(0, 0.5, (n, 2)) * [W, H]
    wh = rng.uniform(0.1, 0.4, (n, 2)) * [W, H]
    probs = rng.dirichlet(np.ones(len(NAMES)), n)
    return Detections(np.concatenate([xy, xy + wh], 1), rng.uniform(0.1, 0.9, n),
                      probs.argmax(1), probs)


def _task(image: Path, root: Path, group: str, seed: int) -> dict[str, Any]:
    dets = _detections(seed)
    return {
        "data": {"image": local_files_url(image, root), "group": group, "image_id": image.stem},
        "predictions": [{
            "model_version": "it-model",
            "score": float(dets.confidence.min()),
            "result": detections_to_ls_result(dets, NAMES, W, H),
        }],
    }


@pytest.fixture(scope="module")
def imported(
    client: LabelStudioClient, project_id: int, batch_dir: Path, ls_server: LabelStudioServer
) -> dict[str, Any]:
    root = ls_server.document_root
    client.ensure_local_storage(project_id, batch_dir, root)
    images = sorted(batch_dir.glob("*.png"))
    tasks = [_task(p, root, "g1" if i < 2 else "g2", seed=i) for i, p in enumerate(images)]
    ids = client.import_tasks(project_id, tasks, key="image_id").task_ids
    return {"ids": ids, "tasks": tasks, "images": images}


# -- server and projects -------------------------------------------------------------------
@pytest.mark.integration
def test_check_returns_the_user(client: LabelStudioClient, ls_server: LabelStudioServer) -> None:
    assert client.check()["email"] == ls_server.username


@pytest.mark.integration
def test_script_start_is_idempotent(ls_server: LabelStudioServer) -> None:
    began = time.perf_counter()
    ls_server.start()
    assert time.perf_counter() - began < 10
    assert ls_server.status().startswith("running")


@pytest.mark.integration
def test_ensure_project_is_idempotent(client: LabelStudioClient) -> None:
    title = f"labelwise-idem-{uuid.uuid4().hex[:6]}"
    config = build_label_config(NAMES)
    assert client.find_project(title) is None
    first = client.ensure_project(title, config)
    try:
        assert client.ensure_project(title, config) == first
        assert client.find_project(title) == first
        assert client.find_project(title + "-other") is None
        assert "RectangleLabels" in client.get_project(first)["label_config"]
    finally:
        client.delete_project(first)
    assert client.find_project(title) is None
    client.delete_project(first)  # missing is fine
    with pytest.raises(LabelStudioRequestError) as info:
        client.delete_project(first, missing_ok=False)
    assert info.value.status_code == 404


@pytest.mark.integration
def test_local_storage(
    client: LabelStudioClient, project_id: int, batch_dir: Path, ls_server: LabelStudioServer
) -> None:
    root = ls_server.document_root
    first = client.ensure_local_storage(project_id, batch_dir, root)
    assert client.ensure_local_storage(project_id, batch_dir, root) == first
    with pytest.raises(ValueError, match="SUBFOLDER"):
        client.ensure_local_storage(project_id, root, root)
    with pytest.raises(ValueError, match="outside"):
        client.ensure_local_storage(project_id, root.parent, root)
    with pytest.raises(ValueError, match="existing folder"):
        client.ensure_local_storage(project_id, root / "missing", root)


# -- tasks, images, annotations ------------------------------------------------------------
@pytest.mark.integration
def test_imported_tasks_come_back_with_predictions(
    client: LabelStudioClient, project_id: int, imported: dict[str, Any]
) -> None:
    assert len(imported["ids"]) == 3 and len(set(imported["ids"])) == 3
    tasks = {t["id"]: t for t in client.list_tasks(project_id)}
    assert set(imported["ids"]) <= set(tasks)
    for task_id, sent in zip(imported["ids"], imported["tasks"], strict=True):
        got = tasks[task_id]
        assert got["data"] == sent["data"]
        (pred,) = got["predictions"]
        want = sent["predictions"][0]
        assert pred["model_version"] == "it-model"
        assert pred["score"] == pytest.approx(want["score"])
        assert [r["score"] for r in pred["result"]] == pytest.approx(
            [r["score"] for r in want["result"]])
        np.testing.assert_allclose(ls_result_to_yolo(pred["result"], NAMES),
                                   ls_result_to_yolo(want["result"], NAMES), atol=1e-9)


@pytest.mark.integration
def test_list_tasks_pages(client: LabelStudioClient, project_id: int,
                          imported: dict[str, Any]) -> None:
    paged = client.list_tasks(project_id, page_size=2)  # 3 tasks: pages of 2 and 1
    assert sorted(t["id"] for t in paged) == sorted(imported["ids"])


@pytest.mark.integration
def test_local_files_url_serves_the_image(
    ls_server: LabelStudioServer, imported: dict[str, Any]
) -> None:
    image: Path = imported["images"][0]
    url = ls_server.url + imported["tasks"][0]["data"]["image"]
    assert "%20" in url  # the file name has a space
    answer = httpx.get(url, headers={"Authorization": f"Token {ls_server.token}"})
    assert answer.status_code == 200
    assert answer.content == image.read_bytes()
    assert httpx.get(url).status_code in (401, 403)


@pytest.mark.integration
def test_annotation_round_trip(
    client: LabelStudioClient, imported: dict[str, Any]
) -> None:
    task_id = imported["ids"][0]
    labels = np.array([[2, 0.5, 0.5, 0.25, 0.5], [0, 0.2, 0.3, 0.1, 0.1]])
    created = client.create_annotation(task_id, yolo_to_ls_result(labels, NAMES, W, H),
                                       lead_time=1.5)
    assert created["id"] and created["task"] == task_id
    annotations = client.task_annotations(task_id)
    assert [a["id"] for a in annotations] == [created["id"]]
    assert annotations[0]["was_cancelled"] is False
    np.testing.assert_allclose(ls_result_to_yolo(annotations[0]["result"], NAMES), labels,
                               atol=1e-9)


@pytest.mark.integration
def test_view_shows_only_its_group(
    client: LabelStudioClient, project_id: int, imported: dict[str, Any]
) -> None:
    view_id = client.ensure_view(project_id, "round g1", "group", "g1")
    assert client.ensure_view(project_id, "round g1", "group", "g1") == view_id
    (view,) = [v for v in client.list_views(project_id) if v["id"] == view_id]
    item = view["data"]["filters"]["items"][0]
    assert item == {"filter": "filter:tasks:data.group", "operator": "equal", "type": "String",
                    "value": "g1"}
    in_view = client.list_tasks(project_id, view_id=view_id)
    assert sorted(t["id"] for t in in_view) == sorted(imported["ids"][:2])
    # Lowest prediction score first.
    scores = [t["predictions"][0]["score"] for t in in_view]
    assert scores == sorted(scores)
    # Re-pointing the same tab updates it rather than adding one.
    assert client.ensure_view(project_id, "round g1", "group", "g2") == view_id
    in_view = client.list_tasks(project_id, view_id=view_id)
    assert [t["id"] for t in in_view] == [imported["ids"][2]]
    assert sum(v["data"].get("title") == "round g1" for v in client.list_views(project_id)) == 1


# -- webhooks ------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((dict(self.headers), json.loads(body or b"{}")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.integration
def test_webhook_registered_once_and_delivered(
    client: LabelStudioClient, project_id: int, imported: dict[str, Any]
) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/labelstudio"
        actions = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
        secret1, secret2 = {"X-Labelwise-Secret": "s1"}, {"X-Labelwise-Secret": "s2"}
        first = client.ensure_webhook(project_id, url, actions, secret1)
        assert client.ensure_webhook(project_id, url, actions, secret1) == first
        hooks = [h for h in client.list_webhooks(project_id) if h["url"] == url]
        assert len(hooks) == 1
        # Changed headers update the same webhook.
        assert client.ensure_webhook(project_id, url, actions, secret2) == first
        (hook,) = [h for h in client.list_webhooks(project_id) if h["url"] == url]
        assert hook["headers"] == {"X-Labelwise-Secret": "s2"}

        task_id = imported["ids"][1]
        client.create_annotation(task_id, yolo_to_ls_result([[1, 0.5, 0.5, 0.2, 0.2]], NAMES, W, H))
        deadline = time.monotonic() + 10
        while not _Receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _Receiver.received, "no webhook call arrived within 10 s"
        headers, payload = _Receiver.received[0]
        assert payload["action"] == "ANNOTATION_CREATED"
        assert payload["task"]["id"] == task_id
        assert {k.lower(): v for k, v in headers.items()}["x-labelwise-secret"] == "s2"
    finally:
        receiver.shutdown()
        receiver.server_close()


# -- failures ------------------------------------------------------------------------------
@pytest.mark.integration
def test_wrong_token_is_an_auth_error(ls_server: LabelStudioServer) -> None:
    with LabelStudioClient(ls_server.url, "not-the-right-token", retries=3) as bad:
        began = time.perf_counter()
        with pytest.raises(LabelStudioAuthError, match="refused the API key"):
            bad.check()
        assert time.perf_counter() - began < 5  # 401 is not retried


@pytest.mark.integration
def test_unreachable_server_is_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with LabelStudioClient(url, "some-token", retries=3, retry_base_delay_s=0.01) as down:
        began = time.perf_counter()
        with pytest.raises(LabelStudioUnavailable, match=f"{url}.*after 4 attempt"):
            down.check()
        assert time.perf_counter() - began < 3


# -- benchmark -----------------------------------------------------------------------------
@pytest.mark.integration
def test_bench_import_1000_tasks(client: LabelStudioClient) -> None:
    figures = bench_import(client, n_tasks=1000)
    print(f"\nbench_import: {figures}")
    assert figures["n_tasks"] == 1000
    assert figures["seconds"] < 30, figures  # goal <= 10 s; loose for a busy CI machine


# -- retry policy (no server) --------------------------------------------------------------
class _Flaky:
    """Fails with the given exceptions, then returns 'ok'; counts calls."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.fixture
def offline_client() -> Iterator[LabelStudioClient]:
    with LabelStudioClient("http://127.0.0.1:9", "token-123456", retries=2,
                           retry_base_delay_s=0.001) as c:
        yield c


def test_5xx_and_connection_errors_are_retried(offline_client: LabelStudioClient) -> None:
    flaky = _Flaky(ApiError(status_code=502, body="bad gateway"), httpx.ConnectError("refused"))
    assert offline_client._call("x", flaky) == "ok"
    assert flaky.calls == 3


def test_retries_run_out(offline_client: LabelStudioClient) -> None:
    flaky = _Flaky(*[ApiError(status_code=503, body="down")] * 5)
    with pytest.raises(LabelStudioUnavailable, match=r"http://127.0.0.1:9 .*3 attempt.*HTTP 503"):
        offline_client._call("x", flaky)
    assert flaky.calls == 3


def test_4xx_is_not_retried(offline_client: LabelStudioClient) -> None:
    flaky = _Flaky(ApiError(status_code=400, body={"label_config": ["bad"]}))
    with pytest.raises(LabelStudioRequestError, match="HTTP 400") as info:
        offline_client._call("x", flaky)
    assert flaky.calls == 1 and info.value.body == {"label_config": ["bad"]}
    flaky = _Flaky(ApiError(status_code=401, body="no"))
    with pytest.raises(LabelStudioAuthError):
        offline_client._call("x", flaky)
    assert flaky.calls == 1


LOST_REPLIES = [
    httpx.ReadTimeout("slow"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("connection reset by peer"),
    httpx.WriteError("broken pipe"),
]


@pytest.mark.parametrize("lost", LOST_REPLIES, ids=lambda e: type(e).__name__)
def test_a_lost_reply_is_retried_only_when_idempotent(
    offline_client: LabelStudioClient, lost: Exception
) -> None:
    flaky = _Flaky(lost)
    assert offline_client._call("x", flaky) == "ok" and flaky.calls == 2
    flaky = _Flaky(lost)
    with pytest.raises(LabelStudioMaybeApplied, match=r"import: the connection to Label Studio at "
                       r"http://127.0.0.1:9 was lost after the request was sent .*may have gone "
                       r"through, so it was not repeated blindly"):
        offline_client._call("import", flaky, idempotent=False)
    assert flaky.calls == 1


@pytest.mark.parametrize("refused", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                                     httpx.PoolTimeout("busy")], ids=lambda e: type(e).__name__)
def test_a_request_never_sent_is_retried_even_when_not_idempotent(
    offline_client: LabelStudioClient, refused: Exception
) -> None:
    flaky = _Flaky(refused)
    assert offline_client._call("import", flaky, idempotent=False) == "ok" and flaky.calls == 2


class _Created:
    def __init__(self, id: int) -> None:
        self.id = id


@pytest.mark.parametrize(
    ("applied", "expected_id", "creates"),
    [(True, 7, 1), (False, 8, 2)],
    ids=["server-had-created-it", "server-had-not"],
)
def test_find_or_create_looks_again_after_a_lost_reply(
    offline_client: LabelStudioClient, applied: bool, expected_id: int, creates: int
) -> None:
    """A create whose reply was lost is not repeated when the thing exists after all."""
    creates_seen: list[int] = []

    def create() -> _Created:
        creates_seen.append(1)
        if len(creates_seen) == 1:  # the first reply is lost
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return _Created(8)

    def find() -> int | None:  # the server kept the first create, or it did not
        return 7 if applied and creates_seen else None

    assert offline_client._find_or_create("create thing", find, create) == expected_id
    assert len(creates_seen) == creates


def test_import_validates_tasks(offline_client: LabelStudioClient) -> None:
    with pytest.raises(ValueError, match=r"tasks\[1\] must have a 'data' dict"):
        offline_client.import_tasks(1, [{"data": {"image": "x"}}, {"image": "y"}])
