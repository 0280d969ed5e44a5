"""A retried track-round task finishes its round instead of leaving orphans (issue 13, item 3).

Against a real MLflow sqlite store: ``learn.track_round`` fails at one step (an injected fault,
once), then runs again as the task's retry would. Afterwards the round has exactly one round run,
FINISHED with its metrics (each point once), and exactly one registered version, which the run
names; the campaign is not left RUNNING.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from labelwise import learn
from labelwise.detector import EvalResult
from labelwise.catalog import ProjectRecord
from labelwise.config import Settings
from labelwise.tracking import (
    CHAMPION_TAG,
    ERROR_TAG,
    KIND_TAG,
    NOTE_TAG,
    PARENT_TAG,
    ROUND_METRICS,
    ROUND_TAG,
    VERSION_TAG,
    Tracker,
)

_names = itertools.count()
ROUND = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One real MLflow sqlite store for the module; every test has its own project."""
    return Settings(state_dir=tmp_path_factory.mktemp("track-retry"))


@pytest.fixture
def project(store: Settings) -> ProjectRecord:
    return ProjectRecord(id=1, name=f"retry-{next(_names)}", class_names=("a", "b"))


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "round.pt"
    path.write_bytes(b"a file to register as the round's weights")
    return path


def retrained(weights: Path, model_version: str = "round-abc123") -> learn.RetrainResult:
    return learn.RetrainResult(str(weights), model_version, "yolov8n.yaml", seconds=1.0, epochs=1,
                               labelled_images=12, labelled_boxes=24)


EVALUATION = EvalResult("test", precision=0.5, recall=0.4, map50=0.5, map50_95=0.3,
                        per_class_ap50={"a": 0.6, "b": 0.4}, seconds=0.1)


def track(store: Settings, project: ProjectRecord, weights: Path, **kw: Any) -> learn.TrackedRound:
    """The track-round task's call (what each attempt runs)."""
    return learn.track_round(store, project, ROUND, "c", {"strategy": "random"},
                             retrained(weights, **kw), EVALUATION)


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, after: bool,
              when: Callable[..., bool] = lambda *a, **k: True) -> dict[str, bool]:
    """Make ``owner.name`` raise once (the first call ``when`` accepts): before doing its work,
    or ``after`` it (the work is done, the caller never hears). Returns the fault's state."""
    original = getattr(owner, name)
    state = {"fired": False}

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if state["fired"] or not when(*args, **kwargs):
            return original(*args, **kwargs)
        state["fired"] = True
        if after:
            original(*args, **kwargs)
        raise RuntimeError(f"injected fault in {name}")

    monkeypatch.setattr(owner, name, faulty)
    return state


def round_runs(tracker: Tracker) -> list[Any]:
    return tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'round' and tags.`{ROUND_TAG}` = '{ROUND}'")


def versions(tracker: Tracker) -> list[Any]:
    return tracker.client.search_model_versions(f"name = '{tracker.model_name}'")


