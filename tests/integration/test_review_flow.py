"""The review loop against a REAL Label Studio server and a real webhook receiver (uvicorn).

queue (idempotent, crash-safe, group tabs) -> simulated annotator -> webhooks -> exactly one
"batch reviewed" per round -> review status -> pull (labels == ground truth, skip -> rejected,
correction metrics); plus the failure paths.

The flow tests share one module-scoped project whose stages are module fixtures (round 0
queued -> round 1 queued -> reviewed through the webhook receiver -> pulled): each test asks for
the stage it checks and gets it set up whatever ran before, in any order and under any `-m`
selection. The idempotent re-queue, the crash recovery and the failure tests at the bottom use
projects of their own. Predictions are fake-but-valid (jittered ground truth), so no YOLO model
runs here.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from deployments.webhook import SECRET_HEADER, WEBHOOK_PATH, create_app
from labelwise.catalog import Catalog, CatalogError, ProjectNotFound
from labelwise.config import Settings
from labelwise.datasets.digits import DigitsConfig, generate_digits, read_yolo_labels
from labelwise.domain import Detections, ImageStatus
from labelwise.labelstudio import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioUnavailable,
    ls_result_to_yolo,
    yolo_to_xyxy,
)
from labelwise.review import (
    annotate_simulated,
    ensure_ls_project,
    pull_annotations,
    queue_batch,
    review_status,
    wait_for_review,
)
from labelwise.runtime import open_catalog
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch
from tests.conftest import write_png
from tests.labelstudio_server import free_port

pytestmark = pytest.mark.integration

MODEL = "fake-v1"
POOL = 24
LIMIT = 6
LOW_CONFIDENCE = 0.05  # one extra box per image, below the pre-annotation threshold: never sent


def fake_detections(truth: np.ndarray, width: int, height: int, num_classes: int,
                    rng: np.random.Generator) -> Detections:
    """Ground-truth boxes jittered by up to 5 % of their size, confident in the true class,
    plus one low-confidence box."""
    xyxy = yolo_to_xyxy(truth[:, 1:], width, height) if len(truth) else np.zeros((0, 4))
    size = np.concatenate([xyxy[:, 2:] - xyxy[:, :2]] * 2, axis=1)
    xyxy = xyxy + rng.uniform(-0.05, 0.05, xyxy.shape) * size
    extra = np.array([[2.0, 2.0, 12.0, 12.0]])
    boxes = np.concatenate([xyxy, extra])
    cls = np.concatenate([truth[:, 0].astype(np.int64), [0]])
    n = len(boxes)
    top = rng.uniform(0.4, 0.9, n)
    probs = np.tile(((1 - top) / (num_classes - 1))[:, None], (1, num_classes))
    probs[np.arange(n), cls] = top
    conf = np.concatenate([rng.uniform(0.3, 0.95, n - 1), [LOW_CONFIDENCE]])
    return Detections(boxes, conf, cls, probs)


def with_ls(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some ``labelstudio`` fields changed."""
    return settings.model_copy(
        update={"labelstudio": settings.labelstudio.model_copy(update=changes)})


def ls_client(settings: Settings) -> LabelStudioClient:
    return LabelStudioClient.from_settings(settings.labelstudio, retry_base_delay_s=0.05)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn server on 127.0.0.1 in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within 15 s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def snapshot(catalog: Catalog, name: str) -> dict[str, Any]:
    """What queue_batch may change in the catalog."""
    project = catalog.project(name)
    return {
        "ls_project_id": project.ls_project_id,
        "images": [(i.image_id, i.status, i.ls_task_id, i.queued_round, i.upload_group)
                   for i in catalog.images(project)],
        "rounds": catalog.rounds(project),
    }


# -- the shared flow -----------------------------------------------------------------------
# Each stage of the flow is a module fixture built on the stage before it: round 0 queued ->
# round 1 queued -> both reviewed through the webhook receiver -> pulled. A test asks for the
# stage it checks, so it sets up what it needs whichever tests ran before it (any order, any
# `-m` selection); what a later stage changes (statuses, webhooks) is snapshot by the stage
# that the test checks, right after its step.
@pytest.fixture(scope="module")
def dataset(labelstudio: tuple[str, str, Path]) -> Any:
    """A digits pool of 24 images (with ground truth), generated once for the module."""
    _, _, root = labelstudio
    return generate_digits(root / f"data-{uuid.uuid4().hex[:6]}", DigitsConfig(
        pool_images=POOL, val_images=1, test_images=0, duplicate_cluster_fraction=0.0, seed=5))


