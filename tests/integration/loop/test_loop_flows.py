"""The closed loop under a real Prefect harness, real Label Studio and a real MLflow store."""

from __future__ import annotations

import pytest

from labelwise.domain import ImageStatus
from labelwise.learn import tracker_for
from labelwise.runtime import open_catalog
from labelwise.strategies import DEFAULT_STRATEGY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def flow_runs_named(client, names: list[str]) -> dict:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names)))
    return {run.name: run for run in runs}


def artifacts_of(client, flow_run_id) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """key -> data of the artifacts a flow run (or its tasks) created."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a.data for a in found}


def log_lines_of(client, flow_run_id) -> list[str]:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    return [log.message for log in client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


def assert_round_story(lp, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Each propose run is named after its round and has the queue and contact-sheet artifacts;
    each learn run has its learn page with metrics before -> after and its MLflow run; both log
    their steps' figures."""
    from prefect import get_client

    limit = lp.settings.selection.limit
    names = [f"{kind}-{lp.name}-round-{r['round']}" for r in rows for kind in ("propose", "learn")]
    with get_client(sync_client=True) as client:
        runs = flow_runs_named(client, names)
        assert sorted(runs) == sorted(names)  # propose renamed itself once score-batch knew
        for i, row in enumerate(rows):
            n = row["round"]
            propose = artifacts_of(client, runs[f"propose-{lp.name}-round-{n}"].id)
            assert sorted(propose) == [f"contact-sheet-{lp.name}", f"queue-{lp.name}"]
            queue = propose[f"queue-{lp.name}"].splitlines()
            assert queue[0] == f"# Round {n} queue of {lp.name}"
            for line in (f"| strategy | {row['strategy']} |", f"| limit | {limit} |",
                         "| diversity weight (applied) | ",
                         "| seed | 0 |", f"| scoring floor (confidence) | "
                                           f"{lp.settings.scoring.confidence_floor} |"):
                assert any(q.startswith(line) for q in queue), line
            items = [line for line in queue if line.startswith("| ") and "| `" in line]
            assert len(items) == row["queued"] == limit
            assert any(line.startswith("**Ties:** ") and f"of {limit} queued images" in line
                       for line in queue)
            assert any(line.startswith(f"- contact sheet: `") and line.endswith(f"round-{n}-queue.png`")
                       for line in queue)
            assert any(line.startswith("- Label Studio: project ") and f"{limit} tasks created" in line
                       for line in queue)
            assert propose[f"contact-sheet-{lp.name}"].endswith(f"round-{n}-queue.png)")
            assert propose[f"contact-sheet-{lp.name}"].startswith(f"[round {n} contact sheet: ")

            learn = artifacts_of(client, runs[f"learn-{lp.name}-round-{n}"].id)
            assert list(learn) == [f"learn-{lp.name}"]
            page = learn[f"learn-{lp.name}"].splitlines()
            assert page[0] == f"# Round {n} learned: {lp.name}"
            before = ("before (first round)" if i == 0 else
                      f"before (champion v{rows[0]['registered_version']}, round {rows[0]['round']})")
            assert (f"| held-out metric | {before} | after (v{row['registered_version']}) | change |"
                    in page)
            for label, key in (("precision", "precision"), ("recall", "recall"),
                               ("mAP50", "mAP50"), ("mAP50-95", "mAP50-95")):
                after = f"{row[key]:.3f}"
                if i == 0:
                    assert f"| {label} | – | {after} | n/a |" in page, label
                else:
                    prior = f"{rows[0][key]:.3f}"
                    change = f"{row[key] - rows[0][key]:+.3f}"
                    assert f"| {label} | {prior} | {after} | {change} |" in page, label
            moved = f"**Promotion:** champion moved to v{row['registered_version']} ("
            assert any(line.startswith(moved) for line in page) is row["champion_moved"]
            assert any(line.startswith(f"**Labels used:** {row['labelled_images']} labelled images "
                                       f"({row['labelled_boxes']} boxes) + ") for line in page)
            assert any(line.startswith("**Reviewer corrections:** ") for line in page)
            assert any(line.startswith(f"**MLflow:** run `{row['run_id']}`") for line in page)

            logs = log_lines_of(client, runs[f"propose-{lp.name}-round-{n}"].id)
            assert any(line.startswith(f"score-batch: round {n}, {limit} of ") for line in logs), logs
            assert any(line.startswith(f"queue: {limit} tasks created in Label Studio project ")
                       for line in logs), logs
            logs = log_lines_of(client, runs[f"learn-{lp.name}-round-{n}"].id)
            for step in ("pull: ", "label issues: round ", "retrain: ", "evaluate: mAP50 ",
                         "promote: champion "):
                assert any(line.startswith(step) for line in logs), (step, logs)


