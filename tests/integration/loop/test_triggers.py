"""Each trigger, for real: a real Prefect server (with its scheduler), the deployment runner
serving prefect.yaml, the webhook receiver process and the session's Label Studio server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labelwise.learn import tracker_for
from labelwise.runtime import open_catalog
from tests.prefect_server import REPO, DeploymentRunner, PrefectServer, free_port, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


def api(server: PrefectServer, coro_fn):  # type: ignore[no-untyped-def]
    """Run ``coro_fn(client)`` against the server with Prefect's own client."""
    from prefect.client.orchestration import PrefectClient

    async def go():  # type: ignore[no-untyped-def]
        async with PrefectClient(server.api_url) as client:
            return await coro_fn(client)

    return asyncio.run(go())


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout} s for {what}")


def deployment(server: PrefectServer, name: str):  # type: ignore[no-untyped-def]
    async def read(client):  # type: ignore[no-untyped-def]
        try:
            return await client.read_deployment_by_name(name)
        except Exception:  # noqa: BLE001 - not registered yet
            return None

    return api(server, read)


def runs_of(server: PrefectServer, deployment_id) -> list:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read(client):  # type: ignore[no-untyped-def]
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))

    return api(server, read)


def runs_for(server: PrefectServer, deployment_id, project: str) -> list:  # type: ignore[no-untyped-def]
    """The deployment's runs for ``project`` (the module's server keeps earlier tests' runs)."""
    return [r for r in runs_of(server, deployment_id)
            if (r.parameters or {}).get("params", {}).get("project") == project]


def final_run(server: PrefectServer, run_id, timeout: float):  # type: ignore[no-untyped-def]
    def done():  # type: ignore[no-untyped-def]
        run = api(server, lambda c: c.read_flow_run(run_id))
        return run if run.state and run.state.type.value in FINAL else None

    return wait_for(done, timeout, f"flow run {run_id} to finish")


NEVER = "0 0 1 1 *"  # once a year: effectively off during a test


