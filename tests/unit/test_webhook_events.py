"""Webhook events -> review events -> "batch reviewed" exactly once; and the receiver app.

A real SQLite catalog, no Label Studio (process_webhook never calls it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from deployments.webhook import SECRET_HEADER, WEBHOOK_PATH, create_app
from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import LabelStudioSettings, Settings
from labelwise.review import WebhookOutcome, process_webhook
from labelwise.review.learn_requests import learn_requests
from labelwise.runtime import open_catalog
from tests.conftest import write_png

LS_PROJECT = 77
SECRET = "s3cret-for-tests"
TASKS = (101, 102, 103)  # round 0
OTHER_ROUND_TASK = 201  # round 1


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state",
                    labelstudio=LabelStudioSettings(webhook_secret=SECRET, webhook_url="",
                                                    learn_retry_base_s=0.05,
                                                    learn_retry_max_s=0.2))


@pytest.fixture
def setup(settings: Settings, tmp_path: Path) -> Iterator[tuple[Catalog, ProjectRecord]]:
    """Project linked to LS project 77; round 0 queued with tasks 101-103, round 1 with 201."""
    catalog = open_catalog(settings)
    project = catalog.create_project("webhooks", ["cat", "dog"])
    project = catalog.set_ls_project(project, LS_PROJECT)
    paths = [write_png(tmp_path / "pool" / f"img_{i}.png", seed=i) for i in range(4)]
    ids = catalog.add_images(project, paths).added
    for number, chunk, tasks in ((0, ids[:3], TASKS), (1, ids[3:], (OTHER_ROUND_TASK,))):
        catalog.record_round(project, number, "entropy", "m1", {}, [], chunk)
        catalog.mark_queued(project, dict(zip(chunk, tasks)), number, None)
        assert catalog.transition_round(project, number, "proposed", "queued")
    yield catalog, project
    catalog.close()


def created(task: int, annotation: int, *, cancelled: bool = False, updated: str = "t1",
            action: str = "ANNOTATION_CREATED", project: int = LS_PROJECT) -> dict[str, Any]:
    """A Label Studio annotation webhook body (the fields Labelwise reads, plus some noise)."""
    return {
        "action": action,
        "project": {"id": project, "title": "labelwise-webhooks"},
        "task": {"id": task, "data": {"image": "/data/local-files/?d=x.png"}},
        "annotation": {"id": annotation, "task": task, "was_cancelled": cancelled,
                       "updated_at": updated, "result": []},
    }


def deleted(*annotations: int) -> dict[str, Any]:
    return {"action": "ANNOTATIONS_DELETED", "project": {"id": LS_PROJECT},
            "annotations": [{"id": a} for a in annotations]}


def round_status(catalog: Catalog, project: ProjectRecord, number: int = 0) -> str:
    return catalog.round_info(project, number)["status"]


# -- process_webhook -----------------------------------------------------------------------
def test_round_completes_once_with_duplicates(settings, setup):
    catalog, project = setup
    first = process_webhook(settings, catalog, created(101, 1))
    assert first == WebhookOutcome("ANNOTATION_CREATED", True, "webhooks", 0, False, False, 1,
                                   "recorded")
    assert not process_webhook(settings, catalog, created(102, 2)).complete
    # A skip (cancelled annotation) is a final answer too.
    last = process_webhook(settings, catalog, created(103, 3, cancelled=True))
    assert (last.complete, last.fire, last.round_number, last.fired_rounds) == (True, True, 0, (0,))
    assert round_status(catalog, project) == "reviewed"
    again = process_webhook(settings, catalog, created(103, 3, cancelled=True))
    assert (again.handled, again.complete, again.fire, again.recorded) == (True, True, False, 0)
    assert again.detail == "duplicate"
    # An update after the batch completed is recorded but fires nothing.
    update = process_webhook(settings, catalog, created(101, 1, updated="t2",
                                                        action="ANNOTATION_UPDATED"))
    assert (update.recorded, update.complete, update.fire) == (1, True, False)
    assert len(catalog.review_events(project, 0)) == 4
    assert round_status(catalog, project, 1) == "queued"  # the other round is untouched


def test_deletion_reopens_a_task(settings, setup):
    catalog, project = setup
    process_webhook(settings, catalog, created(101, 1))
    gone = process_webhook(settings, catalog, deleted(1))
    assert gone.handled and gone.recorded == 1 and gone.round_number == 0
    process_webhook(settings, catalog, created(102, 2))
    assert not process_webhook(settings, catalog, created(103, 3)).fire  # 101 has no answer now
    final = process_webhook(settings, catalog, created(101, 4))
    assert final.fire and round_status(catalog, project) == "reviewed"


def test_bulk_created_event(settings, setup):
    catalog, project = setup
    payload = {
        "action": "ANNOTATIONS_CREATED",
        "project": {"id": LS_PROJECT},
        "task": [{"id": t} for t in TASKS],
        "annotation": [{"id": 10 + k, "was_cancelled": False} for k in range(3)],  # no .task
    }
    outcome = process_webhook(settings, catalog, payload)
    assert (outcome.recorded, outcome.complete, outcome.fire) == (3, True, True)


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"action": "PROJECT_UPDATED", "project": {"id": LS_PROJECT}},
         "action PROJECT_UPDATED is ignored"),
        ({"action": "TASKS_CREATED"}, "ignored"),
        (created(101, 1, project=999), "no catalog project is linked to Label Studio project 999"),
        (created(555, 1), "no queued Labelwise task"),
        (deleted(12345), "no queued Labelwise task"),
    ],
)
def test_events_that_are_not_ours(settings, setup, payload, detail):
    catalog, project = setup
    outcome = process_webhook(settings, catalog, payload)
    assert not outcome.handled and not outcome.fire
    assert detail in outcome.detail
    assert catalog.review_events(project) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "action"),
        ({"action": ""}, "action"),
        ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 101}},
         "needs project.id"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": LS_PROJECT}}, "needs an annotation"),
        ({"action": "ANNOTATION_UPDATED", "project": {"id": LS_PROJECT}, "annotation": {"id": 1}},
         "annotation 1 has no task id"),
        ({"action": "ANNOTATIONS_DELETED", "project": {"id": LS_PROJECT}}, "needs annotations"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": "x"},
          "annotation": {"id": 1, "task": 1}},
         "project.id"),
    ],
)
def test_invalid_payloads(settings, setup, payload, message):
    catalog, _ = setup
    with pytest.raises(ValidationError, match=message):
        process_webhook(settings, catalog, payload)


def test_concurrent_final_events_fire_exactly_once(settings, setup):
    catalog, project = setup
    process_webhook(settings, catalog, created(101, 1))
    process_webhook(settings, catalog, created(102, 2))
    outcomes: list[WebhookOutcome] = []
    barrier = threading.Barrier(8)

    def send(k: int) -> None:
        barrier.wait()
        # Half are retries of one event, half distinct annotations of the last task.
        outcomes.append(process_webhook(settings, catalog, created(103, 3 if k % 2 else 30 + k)))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 8 and all(o.complete for o in outcomes)
    assert sum(o.fire for o in outcomes) == 1
    assert round_status(catalog, project) == "reviewed"


# -- the receiver app ----------------------------------------------------------------------
@pytest.fixture
def app_client(settings, setup) -> Iterator[tuple[TestClient, list[tuple[str, int]]]]:
    calls: list[tuple[str, int]] = []
    app = create_app(settings, lambda project, number: calls.append((project, number)),
                     idle_s=0.05)
    with TestClient(app) as client:
        yield client, calls


def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    return check()


def post(client: TestClient, payload: Any, secret: str | None = SECRET, **kwargs: Any):
    headers = {} if secret is None else {SECRET_HEADER: secret}
    return client.post(WEBHOOK_PATH, json=payload, headers=headers, **kwargs)


@pytest.mark.faults
def test_app_fires_the_hook_once_per_batch(app_client, setup):
    client, calls = app_client
    catalog, project = setup
    assert client.get("/health").json() == {"status": "ok", "learn_requests": {
        "pending": 0, "delivered": 0, "failed_attempts": 0, "last_error": None}}
    for k, task in enumerate(TASKS):
        answer = post(client, created(task, k + 1))
        assert answer.status_code == 200
    assert answer.json()["fire"] is True and answer.json()["round_number"] == 0
    assert post(client, created(TASKS[-1], 3)).json()["fire"] is False  # retry
    assert wait_for(lambda: calls) == [("webhooks", 0)]
    assert wait_for(lambda: client.get("/health").json()["learn_requests"]["delivered"] == 1)
    time.sleep(0.2)
    assert calls == [("webhooks", 0)]
    assert round_status(catalog, project) == "reviewed"


class PrefectDown:
    """A hook that fails like ``run_deployment`` with Prefect stopped, until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.calls: list[tuple[str, int]] = []
        self.failures = 0

    def __call__(self, project: str, number: int) -> str:
        if not self.up:
            self.failures += 1
            raise ConnectionError("All connection attempts failed (Prefect at 127.0.0.1:4200)")
        self.calls.append((project, number))
        return f"learn-run-{number}"