def assert_one_finished_round(store: Settings, project: ProjectRecord, tracked: learn.TrackedRound) -> None:
    tracker = learn.tracker_for(store, project.name)
    (run,) = round_runs(tracker)
    assert run.info.run_id == tracked.run_id
    assert run.info.status == "FINISHED"
    assert set(ROUND_METRICS) <= set(run.data.metrics) and run.data.metrics["mAP50-95"] == 0.3
    for key in ("mAP50-95", "labelled_images", "AP50/a"):  # every point logged once
        assert [(m.step, m.value) for m in tracker.client.get_metric_history(run.info.run_id, key)] \
            == [(ROUND, run.data.metrics[key])], key
    campaign = run.data.tags[PARENT_TAG]
    assert [m.step for m in tracker.client.get_metric_history(campaign, "mAP50-95")] == [ROUND]
    assert tracker.client.get_run(campaign).info.status == "FINISHED"  # released with its round

    (mv,) = versions(tracker)
    assert tracked.registered_version == str(mv.version) == run.data.tags[VERSION_TAG]
    assert mv.run_id == run.info.run_id
    assert mv.tags == {"round": str(ROUND), "mAP50": "0.5000", "mAP50-95": "0.3000",
                       "promotion": "pending"}
    assert mv.description.startswith(f"Round {ROUND} (run {run.info.run_id})")

    assert ERROR_TAG not in run.data.tags  # the failed attempt's marks are gone
    assert run.data.tags[CHAMPION_TAG] == "pending"
    note = run.data.tags[NOTE_TAG]
    assert f"Registered as v{mv.version}." in note and "Champion: pending." in note
    artifacts = {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
    assert {"weights", "plots", "summary"} <= artifacts


def _summary(self: Tracker, run_id: str, path: Path, kind: str | None = None) -> bool:
    return kind == "summary"


def _finished(self: Tracker, run_id: str, status: str = "FINISHED", error: str | None = None) -> bool:
    return status == "FINISHED"


@pytest.mark.parametrize("owner, name, after, when, left", [
    # where the first attempt dies: (owner, method, after its work?, which call) -> its run
    (Tracker, "log_artifact", False, _summary, "FAILED"),          # half the artifacts logged
    (Tracker, "register_weights", False, None, "FAILED"),          # before registering
    (MlflowClient, "create_model_version", True, None, "FAILED"),  # registered, reply lost
    (Tracker, "register_weights", True, None, "FAILED"),           # registered and tagged
    (Tracker, "end_run", True, _finished, "FINISHED"),             # died once the run ended
])
def test_a_retried_track_round_reuses_its_run_and_version(
    store: Settings, project: ProjectRecord, weights: Path, monkeypatch: pytest.MonkeyPatch,
    owner: type, name: str, after: bool, when: Callable[..., bool] | None, left: str,
) -> None:
    fault = fail_once(monkeypatch, owner, name, after, when or (lambda *a, **k: True))
    with pytest.raises(RuntimeError, match="injected fault"):
        track(store, project, weights)
    assert fault["fired"]
    tracker = learn.tracker_for(store, project.name)
    (first,) = round_runs(tracker)
    assert first.info.status == left and (ERROR_TAG in first.data.tags) == (left == "FAILED")

    tracked = track(store, project, weights)  # the task's retry

    assert_one_finished_round(store, project, tracked)
    assert learn.promote(store, project.name, tracked.registered_version, 0.3)["moved"] is True


def test_tracking_a_round_again_after_it_finished_changes_nothing(
    store: Settings, project: ProjectRecord, weights: Path
) -> None:
    first = track(store, project, weights)
    again = track(store, project, weights)  # e.g. the task's result was lost after it finished
    assert again == first
    assert_one_finished_round(store, project, again)


def test_other_weights_for_the_same_round_get_a_run_and_version_of_their_own(
    store: Settings, project: ProjectRecord, weights: Path
) -> None:
    first = track(store, project, weights, model_version="round-abc123")
    other = track(store, project, weights, model_version="round-def456")  # a new training
    assert other.run_id != first.run_id and other.registered_version != first.registered_version
    tracker = learn.tracker_for(store, project.name)
    runs = {r.info.run_id: r for r in round_runs(tracker)}
    assert set(runs) == {first.run_id, other.run_id}
    assert {r.data.params[learn.TRAINED_MODEL_PARAM] for r in runs.values()} == \
        {"round-abc123", "round-def456"}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert sorted(str(mv.version) for mv in versions(tracker)) == \
        sorted([first.registered_version, other.registered_version])


def test_a_campaign_whose_params_could_not_be_logged_does_not_stay_running(
    store: Settings, project: ProjectRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = learn.tracker_for(store, project.name)
    fault = fail_once(monkeypatch, Tracker, "log_params", False)
    with pytest.raises(RuntimeError, match="injected fault"):
        tracker.start_campaign("loop", {"rounds": 3})
    assert fault["fired"]
    (campaign,) = tracker.client.search_runs([tracker.experiment_id],
                                             filter_string="attributes.run_name = 'loop'")
    assert campaign.info.status == "FAILED"
    assert campaign.data.tags[ERROR_TAG] == "RuntimeError: injected fault in log_params"


@pytest.mark.parametrize("module, task, retries", [
    # the retry audit of tasks/ (docs/architecture.md): retried tasks are safe to repeat
    ("tasks.learn", "end_campaign", 2),     # ends the same run with the same description
    ("tasks.learn", "start_campaign", 0),   # a retry would open a second campaign run
    ("tasks.review", "review_status", 3),       # reads Label Studio only
    ("tasks.review", "pull_annotations", 3),    # labels upserted, pulled images leave the queue
    ("tasks.review", "annotate_simulated", 3),  # answers only tasks still unanswered
])
def test_the_retried_tasks_are_the_audited_ones(module: str, task: str, retries: int) -> None:
    import importlib

    assert getattr(importlib.import_module(module), task).retries == retries


AUDITED_STEPS = {
    "pull": "labels upserted; pulled images leave the queue, a retry pulls the rest",
    "resolve-model": "reads the registry, downloads the champion to the same file",
    "champion-before": "reads MLflow only",
    "track-round": "finds its round run and version (the tests above)",
    "promote": "the decision is rewritten the same; the alias already on the version: nothing moves",
    "plateau-check": "reads MLflow only",
}
"""The learn use case's steps audited safe to repeat, and why."""


def test_the_learn_steps_retried_are_audited_ones() -> None:
    from labelwise.rounds.learning import RETRYABLE_STEPS

    assert set(RETRYABLE_STEPS) <= set(AUDITED_STEPS), set(RETRYABLE_STEPS) - set(AUDITED_STEPS)


AUDITED_PROPOSE_STEPS = {
    "resolve-model": "reads the registry, downloads the champion to the same file",
    "write-batch-artifacts": "rewrites the same queue JSON and contact sheet",
    "queue-for-review": "keyed by image id, reconciled after lost replies",
    "record-round-figures": "merges the same notes into the round's params",
}
"""The propose use case's steps audited safe to repeat, and why (not score-batch: a retry
would record a second round)."""


def test_the_propose_steps_retried_are_audited_ones() -> None:
    from labelwise.rounds.proposing import PROPOSE_STEPS, RETRYABLE_STEPS

    assert set(RETRYABLE_STEPS) <= set(AUDITED_PROPOSE_STEPS), set(RETRYABLE_STEPS) - set(AUDITED_PROPOSE_STEPS)
    assert "score-batch" in PROPOSE_STEPS and "score-batch" not in RETRYABLE_STEPS


@pytest.mark.parametrize("name, retries", [("queue-for-review", 3), ("score-batch", 0)])
def test_the_flows_step_runner_retries_only_the_audited_steps(name: str, retries: int, monkeypatch) -> None:
    import tasks.steps as steps
    from labelwise.rounds.proposing import RETRYABLE_STEPS

    made: list[int] = []

    def fake_task(**options):
        made.append(options["retries"])
        return lambda fn: fn

    monkeypatch.setattr(steps, "task", fake_task)
    assert steps.prefect_step(RETRYABLE_STEPS)(name, lambda x: x + 1, 1) == 2
    assert made == [retries]
