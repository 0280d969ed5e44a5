"""Faults while a batch goes to a REAL Label Studio: lost replies, the server stopping mid-queue,
a queue killed with SIGKILL, two queues at once. Label Studio is reached through a TCP relay
(:mod:`tests.relay`) that can drop a reply after the server acted, or stop listening.

What must hold every time: exactly one task per image in Label Studio, the catalog's task ids are
those tasks, and nothing in the catalog changes unless the whole queue succeeded.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelwise.config import Settings, write_settings
from labelwise.datasets.digits import DigitsConfig, generate_digits, read_yolo_labels
from labelwise.domain import ImageStatus
from labelwise.labelstudio import LabelStudioMaybeApplied, LabelStudioUnavailable
from labelwise.review import queue_batch
from labelwise.runtime import open_catalog
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch
from tests.faults import cli_env, run_cli, run_killed_at
from tests.integration.test_review_flow import fake_detections, ls_client, snapshot, with_ls
from tests.relay import TcpRelay

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MODEL = "fake-v1"
POOL = 16
LIMIT = 5
IMPORT = r"^POST /api/projects/\d+/import"


@pytest.fixture
def relay(labelstudio: tuple[str, str, Path]) -> Iterator[TcpRelay]:
    url, _, _ = labelstudio
    proxy = TcpRelay(int(url.rsplit(":", 1)[1]))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def project(make_ls_settings: Callable[..., Settings], labelstudio: tuple[str, str, Path],
            relay: TcpRelay) -> Iterator[dict[str, Any]]:
    """A digits pool with fake predictions; its settings reach Label Studio through the relay."""
    _, _, root = labelstudio
    name = f"faults-{uuid.uuid4().hex[:6]}"
    direct = make_ls_settings(name, retries=3)
    settings = with_ls(direct, url=relay.url)
    dataset = generate_digits(root / f"data-{name}", DigitsConfig(
        pool_images=POOL, val_images=1, test_images=0, duplicate_cluster_fraction=0.0, seed=7))
    catalog = open_catalog(settings)
    record = catalog.create_project(name, dataset.class_names)
    catalog.add_images(record, dataset.pool_images)
    rng = np.random.default_rng(0)
    items = [(img.image_id, fake_detections(read_yolo_labels(dataset.truth_path(img.path)),
                                            img.width, img.height, len(dataset.class_names), rng))
             for img in catalog.images(record)]
    catalog.save_predictions(record, MODEL, items)
    yield {"name": name, "settings": settings, "direct": direct, "catalog": catalog}
    catalog.close()


def new_batch(p: dict[str, Any]) -> dict[str, Any]:
    request = ScoreBatchRequest(project=p["name"], strategy="entropy", limit=LIMIT,
                                diversity_weight=0.0)
    return build_score_batch(p["catalog"], p["settings"], request, record=True).as_json()


def ls_tasks(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's tasks, read straight from Label Studio (not through the relay)."""
    record = p["catalog"].project(p["name"])
    with ls_client(p["direct"]) as client:
        return client.list_tasks(int(record.ls_project_id), fields="task_only")


def images_and_rounds(p: dict[str, Any]) -> dict[str, Any]:
    """What a failed queue must leave as it was (the Label Studio project id it may record)."""
    snap = snapshot(p["catalog"], p["name"])
    return {"images": snap["images"], "rounds": snap["rounds"]}


def assert_one_task_per_image(p: dict[str, Any], image_ids: list[str]) -> dict[str, int]:
    """Exactly one Label Studio task per image; the catalog holds those task ids."""
    tasks = ls_tasks(p)
    per_image = Counter(str(t["data"]["image_id"]) for t in tasks)
    assert per_image == Counter({i: 1 for i in image_ids}), per_image
    by_image = {str(t["data"]["image_id"]): int(t["id"]) for t in tasks}
    catalog, record = p["catalog"], p["catalog"].project(p["name"])
    stored = {img.image_id: img.ls_task_id for img in catalog.images(record, image_ids=image_ids)}
    assert stored == by_image
    return by_image


@pytest.mark.parametrize(
    ("modes", "found"),
    [
        (("after",), LIMIT),  # the server saved the tasks, then the reply was lost
        (("swallow", "after"), LIMIT),  # lost before the server saw it, re-sent, reply lost again
        (("early",), None),  # the connection closed while the server was still saving
    ],
)
def test_a_lost_import_reply_leaves_one_task_per_image(
    project: dict[str, Any], relay: TcpRelay, modes: tuple[str, ...], found: int | None
) -> None:
    """An import's reply never arrives: the queue lists the project by image_id and sends only
    what is missing, never a blind second import."""
    batch = new_batch(project)
    ids = [item["image_id"] for item in batch["queue"]]
    for mode in modes:
        relay.drop_replies(IMPORT, times=1, mode=mode)
    out = queue_batch(project["settings"], project["catalog"], project["name"], batch, "g")
    reconciled = out["reconciled"]
    assert reconciled["lost_replies"] == len(modes)
    if found is not None:
        assert reconciled == {"lost_replies": len(modes), "found_after_lost_reply": found,
                              "duplicates_removed": 0}
        assert len(relay.seen(IMPORT)) == len(modes)
    assert_one_task_per_image(project, ids)
    record = project["catalog"].project(project["name"])
    assert {i.status for i in project["catalog"].images(record, image_ids=ids)} == {
        ImageStatus.QUEUED}