@pytest.fixture(scope="module")
def new_pool(make_ls_settings: Callable[..., Settings], dataset: Any
             ) -> Iterator[Callable[[], dict[str, Any]]]:
    """Factory: a new project (own state folder and catalog) of the 24 images, with fake
    predictions (the same for every project) and embeddings."""
    catalogs: list[Catalog] = []

    def make() -> dict[str, Any]:
        began = time.perf_counter()
        name = f"digits-{uuid.uuid4().hex[:6]}"
        settings = make_ls_settings(name)
        catalog = open_catalog(settings)
        catalogs.append(catalog)
        project = catalog.create_project(name, dataset.class_names)
        report = catalog.add_images(project, dataset.pool_images)
        assert len(report.added) == POOL, report
        rng = np.random.default_rng(0)
        truths: dict[str, np.ndarray] = {}
        items = []
        for img in catalog.images(project):
            truth = read_yolo_labels(dataset.truth_path(img.path))
            truths[img.image_id] = truth
            items.append((img.image_id, fake_detections(truth, img.width, img.height,
                                                        len(dataset.class_names), rng)))
        catalog.save_predictions(project, MODEL, items)
        ids = [i for i, _ in items]
        catalog.save_embeddings(project, "fake-embedder", ids, rng.normal(size=(len(ids), 8)))
        print(f"\npool setup: {time.perf_counter() - began:.1f} s")
        return {"name": name, "settings": settings, "catalog": catalog, "dataset": dataset,
                "truths": truths}

    yield make
    for catalog in catalogs:
        catalog.close()