@pytest.fixture
def trigger_project(request, make_loop_project, prefect_server, tmp_path):  # type: ignore[no-untyped-def]
    """A project whose Label Studio webhook goes to a receiver process that starts learn runs,
    and the runner serving prefect.yaml. ``@pytest.mark.reconcile_cron(C)`` sets reconcile's cron
    (default: off, so the reconciler cannot race the webhook in a test about the webhook)."""
    marker = request.node.get_closest_marker("reconcile_cron")
    port = free_port()
    lp = make_loop_project(f"triggers-{request.node.name[:20]}",
                           webhook_url=f"http://127.0.0.1:{port}/webhooks/labelstudio",
                           webhook_secret="trigger-secret")
    env = {**prefect_server.env(), "LABELWISE_CONFIG": lp.config, "LABELWISE_WEBHOOK_PORT": str(port),
           "LABELWISE_HOME": str(REPO), "LABELWISE_PROJECT": lp.name,
           "LABELWISE_PROPOSE_CRON": NEVER,
           "LABELWISE_RECONCILE_CRON": marker.args[0] if marker else NEVER}
    with open(tmp_path / "webhook.log", "wb") as log:
        receiver = subprocess.Popen([sys.executable, "-m", "deployments.webhook"], env=env, cwd=REPO,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/health"), 60, "the webhook receiver")
        with DeploymentRunner(prefect_server, env, tmp_path / "runner.log"):
            # The module's server still holds the previous test's deployments (same names, that
            # test's project): wait until this runner has re-registered them for this project.
            wait_for(lambda: all(_registered_for(prefect_server, name, lp.name) for name in OURS), 90,
                     "deployments to register for this test's project")
            yield lp, port
    finally:
        stop_group(receiver)


OURS = ("propose-round/propose", "learn-round/learn", "reconcile/reconcile")


def _registered_for(server: PrefectServer, name: str, project: str) -> bool:
    dep = deployment(server, name)
    return bool(dep) and (dep.parameters or {}).get("params", {}).get("project") == project


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.faults
def test_ui_run_then_webhook_start_exactly_one_learn_run(prefect_server, trigger_project):
    from labelwise.review import annotate_simulated

    lp, port = trigger_project
    # 1. What the UI's "Run" button does: create a run of the deployment through the API.
    propose = deployment(prefect_server, "propose-round/propose")
    created = api(prefect_server, lambda c: c.create_flow_run_from_deployment(propose.id))
    run = final_run(prefect_server, created.id, 240)
    assert run.state.type.value == "COMPLETED", run.state.message
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    assert catalog.status_counts(project)["queued"] == lp.settings.selection.limit

    # 2. A reviewer (simulated, through the real API) finishes the batch: Label Studio calls the
    #    receiver, which starts the learn deployment once.
    annotate_simulated(lp.settings, catalog, lp.name, str(lp.truth_dir), 0.0, 0)
    learn = deployment(prefect_server, "learn-round/learn")
    runs = wait_for(lambda: runs_for(prefect_server, learn.id, lp.name), 60, "a learn run")
    # A repeated delivery of the last event must not start a second run.
    payload = {"action": "ANNOTATION_CREATED", "project": {"id": project.ls_project_id},
               "task": {"id": catalog.images(project)[0].ls_task_id}, "annotation": {"id": 1}}
    httpx.post(f"http://127.0.0.1:{port}/webhooks/labelstudio", content=json.dumps(payload),
               headers={"X-Labelwise-Secret": "trigger-secret", "Content-Type": "application/json"})
    learned = final_run(prefect_server, runs[0].id, 300)
    assert learned.state.type.value == "COMPLETED", learned.state.message
    assert len(runs_for(prefect_server, learn.id, lp.name)) == 1
    assert [r["round"] for r in tracker_for(lp.settings, lp.name).round_metrics()] == [0]
    assert catalog.round_info(project, 0)["status"] == "learned"


@pytest.mark.reconcile_cron("* * * * *")
def test_the_scheduler_creates_runs_from_the_cron_schedule(prefect_server, trigger_project):
    from datetime import datetime, timedelta, timezone

    def minute_schedule():  # type: ignore[no-untyped-def]
        dep = deployment(prefect_server, "reconcile/reconcile")
        crons = [getattr(s.schedule, "cron", None) for s in (dep.schedules if dep else [])]
        return dep if "* * * * *" in crons else None

    reconcile = wait_for(minute_schedule, 60, "the runner to register reconcile's minute schedule")
    soon = datetime.now(timezone.utc) + timedelta(minutes=2)
    scheduled = wait_for(lambda: [r for r in runs_of(prefect_server, reconcile.id)
                                  if r.state and r.state.type.value == "SCHEDULED"
                                  and r.expected_start_time and r.expected_start_time <= soon], 60,
                         "the scheduler to create runs from the minute schedule")
    assert scheduled


def _receiver_health(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()


@pytest.mark.faults
def test_a_batch_reviewed_while_prefect_is_down_starts_one_learn_run_when_it_is_back(
        prefect_server, trigger_project):
    """Issue 12, item 5: Prefect stopped -> the batch's last webhook -> Prefect started -> exactly
    one learn run, and it learns the round (the receiver kept the request and retried)."""
    from labelwise.review import annotate_simulated

    lp, port = trigger_project
    propose = deployment(prefect_server, "propose-round/propose")
    created = api(prefect_server, lambda c: c.create_flow_run_from_deployment(propose.id))
    assert final_run(prefect_server, created.id, 240).state.type.value == "COMPLETED"
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    learn = deployment(prefect_server, "learn-round/learn")

    prefect_server.__exit__()  # Prefect is down
    try:
        annotate_simulated(lp.settings, catalog, lp.name, str(lp.truth_dir), 0.0, 0)
        assert catalog.round_info(project, 0)["status"] == "reviewed"
        failed = wait_for(lambda: (h := _receiver_health(port)["learn_requests"])
                          ["failed_attempts"] >= 1 and h, 180, "a failed learn-run request")
        assert failed["pending"] == 1 and failed["delivered"] == 0
    finally:
        prefect_server.__enter__()  # Prefect is back, same port and database
    wait_for(lambda: _receiver_health(port)["learn_requests"]["delivered"] == 1, 180,
             "the receiver to deliver the stored learn request")
    runs = wait_for(lambda: runs_for(prefect_server, learn.id, lp.name), 60, "the learn run")
    assert len(runs) == 1
    learned = final_run(prefect_server, runs[0].id, 300)
    assert learned.state.type.value == "COMPLETED", learned.state.message
    assert len(runs_for(prefect_server, learn.id, lp.name)) == 1
    assert catalog.round_info(project, 0)["status"] == "learned"
    assert _receiver_health(port)["learn_requests"]["pending"] == 0


def test_the_loop_hands_a_batch_the_webhook_reviewed_to_the_webhooks_learn_run(
        prefect_server, trigger_project):
    """Issue 17, item 7 (the demo's path): the loop's simulated reviewer finishes the batch in
    Label Studio, Label Studio's webhook reaches the receiver, which starts the learn deployment;
    the loop hands the round to that run and reports what it learnt. One learn run in all."""
    import os

    lp, _ = trigger_project
    code = (
        "import json; from flows.closed_loop import closed_loop; from flows.params import LoopParams; "
        f"rows = closed_loop(LoopParams(project={lp.name!r}, config={str(lp.config)!r}, rounds=1, "
        f"annotator='simulated', truth_dir={str(lp.truth_dir)!r}, review_timeout_s=300, poll_s=1, "
        "handoff_s=120)); print('ROWS=' + json.dumps(rows, default=str))"
    )
    env = {**os.environ, **prefect_server.env(), "LABELWISE_CONFIG": str(lp.config)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (row,) = json.loads(done.stdout.split("ROWS=")[-1])
    assert "(deployment" in row["learnt_by"], row
    assert row["round"] == 0 and row["mAP50"] >= 0.0
    learn = deployment(prefect_server, "learn-round/learn")
    (run,) = runs_for(prefect_server, learn.id, lp.name)
    assert run.state.type.value == "COMPLETED"
    assert row["learnt_by"].startswith(run.name)
    assert open_catalog(lp.settings).round_info(open_catalog(lp.settings).project(lp.name), 0)["status"] == "learned"