def complete_round_0(client: TestClient) -> None:
    for k, task in enumerate(TASKS):
        assert post(client, created(task, k + 1)).status_code == 200


@pytest.mark.faults
def test_a_batch_reviewed_while_prefect_is_down_is_learnt_once_it_is_back(settings, setup):
    """Issue 12, item 5: the request is stored with the round's move to reviewed; the answer to
    Label Studio is 200 at once; the worker retries until the hook works, then stops."""
    catalog, project = setup
    hook = PrefectDown()
    with TestClient(create_app(settings, hook, idle_s=0.05)) as client:
        complete_round_0(client)
        assert round_status(catalog, project) == "reviewed"
        health = wait_for(lambda: (h := client.get("/health").json()["learn_requests"])
                          ["failed_attempts"] >= 2 and h)
        assert health["pending"] == 1 and "Prefect at 127.0.0.1:4200" in health["last_error"]
        assert learn_requests(catalog).counts(project)["pending"] == 1
        hook.up = True
        assert wait_for(lambda: hook.calls) == [("webhooks", 0)]
        assert wait_for(lambda: learn_requests(catalog).counts(project)["delivered"] == 1)
        time.sleep(0.3)
        assert hook.calls == [("webhooks", 0)]
        assert client.get("/health").json()["learn_requests"]["pending"] == 0