@pytest.fixture(scope="module")
def flow(new_pool: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The shared project, before any round."""
    return new_pool()


def new_batch(flow: dict[str, Any]) -> dict[str, Any]:
    request = ScoreBatchRequest(project=flow["name"], strategy="entropy", limit=LIMIT,
                                diversity_weight=0.0)
    return build_score_batch(flow["catalog"], flow["settings"], request, record=True).as_json()


def queue_round(flow: dict[str, Any], group: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A recorded batch of the next round and ``queue_batch``'s reply for it."""
    batch = new_batch(flow)
    return batch, queue_batch(flow["settings"], flow["catalog"], flow["name"], batch, group)


@pytest.fixture(scope="module")
def round0(flow: dict[str, Any]) -> dict[str, Any]:
    """Round 0 selected and queued in group g0; the catalog and the webhooks right after."""
    settings, catalog, name = flow["settings"], flow["catalog"], flow["name"]
    batch, out = queue_round(flow, "g0")
    project = catalog.project(name)
    with ls_client(settings) as client:
        webhooks = client.list_webhooks(out["ls_project_id"])
    return {"batch": batch, "out": out,
            "queued": {i.image_id: (i.ls_task_id, i.queued_round, i.upload_group)
                       for i in catalog.images(project, ImageStatus.QUEUED)},
            "status": catalog.round_info(project, 0)["status"], "webhooks": webhooks}


@pytest.fixture(scope="module")
def round1(flow: dict[str, Any], round0: dict[str, Any]) -> dict[str, Any]:
    """Round 1 selected and queued in group g1, after round 0."""
    batch, out = queue_round(flow, "g1")
    return {"batch": batch, "out": out}


@pytest.fixture(scope="module")
def reviewed(flow: dict[str, Any], round0: dict[str, Any], round1: dict[str, Any]
             ) -> Iterator[dict[str, Any]]:
    """Both rounds answered with the webhook receiver serving (it keeps serving for the rest of
    the module): the receiver is registered, one task of round 0 is skipped, the simulated
    annotator answers the rest, and the receiver's batch-complete calls are awaited."""
    settings, catalog, name = flow["settings"], flow["catalog"], flow["name"]
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()

    def on_batch_complete(project: str, number: int) -> None:
        with lock:
            calls.append((project, number))

    secret = f"secret-{uuid.uuid4().hex}"
    receiver = with_ls(settings, webhook_secret=secret)
    with serve(create_app(receiver, on_batch_complete)) as base:
        hooked = with_ls(settings, webhook_url=base + WEBHOOK_PATH, webhook_secret=secret)
        info = ensure_ls_project(hooked, catalog, name)
        again = ensure_ls_project(hooked, catalog, name)
        skipped_id = round0["batch"]["queue"][-1]["image_id"]
        with ls_client(settings) as client:
            client.create_annotation(round0["out"]["task_ids"][skipped_id], [], was_cancelled=True)
        began = time.perf_counter()
        done = annotate_simulated(settings, catalog, name, None, 0.0, seed=0)
        completed = wait_until(lambda: len(calls) == 2)
        print(f"\nannotate + webhooks until both batches complete: "
              f"{time.perf_counter() - began:.2f} s")
        project = catalog.project(name)
        yield {"base": base, "secret": secret, "calls": calls, "info": info,
               "again_webhook_id": again["webhook_id"], "skipped": skipped_id, "done": done,
               "completed": completed, "statuses": [r["status"] for r in catalog.rounds(project)],
               "events": len(catalog.review_events(project))}


@pytest.fixture(scope="module")
def pulled(flow: dict[str, Any], reviewed: dict[str, Any]) -> dict[str, Any]:
    """The reviewed answers pulled once (``pull_annotations(..., 0)``); its reply."""
    began = time.perf_counter()
    out = pull_annotations(flow["settings"], flow["catalog"], flow["name"], 0)
    print(f"\npull of {2 * LIMIT} tasks: {time.perf_counter() - began:.2f} s")
    return out


def test_queue_sends_tasks_with_predictions(flow: dict[str, Any], round0: dict[str, Any]) -> None:
    settings, catalog, name = flow["settings"], flow["catalog"], flow["name"]
    batch, out = round0["batch"], round0["out"]
    assert batch["params"]["round"] == 0
    assert (out["round"], out["created"], out["reused"]) == (0, LIMIT, 0)
    data_page = f"{settings.labelstudio.url}/projects/{out['ls_project_id']}/data"
    assert out["url"] == f"{data_page}?tab={out['view_id']}"
    project = catalog.project(name)
    assert project.ls_project_id == out["ls_project_id"]
    queued = round0["queued"]  # the catalog right after the queue
    assert {i: task_id for i, (task_id, _, _) in queued.items()} == out["task_ids"]
    assert {(number, group) for _, number, group in queued.values()} == {(0, "g0")}
    assert round0["status"] == "queued"
    assert round0["webhooks"] == []  # webhook_url is empty

    with ls_client(settings) as client:
        tasks = {t["id"]: t for t in client.list_tasks(out["ls_project_id"])
                 if t["data"]["round"] == 0}
    assert sorted(tasks) == sorted(out["task_ids"].values())
    order = [item["image_id"] for item in batch["queue"]]
    for item in batch["queue"]:
        task = tasks[out["task_ids"][item["image_id"]]]
        data = task["data"]
        assert data["image_id"] == item["image_id"] and data["round"] == 0
        assert (data["strategy"], data["group"]) == ("entropy", "g0")
        assert data["uncertainty_score"] == pytest.approx(item["uncertainty_score"])
        # Typed data: numbers stay numbers (sortable), and the task says why it was picked.
        assert type(data["round"]) is int and type(data["uncertainty_score"]) is float
        assert (data["reason"], data["reason_text"]) == (item["reason"], item["reason_text"])
        assert data["reason_text"]
        (pred,) = task["predictions"]
        assert pred["model_version"] == MODEL
        assert pred["score"] == pytest.approx(item["uncertainty_score"])
        truth = flow["truths"][item["image_id"]]
        assert len(pred["result"]) == len(truth)  # the low-confidence box stayed home
        assert all(r["score"] >= settings.labelstudio.preannotation_floor("detect") for r in pred["result"])
        sent = ls_result_to_yolo(pred["result"], flow["dataset"].class_names)
        np.testing.assert_array_equal(sent[:, 0], truth[:, 0])
    assert order == sorted(order, key=lambda i: dict(
        (it["image_id"], it["uncertainty_score"]) for it in batch["queue"])[i])
    with ls_client(settings) as client:
        # Label Studio prefills tasks with this round's model, and the round has its own tab,
        # most uncertain first, its numbers typed as numbers.
        assert client.get_project(out["ls_project_id"])["model_version"] == MODEL
        views = {v["id"]: v["data"] for v in client.list_views(out["ls_project_id"])}
        tab = views[out["round_view_id"]]
        assert tab["title"] == "round 0" and tab["ordering"] == ["tasks:data.uncertainty_score"]
        assert tab["columnsDisplayType"]["tasks:data.uncertainty_score"] == "Number"
        in_tab = client.list_tasks(out["ls_project_id"], view_id=out["round_view_id"])
        assert [t["data"]["image_id"] for t in in_tab] == order

    # The local-files URL serves the queued copy of the pool image.
    first = catalog.image(project, order[0])
    url = settings.labelstudio.url + tasks[out["task_ids"][order[0]]]["data"]["image"]
    answer = httpx.get(url, headers={"Authorization": f"Token {settings.labelstudio.api_key}"})
    assert answer.status_code == 200 and answer.content == first.path.read_bytes()


def test_queue_again_creates_no_duplicate(new_pool: Callable[[], dict[str, Any]]) -> None:
    pool = new_pool()  # its own project: the second queue must find round 0 still queued
    settings, catalog, name = pool["settings"], pool["catalog"], pool["name"]
    batch, first = queue_round(pool, "g0")
    assert (first["created"], first["reused"]) == (LIMIT, 0)
    again = queue_batch(settings, catalog, name, batch, "g0")
    assert (again["created"], again["reused"]) == (0, LIMIT)
    assert again["task_ids"] == first["task_ids"]
    assert again["view_id"] == first["view_id"]
    with ls_client(settings) as client:
        assert len(client.list_tasks(again["ls_project_id"], fields="task_only")) == LIMIT


@pytest.mark.faults
def test_crash_after_import_is_recovered_without_duplicates(
    new_pool: Callable[[], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = new_pool()  # its own project: round 0 queued, then round 1 crashes after its import
    settings, catalog, name = pool["settings"], pool["catalog"], pool["name"]
    queue_round(pool, "g0")
    batch = new_batch(pool)
    assert batch["params"]["round"] == 1
    ids = [item["image_id"] for item in batch["queue"]]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated crash after the import")

    monkeypatch.setattr(catalog, "mark_queued", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        queue_batch(settings, catalog, name, batch, "g1")
    monkeypatch.undo()
    project = catalog.project(name)
    assert {i.status for i in catalog.images(project, image_ids=ids)} == {ImageStatus.UNLABELLED}
    assert catalog.round_info(project, 1)["status"] == "proposed"
    with ls_client(settings) as client:
        assert len(client.list_tasks(project.ls_project_id, fields="task_only")) == 2 * LIMIT

    out = queue_batch(settings, catalog, name, batch, "g1")
    assert (out["round"], out["created"], out["reused"]) == (1, 0, LIMIT)
    assert {i.status for i in catalog.images(project, image_ids=ids)} == {ImageStatus.QUEUED}
    assert catalog.round_info(project, 1)["status"] == "queued"
    with ls_client(settings) as client:
        assert len(client.list_tasks(project.ls_project_id, fields="task_only")) == 2 * LIMIT


def test_group_tab_shows_only_its_group(flow: dict[str, Any], round0: dict[str, Any],
                                        round1: dict[str, Any]) -> None:
    settings = flow["settings"]
    q0, q1 = round0["out"], round1["out"]
    assert q0["view_id"] != q1["view_id"]
    with ls_client(settings) as client:
        for queued in (q0, q1):
            in_tab = client.list_tasks(queued["ls_project_id"], view_id=queued["view_id"])
            assert sorted(t["id"] for t in in_tab) == sorted(queued["task_ids"].values())
            scores = [t["predictions"][0]["score"] for t in in_tab]
            assert scores == sorted(scores)  # most uncertain first


@pytest.mark.faults
def test_webhooks_complete_each_batch_exactly_once(
    flow: dict[str, Any], round0: dict[str, Any], round1: dict[str, Any],
    reviewed: dict[str, Any],
) -> None:
    catalog, name = flow["catalog"], flow["name"]
    info, calls = reviewed["info"], reviewed["calls"]
    assert info["webhook_id"] and info["ls_project_id"] == round0["out"]["ls_project_id"]
    assert reviewed["again_webhook_id"] == info["webhook_id"]  # registered once

    # One reviewer skip in round 0, then the simulated annotator answered the rest.
    assert reviewed["done"] == {"annotated": 2 * LIMIT - 1, "already_annotated": 1,
                                "missing_truth": 0, "relabelled_boxes": 0}
    assert reviewed["completed"], f"webhooks did not complete the rounds: {calls}"
    assert sorted(calls) == [(name, 0), (name, 1)]
    assert reviewed["statuses"] == ["reviewed", "reviewed"]
    assert reviewed["events"] == 2 * LIMIT

    # A replay of a delivered event (as Label Studio retries) is recorded once, fires nothing.
    project = catalog.project(name)
    events = len(catalog.review_events(project))
    task_id = round1["out"]["task_ids"][round1["batch"]["queue"][0]["image_id"]]
    with ls_client(flow["settings"]) as client:
        (annotation,) = client.task_annotations(task_id)
    replay = {"action": "ANNOTATION_CREATED", "project": {"id": project.ls_project_id},
              "task": {"id": task_id}, "annotation": annotation}
    url = reviewed["base"] + WEBHOOK_PATH
    secret = reviewed["secret"]
    answer = httpx.post(url, json=replay, headers={SECRET_HEADER: secret})
    assert answer.status_code == 200
    body = answer.json()
    got = (body["handled"], body["complete"], body["fire"], body["recorded"])
    assert got == (True, True, False, 0)
    wrong = httpx.post(url, json=replay, headers={SECRET_HEADER: "not-the-secret"})
    assert wrong.status_code == 401
    unknown = httpx.post(url, json={"action": "PROJECT_UPDATED", "project": {"id": 1}},
                         headers={SECRET_HEADER: secret})
    assert unknown.status_code == 200 and unknown.json()["handled"] is False
    time.sleep(0.3)
    assert sorted(calls) == [(name, 0), (name, 1)]
    assert len(catalog.review_events(project)) == events == 2 * LIMIT


def test_review_status_counts_the_answers(flow: dict[str, Any], reviewed: dict[str, Any]) -> None:
    settings, catalog, name = flow["settings"], flow["catalog"], flow["name"]
    r0 = review_status(settings, catalog, name, 0)
    assert r0 == {"round": 0, "queued": LIMIT, "annotated": LIMIT - 1, "skipped": 1, "pending": 0,
                  "total": LIMIT, "complete": True}
    latest = review_status(settings, catalog, name, None)  # both reviewed: the newest
    assert (latest["round"], latest["annotated"], latest["complete"]) == (1, LIMIT, True)
    waited = wait_for_review(settings, catalog, name, 0, timeout_s=5, poll_s=0.1)
    assert waited["complete"] and waited["transitioned"] is False  # the webhook was first
    assert waited["round_status"] == "reviewed"


def test_pull_brings_back_the_ground_truth(flow: dict[str, Any], round0: dict[str, Any],
                                           reviewed: dict[str, Any], pulled: dict[str, Any]
                                           ) -> None:
    settings, catalog, name = flow["settings"], flow["catalog"], flow["name"]
    out = pulled
    got = (out["labelled"], out["rejected"], out["pending"], out["invalid"])
    assert got == (2 * LIMIT - 1, 1, 0, [])
    project = catalog.project(name)
    skipped = reviewed["skipped"]
    assert catalog.image(project, skipped).status is ImageStatus.REJECTED
    stored = catalog.labels(project)
    labelled = catalog.images(project, ImageStatus.LABELLED)
    assert len(labelled) == 2 * LIMIT - 1 and skipped not in stored
    for img in labelled:
        truth = flow["truths"][img.image_id]
        written = read_yolo_labels(Path(out["labels_dir"]) / f"{img.image_id}.txt")
        np.testing.assert_allclose(written, truth, atol=1e-6)
        np.testing.assert_allclose(stored[img.image_id], truth, atol=1e-6)

    figures = out["corrections"]
    boxes = sum(len(flow["truths"][i["image_id"]]) for i in round0["batch"]["queue"][:-1])
    assert figures["corrections/images"] == LIMIT - 1
    assert figures["corrections/boxes_predicted"] == figures["corrections/boxes_final"] == boxes
    assert figures["corrections/kept"] == boxes
    assert figures["corrections/added"] == figures["corrections/removed"] == 0
    assert figures["corrections/relabelled"] == 0
    assert 0.6 < figures["corrections/mean_iou_kept"] < 1.0  # jittered boxes were adjusted
    assert catalog.round_info(project, 0)["params"]["corrections"] == figures
    assert "corrections" in catalog.round_info(project, 1)["params"]

    again = pull_annotations(settings, catalog, name, 0)
    assert (again["labelled"], again["rejected"], again["pending"]) == (0, 0, 0)
    assert again["corrections"] == figures  # the round's figures, however often pulled


# -- failure paths -------------------------------------------------------------------------
def test_unknown_project_and_empty_selection(flow: dict[str, Any], round0: dict[str, Any],
                                             pulled: dict[str, Any]) -> None:
    settings, catalog, batch0 = flow["settings"], flow["catalog"], round0["batch"]
    for call in (lambda: queue_batch(settings, catalog, "nope", batch0, None),
                 lambda: review_status(settings, catalog, "nope", None),
                 lambda: pull_annotations(settings, catalog, "nope", None),
                 lambda: annotate_simulated(settings, catalog, "nope", None, 0.0, 0)):
        with pytest.raises(ProjectNotFound, match="unknown project 'nope'"):
            call()
    empty = {**batch0, "queue": []}
    with pytest.raises(ValueError, match="nothing to queue: .*selected no images"):
        queue_batch(settings, catalog, flow["name"], empty, None)
    unrecorded = {**batch0, "params": {}}
    with pytest.raises(ValueError, match=r"params'\]\['round'\] must be the recorded round"):
        queue_batch(settings, catalog, flow["name"], unrecorded, None)
    with pytest.raises(CatalogError, match="has no round 5"):
        queue_batch(settings, catalog, flow["name"], {**batch0, "params": {"round": 5}}, None)
    # Round 0 was pulled (the `pulled` stage): its images are labelled/rejected now and cannot
    # be queued again.
    with pytest.raises(ValueError, match=r"6 image\(s\) of the batch cannot be queued in round 0"):
        queue_batch(settings, catalog, flow["name"], batch0, None)


@pytest.fixture
def small(ls_settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A 3-image project whose pool lives OUTSIDE the document root, with round 0 recorded."""
    catalog = open_catalog(ls_settings)
    name = f"small-{uuid.uuid4().hex[:6]}"
    project = catalog.create_project(name, ["a", "b"])
    paths = [write_png(tmp_path / "pool" / f"img {i}.png", seed=100 + i) for i in range(3)]
    ids = catalog.add_images(project, paths).added
    catalog.record_round(project, 0, "random", None, {}, [], ids)
    batch = {"project_id": name, "strategy": "random", "model_version": None,
             "params": {"round": 0},
             "queue": [{"image_id": i, "uncertainty_score": 0.0, "scores": {}, "thumbnail": ""}
                       for i in ids]}
    yield {"settings": ls_settings, "catalog": catalog, "name": name, "batch": batch,
           "paths": dict(zip(ids, paths))}
    catalog.close()


@pytest.mark.faults
def test_vanished_image_queues_nothing(small: dict[str, Any]) -> None:
    settings, catalog, name = small["settings"], small["catalog"], small["name"]
    victim_id, victim = next(iter(small["paths"].items()))
    data = victim.read_bytes()
    victim.unlink()
    before = snapshot(catalog, name)
    vanished = f"vanished since they were added: .*{re.escape(str(victim))}"
    with pytest.raises(FileNotFoundError, match=vanished):
        queue_batch(settings, catalog, name, small["batch"], None)
    assert snapshot(catalog, name) == before

    # Restored, the batch queues (cold start: no predictions), served from the media folder.
    victim.write_bytes(data)
    out = queue_batch(settings, catalog, name, small["batch"], None)
    assert (out["created"], out["view_id"]) == (3, None)
    with ls_client(settings) as client:
        task = next(t for t in client.list_tasks(out["ls_project_id"])
                    if t["data"]["image_id"] == victim_id)
    assert task["predictions"] == []
    assert task["data"]["image"].startswith("/data/local-files/?d=state-")
    answer = httpx.get(settings.labelstudio.url + task["data"]["image"],
                       headers={"Authorization": f"Token {settings.labelstudio.api_key}"})
    assert answer.status_code == 200 and answer.content == data


def test_a_faint_box_is_pre_annotated_though_scoring_ignores_it(ls_settings: Settings,
                                                                tmp_path: Path) -> None:
    """Issue 17, item 1: an image whose only box is under the scoring floor (0.25) but at or
    above labelstudio.preannotation_conf (0.1) reaches the reviewer with that box and its score;
    a box under the pre-annotation threshold does not. Both tasks say why they were picked."""
    catalog = open_catalog(ls_settings)
    name = f"faint-{uuid.uuid4().hex[:6]}"
    project = catalog.create_project(name, ["a", "b"])
    paths = [write_png(tmp_path / f"faint{i}.png", seed=300 + i) for i in range(2)]
    ids = catalog.add_images(project, paths).added
    probs = np.array([[0.9, 0.1]], np.float32)
    faint = {ids[0]: 0.15, ids[1]: 0.05}
    catalog.save_predictions(project, "faint-v1", [
        (i, Detections(np.array([[4.0, 4.0, 20.0, 20.0]]), np.array([c]), np.array([0]), probs))
        for i, c in faint.items()])
    batch = build_score_batch(catalog, ls_settings, ScoreBatchRequest(
        project=name, strategy="weighted_combination", limit=2, diversity_weight=0.0),
        record=True).as_json()
    out = queue_batch(ls_settings, catalog, name, batch, None)
    with ls_client(ls_settings) as client:
        tasks = {t["data"]["image_id"]: t for t in client.list_tasks(out["ls_project_id"])}
        assert client.get_project(out["ls_project_id"])["model_version"] == "faint-v1"
    (sent,) = tasks[ids[0]]["predictions"][0]["result"]
    assert sent["score"] == pytest.approx(0.15) and sent["value"]["rectanglelabels"] == ["a"]
    assert tasks[ids[1]]["predictions"][0]["result"] == []
    for image_id, conf in faint.items():
        data = tasks[image_id]["data"]
        assert data["reason"] == "no_box"
        assert f"best guess: class a at {conf:.2f}" in data["reason_text"], data
    catalog.close()


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"url": "http://127.0.0.1:{port}", "retries": 1}, LabelStudioUnavailable,
         "unavailable after 2 attempt"),
        ({"api_key": "not-the-token"}, LabelStudioAuthError, "refused the API key"),
    ],
)
@pytest.mark.faults
def test_server_trouble_leaves_the_catalog_unchanged(
    small: dict[str, Any], overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    settings, catalog, name = small["settings"], small["catalog"], small["name"]
    values = {k: (v.format(port=free_port()) if isinstance(v, str) else v)
              for k, v in overrides.items()}
    broken = with_ls(settings, **values)
    before = snapshot(catalog, name)
    began = time.perf_counter()
    with pytest.raises(error, match=message):
        queue_batch(broken, catalog, name, small["batch"], "g")
    assert time.perf_counter() - began < 10
    assert snapshot(catalog, name) == before


# -- CLI -----------------------------------------------------------------------------------
def test_cli_commands(small: dict[str, Any], tmp_path: Path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from labelwise.cli.review import register

    app = typer.Typer()
    register(app)
    settings, name = small["settings"], small["name"]
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, list(args), obj={"settings": settings})
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    queued = run("queue", "--project", name, "--strategy", "random", "--limit", "2",
                 "--group", "cli")
    assert (queued["created"], queued["reused"]) == (2, 0) and queued["view_id"]
    number = queued["round"]
    assert number == 1  # round 0 was recorded by the fixture and never queued
    assert run("review-status", "--project", name)["pending"] == 2
    # Ground truth for one of the two queued images only.
    truth = tmp_path / "truth"
    truth.mkdir()
    first_id = next(iter(queued["task_ids"]))
    (truth / f"{small['paths'][first_id].stem}.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    done = run("annotate-simulated", "--project", name, "--truth", str(truth), "--seed", "1")
    assert (done["annotated"], done["missing_truth"]) == (1, 1)
    status = run("review-status", "--project", name, "--round", str(number))
    assert (status["annotated"], status["pending"], status["complete"]) == (1, 1, False)
    pulled = run("pull", "--project", name)
    assert (pulled["labelled"], pulled["pending"]) == (1, 1)
    assert pulled["corrections"]["corrections/added"] == 1  # cold start: nothing was predicted

    bad = runner.invoke(app, ["pull", "--project", "nope"], obj={"settings": settings})
    assert bad.exit_code == 2 and "error: unknown project 'nope'" in bad.output

    # The poller gives up naming the round and its counts.
    with pytest.raises(TimeoutError, match=rf"round {number} of project '{name}' was not reviewed "
                       r"within 0.3 s: 1 annotated, 0 skipped, 1 pending of 2 tasks"):
        wait_for_review(settings, small["catalog"], name, number, timeout_s=0.3, poll_s=0.1)