def test_a_reply_lost_with_no_retry_left_changes_nothing_and_says_what_to_do(
    project: dict[str, Any], relay: TcpRelay
) -> None:
    batch = new_batch(project)
    ids = [item["image_id"] for item in batch["queue"]]
    before = images_and_rounds(project)
    relay.drop_replies(IMPORT, times=1)
    with pytest.raises(LabelStudioMaybeApplied, match=r"run the command again: it imports only the "
                       r"tasks whose 'image_id' is not in the project yet"):
        queue_batch(with_ls(project["settings"], retries=0), project["catalog"],
                    project["name"], batch, None)
    assert images_and_rounds(project) == before  # nothing marked queued
    out = queue_batch(project["settings"], project["catalog"], project["name"], batch, None)
    assert (out["created"], out["reused"], out["reconciled"]["lost_replies"]) == (0, LIMIT, 0)
    assert_one_task_per_image(project, ids)


def test_label_studio_stopped_mid_queue(project: dict[str, Any], relay: TcpRelay) -> None:
    """The server stops right after it saved the import (the reply is lost, then every
    connection is refused): the queue fails naming the server, the catalog is unchanged; when
    the server is back, the same batch queues with one task per image."""
    batch = new_batch(project)
    ids = [item["image_id"] for item in batch["queue"]]
    rule = relay.drop_replies(IMPORT, times=1)
    stopper = threading.Thread(target=lambda: (_wait_dropped(rule), relay.stop()), daemon=True)
    stopper.start()
    before = images_and_rounds(project)
    with pytest.raises(LabelStudioUnavailable, match=r"unavailable after \d+ attempt"):
        queue_batch(with_ls(project["settings"], retries=1), project["catalog"],
                    project["name"], batch, "g")
    stopper.join(5)
    assert images_and_rounds(project) == before
    assert len(ls_tasks(project)) == LIMIT  # the server had saved them
    relay.start()
    out = queue_batch(project["settings"], project["catalog"], project["name"], batch, "g")
    assert (out["created"], out["reused"]) == (0, LIMIT)
    assert_one_task_per_image(project, ids)


def _wait_dropped(rule: Any, timeout_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while rule.dropped < rule.times and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_rerun_after_a_killed_queue_replaces_stale_tasks_in_one_request(
    project: dict[str, Any], relay: TcpRelay, tmp_path: Path
) -> None:
    """``queue`` killed (SIGKILL) after its import, before the catalog knew: the rerun closes the
    dead round, selects again, and replaces the stale tasks with one delete action and one
    import, not one request per task."""
    config = write_settings(project["settings"], tmp_path / "labelwise.yaml")
    args = ["--config", str(config), "queue", "--project", project["name"], "--strategy",
            "entropy", "--limit", str(LIMIT)]
    run_killed_at("labelwise.catalog:Catalog.mark_queued", 1, args, env=cli_env(), cwd=tmp_path)
    catalog, record = project["catalog"], project["catalog"].project(project["name"])
    killed = catalog.rounds(record)[-1]
    assert killed["status"] == "proposed"
    stale = {str(t["data"]["image_id"]): t for t in ls_tasks(project)}
    assert len(stale) == LIMIT and {t["data"]["round"] for t in stale.values()} == {
        killed["number"]}

    done = run_cli(args, env=cli_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["closed_stale_rounds"] == [killed["number"]]
    assert out["round"] == killed["number"] + 1
    ids = list(out["task_ids"])
    assert set(ids) == set(stale)  # the released images rank first again
    assert (out["refreshed"], out["created"], out["reused"]) == (LIMIT, 0, 0)
    assert relay.seen(r"^PATCH /api/tasks/") == []
    assert len(relay.seen(r"^POST /api/dm/actions")) == 1
    assert_one_task_per_image(project, ids)  # (SQLite may give the new tasks the old ids)
    assert {t["data"]["round"] for t in ls_tasks(project)} == {out["round"]}


def test_two_queues_at_once_get_their_own_rounds_and_one_task_per_image(
    project: dict[str, Any], tmp_path: Path
) -> None:
    """Two ``queue`` processes for one project at the same instant: one round each (or one
    clear refusal), never a traceback, and one task per image in the real Label Studio."""
    import subprocess
    import sys

    config = write_settings(project["settings"], tmp_path / "labelwise.yaml")
    args = ["--config", str(config), "queue", "--project", project["name"], "--strategy",
            "entropy", "--limit", str(LIMIT)]
    code = "from labelwise.cli.main import main; main()"
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], env=cli_env(), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(300), *p.communicate()) for p in procs]
    queued: list[str] = []
    rounds = []
    for rc, stdout, stderr in results:
        assert "Traceback" not in stderr, stderr
        if rc == 0:
            out = json.loads(stdout)
            rounds.append(out["round"])
            queued.extend(out["task_ids"])
        else:
            assert rc == 2 and stderr.strip().count("\n") == 0, stderr
    assert len(rounds) == len(set(rounds)) >= 1
    assert len(queued) == len(set(queued))  # no image in two rounds
    assert_one_task_per_image(project, queued)
