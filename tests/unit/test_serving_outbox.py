"""The flag outbox: durable rows, retries with backoff, drain after restart, serving rounds."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from labelwise.config import Settings
from labelwise.domain import Detections, ImageStatus
from labelwise.labelstudio.errors import LabelStudioUnavailable
from labelwise.rounds import LEARNED, LEARNING, PROPOSED, QUEUED, REVIEWED
from labelwise.serving import outbox
from labelwise.rounds.opening import serving_round
from labelwise.serving.delivery import make_deliver
from labelwise.serving.outbox import DeliveryWorker, retry_delay
from labelwise.serving.settings import ServingSettings
from tests.conftest import write_png

pytestmark = pytest.mark.faults


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(timezone.utc) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def pool(catalog, tmp_path):
    project = catalog.create_project("p", ["a", "b"])
    paths = [write_png(tmp_path / "up" / f"{i}.png", seed=i) for i in range(3)]
    ids = catalog.add_images(project, paths).added
    return project, ids


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (100, 60.0)]
)
def test_retry_delay_doubles_up_to_the_cap(attempts, delay):
    assert retry_delay(attempts, 1.0, 60.0) == delay


def test_rows_are_unique_per_image(catalog, pool):
    project, ids = pool
    assert outbox.add_flag(catalog, project, ids[0], "v1", "g", 0.1, {"entropy": 0.1}) is True
    assert outbox.add_flag(catalog, project, ids[0], "v2", "g", 0.2, {}) is False
    assert outbox.flagged_image_ids(catalog, project) == [ids[0]]
    assert outbox.outbox_counts(catalog, project)["pending"] == 1


def test_failed_deliveries_back_off_and_then_succeed(catalog, pool):
    project, ids = pool
    clock = Clock()
    outbox.add_flag(catalog, project, ids[0], "v1", "g", 0.1, {})
    calls = []

    def deliver(item):
        calls.append((clock.t, item.attempts))
        if len(calls) < 3:
            raise LabelStudioUnavailable("Label Studio at http://127.0.0.1:1 is down")

    worker = DeliveryWorker(catalog, deliver, base_s=10, max_s=60, now=clock)
    assert worker.run_once() == 0
    assert worker.run_once() == 0  # not due again yet: nothing is tried
    assert len(calls) == 1
    counts = outbox.outbox_counts(catalog, project)
    assert counts["pending"] == 1 and "is down" in counts["last_error"]
    clock.t += timedelta(seconds=10)
    assert worker.run_once() == 0 and len(calls) == 2
    clock.t += timedelta(seconds=19)
    assert worker.run_once() == 0 and len(calls) == 2  # second retry waits 20 s
    clock.t += timedelta(seconds=1)
    assert worker.run_once() == 1
    assert [a for _, a in calls] == [0, 1, 2]
    assert outbox.outbox_counts(catalog, project)["delivered"] == 1
    assert worker.failures == 2 and worker.delivered == 1


def test_pending_rows_survive_a_restart_and_drain_at_start(catalog, pool):
    project, ids = pool
    for image_id in ids:
        outbox.add_flag(catalog, project, image_id, "v1", "g", 0.1, {})
    down = DeliveryWorker(
        catalog,
        lambda item: (_ for _ in ()).throw(LabelStudioUnavailable("down")),
        base_s=3600,
        max_s=3600,
    )
    down.run_once()  # every row now waits an hour
    assert outbox.outbox_counts(catalog, project)["pending"] == 3
    delivered = []
    restarted = DeliveryWorker(catalog, lambda item: delivered.append(item.image_id), idle_s=0.05)
    restarted.start()  # a new process: pending rows are due at once
    try:
        deadline = time.monotonic() + 5
        while len(delivered) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        restarted.stop()
    assert sorted(delivered) == sorted(ids)
    assert outbox.outbox_counts(catalog, project) | {"last_error": None} == {
        "pending": 0,
        "delivered": 3,
        "oldest_pending_at": None,
        "last_error": None,
    }


def test_wake_delivers_without_waiting_for_the_timer(catalog, pool):
    project, ids = pool
    delivered = []
    worker = DeliveryWorker(catalog, lambda item: delivered.append(item.image_id), idle_s=30)
    worker.start()
    try:
        time.sleep(0.1)
        outbox.add_flag(catalog, project, ids[1], "v1", "g", 0.1, {})
        worker.wake()
        deadline = time.monotonic() + 5
        while not delivered and time.monotonic() < deadline:
            time.sleep(0.02)
        assert delivered == [ids[1]]
    finally:
        worker.stop()


def test_serving_round_is_reused_until_review_closes_it(catalog, pool):
    project, _ = pool
    first = serving_round(catalog, project, "g", "v1")
    assert serving_round(catalog, project, "g", "v1") == first
    other = serving_round(catalog, project, "other", "v1")
    assert other != first
    assert catalog.transition_round(project, first, PROPOSED, QUEUED)
    assert serving_round(catalog, project, "g", "v1") == first
    for src, dst in ((QUEUED, REVIEWED), (REVIEWED, LEARNING), (LEARNING, LEARNED)):
        assert catalog.transition_round(project, first, src, dst)
    fresh = serving_round(catalog, project, "g", "v1")
    assert fresh not in (first, other)
    assert catalog.round_info(project, fresh)["params"]["upload_group"] == "g"


def test_deliver_sends_a_one_item_batch_of_the_serving_round(catalog, pool, tmp_path):
    project, ids = pool
    settings = Settings(state_dir=tmp_path / "state")
    dets = Detections(
        np.array([[1, 1, 9, 9]], np.float32),
        np.array([0.5], np.float32),
        np.array([0]),
        np.array([[0.6, 0.4]], np.float32),
    )
    catalog.save_predictions(project, "v1", [(ids[0], dets)])
    outbox.add_flag(catalog, project, ids[0], "v1", "g", 0.12345678, {"entropy": 0.12345678})
    item = outbox.flag_outbox(catalog).due(datetime.now(timezone.utc))[0]
    sent = []

    def queue(settings_, catalog_, project_name, typed, group):
        sent.append((project_name, typed.as_json(), group))  # the typed batch, as JSON
        catalog_.mark_queued(project, {ids[0]: 77}, typed.round_number, group)
        return {}

    deliver = make_deliver(settings, ServingSettings(), catalog, queue=queue)
    deliver(item)
    deliver(item)  # already queued: nothing is sent again
    assert len(sent) == 1
    name, batch, group = sent[0]
    assert (name, group, batch["model_version"], batch["strategy"]) == ("p", "g", "v1", "serving")
    assert batch["params"]["round"] == serving_round(catalog, project, "g", "v1")
    (entry,) = batch["queue"]
    assert entry["image_id"] == ids[0] and entry["uncertainty_score"] == 0.123457
    assert entry["thumbnail"].endswith(f"{ids[0]}_128.jpg")
    assert catalog.image(project, ids[0]).status is ImageStatus.QUEUED


def test_a_row_is_claimed_by_one_worker_only(catalog, pool):
    project, ids = pool
    outbox.add_flag(catalog, project, ids[0], "v1", "g", 0.1, {})
    now = datetime.now(timezone.utc) + timedelta(seconds=1)
    item = outbox.flag_outbox(catalog).due(now)[0]
    assert outbox.flag_outbox(catalog).claim(item, now, lease_s=60) is True
    assert outbox.flag_outbox(catalog).claim(item, now, lease_s=60) is False  # a second replica backs off
    assert outbox.flag_outbox(catalog).due(now) == []
    assert outbox.flag_outbox(catalog).due(now + timedelta(seconds=61))[0].id == item.id  # lease expired