def test_two_rounds_land_in_mlflow_and_move_the_champion_by_the_rule(prefect_harness, make_loop_project):
    from flows.closed_loop import closed_loop
    from flows.params import LoopParams

    lp = make_loop_project("loop-ok")
    rows = closed_loop(LoopParams(project=lp.name, config=lp.config, rounds=2, annotator="simulated",
                                  truth_dir=str(lp.truth_dir), review_timeout_s=120, poll_s=0.5,
                                  campaign="test"))
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[0]["strategy"] == "cold_start"  # no trained model yet
    assert rows[1]["strategy"] == DEFAULT_STRATEGY
    assert rows[0]["champion_moved"] is True  # the first model always becomes champion

    tracker = tracker_for(lp.settings, lp.name)
    runs = tracker.round_metrics()
    assert [r["round"] for r in runs] == [0, 1]
    for run in runs:
        for metric in ("precision", "recall", "mAP50", "mAP50-95", "labelled_images", "labelled_boxes",
                       "label_issues/total", "label_issues/missing_box", "label_issues/images_checked"):
            assert metric in run["metrics"], metric
        assert run["params"]["strategy"] in {"cold_start", DEFAULT_STRATEGY}
    assert runs[1]["metrics"]["labelled_images"] == 12
    # each round's newly labelled images were graded by the model that proposed the round
    assert runs[0]["metrics"]["label_issues/images_checked"] == runs[0]["metrics"]["labelled_images"]
    assert runs[1]["metrics"]["label_issues/images_checked"] == (
        runs[1]["metrics"]["labelled_images"] - runs[0]["metrics"]["labelled_images"])
    assert rows[1]["label_issues"]["images_checked"] == runs[1]["metrics"]["label_issues/images_checked"]
    history = tracker.client.get_metric_history(runs[1]["run_id"], "mAP50-95")
    assert [m.step for m in history] == [1]

    m0, m1 = (r["metrics"]["mAP50-95"] for r in runs)
    champion = tracker.champion()
    tol = lp.settings.tracking.promote_tolerance
    expected = rows[1]["registered_version"] if m1 >= m0 - tol else rows[0]["registered_version"]
    assert champion is not None and champion.version == expected
    assert rows[1]["champion_moved"] is (m1 >= m0 - tol)

    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    assert catalog.status_counts(project)["labelled"] == 12
    assert [r["status"] for r in catalog.rounds(project)] == ["learned", "learned"]
    assert_round_story(lp, rows)


@pytest.mark.faults
def test_label_studio_down_during_queue_fails_the_run_and_changes_no_image(prefect_harness, make_loop_project, monkeypatch):
    from flows.params import ProposeParams
    from flows.propose_round import propose_round
    from labelwise.labelstudio.errors import LabelStudioUnavailable
    from tasks import steps

    monkeypatch.setattr(steps, "STEP_RETRY_DELAYS_S", [0.1, 0.1, 0.1])
    lp = make_loop_project("loop-ls-down", url="http://127.0.0.1:9", retries=0)
    with pytest.raises(LabelStudioUnavailable, match="127.0.0.1:9"):
        propose_round(ProposeParams(project=lp.name, config=lp.config))
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    assert catalog.status_counts(project) == {"unlabelled": 24, "queued": 0, "labelled": 0, "rejected": 0}
    assert all(img.ls_task_id is None for img in catalog.images(project))
    assert [r["status"] for r in catalog.rounds(project)] == ["proposed"]  # never queued