@pytest.mark.faults
def test_pending_learn_requests_survive_a_receiver_restart(settings, setup):
    catalog, project = setup
    down = PrefectDown()
    with TestClient(create_app(settings, down, idle_s=0.05)) as client:
        complete_round_0(client)
        wait_for(lambda: down.failures >= 1)
    assert down.calls == [] and learn_requests(catalog).counts(project)["pending"] == 1
    up = PrefectDown()
    up.up = True
    with TestClient(create_app(settings, up, idle_s=0.05)):
        assert wait_for(lambda: up.calls) == [("webhooks", 0)]
        wait_for(lambda: learn_requests(catalog).counts(project)["delivered"] == 1)
    with TestClient(create_app(settings, up, idle_s=0.05)):  # delivered: never again
        time.sleep(0.3)
    assert up.calls == [("webhooks", 0)]


@pytest.mark.parametrize("request_learn", [True, False])
def test_mark_reviewed_writes_one_learn_request_with_the_move(setup, request_learn):
    catalog, project = setup
    assert catalog.mark_reviewed(project, 0, request_learn=request_learn) is True
    assert catalog.mark_reviewed(project, 0, request_learn=request_learn) is False  # moved once
    counts = learn_requests(catalog).counts(project)
    assert counts["pending"] == (1 if request_learn else 0)
    assert round_status(catalog, project) == "reviewed"


@pytest.mark.faults
@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
def test_app_refuses_a_wrong_secret(app_client, setup, secret):
    client, calls = app_client
    catalog, project = setup
    answer = post(client, created(101, 1), secret=secret)
    assert answer.status_code == 401
    assert SECRET_HEADER in answer.json()["detail"]
    assert catalog.review_events(project) == [] and calls == []