@pytest.mark.faults
def test_training_crash_leaves_the_champion_untouched(prefect_harness, make_loop_project):
    from flows.closed_loop import closed_loop
    from flows.learn_round import learn_round
    from flows.params import LearnParams, LoopParams, ProposeParams
    from flows.propose_round import propose_round
    from tasks.review import annotate_simulated, wait_for_review

    lp = make_loop_project("loop-crash")
    closed_loop(LoopParams(project=lp.name, config=lp.config, rounds=1, annotator="simulated",
                           truth_dir=str(lp.truth_dir), review_timeout_s=120, poll_s=0.5))
    tracker = tracker_for(lp.settings, lp.name)
    before = tracker.champion()
    assert before is not None

    proposed = propose_round(ProposeParams(project=lp.name, config=lp.config))
    annotate_simulated.fn(lp.config, lp.name, str(lp.truth_dir), 0.0, 0)
    wait_for_review.fn(lp.config, lp.name, proposed["round"], 120, 0.5)
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    victim = catalog.images(project, ImageStatus.QUEUED)[0]
    # The reviewed image vanishes from disk: building the training set must fail loudly.
    broken = victim.path.with_suffix(".moved")
    victim.path.rename(broken)
    try:
        with pytest.raises(FileNotFoundError, match="is gone"):  # no round_number: the newest
            learn_round(LearnParams(project=lp.name, config=lp.config))
    finally:
        broken.rename(victim.path)
    from prefect import get_client

    with get_client(sync_client=True) as client:  # the run renamed itself once it found the round
        assert list(flow_runs_named(client, [f"learn-{lp.name}-round-{proposed['round']}"])) == [
            f"learn-{lp.name}-round-{proposed['round']}"]
        assert not flow_runs_named(client, [f"learn-{lp.name}"])
    after = tracker.champion()
    assert after is not None and after.version == before.version
    assert catalog.round_info(project, proposed["round"])["status"] == "reviewed"  # can be retried

    # The round was given back: `labelwise learn` (no Prefect: the same use case) learns it, once.
    import json

    from typer.testing import CliRunner

    from labelwise.cli.main import app

    runner = CliRunner()
    done = runner.invoke(app, ["--config", lp.config, "learn", "--project", lp.name])
    assert done.exit_code == 0, done.output
    learned = json.loads(done.stdout[done.stdout.index("{"):])
    assert learned["round"] == proposed["round"] and learned["learnt_by"] == "labelwise learn"
    assert catalog.round_info(project, proposed["round"])["status"] == "learned"
    assert tracker.champion() is not None
    again = runner.invoke(app, ["--config", lp.config, "learn", "--project", lp.name,
                                "--round", str(proposed["round"])])
    assert again.exit_code == 2 and "was not learnt: round is learned" in again.output

    # `labelwise propose` (no Prefect: the same use case as propose-round) queues the next round
    # from the champion it just promoted.
    nxt = runner.invoke(app, ["--config", lp.config, "propose", "--project", lp.name, "--limit", "3"])
    assert nxt.exit_code == 0, nxt.output
    proposed_next = json.loads(nxt.stdout[nxt.stdout.index("{"):])
    assert proposed_next["round"] == proposed["round"] + 1 and proposed_next["queued"] == 3
    assert proposed_next["labelstudio"]["created"] == 3
    info = catalog.round_info(project, proposed_next["round"])
    assert info["status"] == "queued" and info["strategy"] != "cold_start"
    assert info["params"]["base_model"].endswith(".pt")  # the champion's weights
    assert set(info["params"]["artifacts"]) == {"queue", "contact_sheet"}
    assert "score-batch:" in nxt.stderr and "queue:" in nxt.stderr


@pytest.mark.faults
def test_reconcile_learns_a_reviewed_round_whose_webhook_was_lost_once(prefect_harness, make_loop_project):
    """The reconcile flow itself (not only its schedule): a queued round still under review is
    left alone; once every task is answered (no webhook: the project has none) one reconcile run
    marks it reviewed and learns it, and the next run finds nothing to do."""
    from flows.params import ProposeParams, ReconcileParams
    from flows.propose_round import propose_round
    from flows.reconcile import reconcile
    from tasks.review import annotate_simulated

    lp = make_loop_project("loop-reconcile")
    proposed = propose_round(ProposeParams(project=lp.name, config=lp.config))
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    number = proposed["round"]
    params = ReconcileParams(project=lp.name, config=lp.config, campaign="reconcile-test")

    assert reconcile(params) == []  # nothing answered yet
    assert catalog.round_info(project, number)["status"] == "queued"

    annotate_simulated.fn(lp.config, lp.name, str(lp.truth_dir), 0.0, 0)
    learned = reconcile(params)
    assert [row["round"] for row in learned] == [number]
    assert catalog.round_info(project, number)["status"] == "learned"
    assert catalog.status_counts(project)["labelled"] == proposed["queued"]
    champion = tracker_for(lp.settings, lp.name).champion()
    assert champion is not None and champion.version == learned[0]["registered_version"]

    assert reconcile(params) == []  # learned once: the next run has nothing to do
    assert [r["round"] for r in tracker_for(lp.settings, lp.name).round_metrics()] == [number]