def test_app_answers_422_for_bad_bodies(app_client, setup):
    client, _ = app_client
    bad_json = client.post(WEBHOOK_PATH, content=b"{not json",
                           headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and "invalid JSON" in bad_json.json()["detail"]
    not_object = post(client, [1, 2])
    assert not_object.status_code == 422 and "got list" in not_object.json()["detail"]
    invalid = post(client, {"action": "ANNOTATION_CREATED", "project": {"id": LS_PROJECT}})
    assert invalid.status_code == 422
    assert "needs an annotation" in str(invalid.json()["errors"])


def test_app_ignores_unknown_actions(app_client):
    client, calls = app_client
    answer = post(client, {"action": "PROJECT_UPDATED", "project": {"id": LS_PROJECT}})
    assert answer.status_code == 200
    assert answer.json()["handled"] is False and calls == []


def test_app_needs_a_secret(settings):
    empty = settings.model_copy(update={
        "labelstudio": settings.labelstudio.model_copy(update={"webhook_secret": ""})})
    with pytest.raises(ValueError, match="webhook_secret must be set"):
        create_app(empty, lambda p, r: None)


# -- ids beyond what SQLite holds (issue 12, item 6) ---------------------------------------
def _with(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``payload`` with the field at dotted ``path`` (``annotation.task``) set to ``value``."""
    *parents, last = path.split(".")
    node = payload
    for part in parents:
        node = node[part]
    node[last] = value
    return payload


ID_RANGE_TEXT = "expected a positive integer within 63 bits (1 to 9223372036854775807)"
# id, payload, the field the 422 must name, what it must say it got
BAD_IDS = [
    ("project-1e23", _with(created(101, 1), "project.id", 1e23), "project.id", "got 1e+23"),
    ("project-2**63", _with(created(101, 1), "project.id", 2**63), "project.id",
     f"got {2**63}"),
    ("task-2**63", _with(created(101, 1), "task.id", 2**63), "task.id", f"got {2**63}"),
    ("annotation-task-1e23", _with(created(101, 1), "annotation.task", 1e23), "annotation.task",
     "got 1e+23"),
    ("annotation-id-2**64", _with(created(101, 1), "annotation.id", 2**64), "annotation.id",
     f"got {2**64}"),
    ("annotation-id-zero", _with(created(101, 1), "annotation.id", 0), "annotation.id", "got 0"),
    ("task-negative", _with(created(101, 1), "task.id", -5), "task.id", "got -5"),
    ("task-fraction", _with(created(101, 1), "task.id", 101.5), "task.id", "got 101.5"),
    ("bulk-annotation", {"action": "ANNOTATIONS_CREATED", "project": {"id": LS_PROJECT},
                         "task": [{"id": 101}, {"id": 102}],
                         "annotation": [{"id": 1}, {"id": 2**63}]},
     "annotation[1].id", f"got {2**63}"),
    ("deleted-annotation", {"action": "ANNOTATIONS_DELETED", "project": {"id": LS_PROJECT},
                            "annotations": [{"id": 1e23}]}, "annotations[0].id", "got 1e+23"),
]


@pytest.mark.faults
@pytest.mark.parametrize(("payload", "field", "got"), [c[1:] for c in BAD_IDS],
                         ids=[c[0] for c in BAD_IDS])
def test_app_answers_422_for_ids_sqlite_cannot_hold(app_client, settings, setup, payload, field,
                                                     got):
    client, calls = app_client
    catalog, project = setup
    answer = post(client, payload)
    assert answer.status_code == 422, (
        f"expected 422 for {field} out of range; got {answer.status_code}: {answer.text[:300]}")
    detail = answer.json()["detail"]
    assert f"{field}: {ID_RANGE_TEXT}; {got}" in detail, (
        f"expected the detail to name {field}, the accepted range and the value; got {detail!r}")
    assert catalog.review_events(project) == [] and calls == []
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        process_webhook(settings, catalog, payload)


@pytest.mark.faults
@pytest.mark.parametrize("value", [1, 2**63 - 1, "77"], ids=["one", "max", "digit-string"])
def test_ids_at_the_edges_of_the_range_are_accepted(settings, setup, value):
    catalog, _ = setup
    outcome = process_webhook(settings, catalog, created(101, 1, project=value))
    assert outcome.action == "ANNOTATION_CREATED"  # validated; 77 is ours, the others unknown
    assert outcome.handled is (value == "77")
