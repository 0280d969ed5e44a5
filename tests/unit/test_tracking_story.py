"""MLflow tells the story of the rounds (issue 17, item 6), against a real MLflow sqlite store:
the experiment is tagged as model training and carries the ``Rounds`` view; campaign runs end
(FINISHED, or FAILED with the error); round runs have a description and stable metric names;
registered versions have a description and the tags round / mAP50 / mAP50-95 / promotion."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labelwise import learn, tracking
from labelwise.detector import EvalResult
from labelwise.catalog import ProjectRecord
from labelwise.config import Settings, TrackingSettings, write_settings
from labelwise.promotion import decide_promotion
from labelwise.tracking import (
    CHAMPION_TAG,
    ERROR_TAG,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    HELD_BY_TAG,
    NOTE_TAG,
    PARENT_TAG,
    ROUND_METRICS,
    SAVED_VIEW_TAG,
    Tracker,
)

_names = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One real MLflow sqlite store for the module (creating one costs seconds); every test
    keeps to its own project (own experiment and registered model)."""
    state = tmp_path_factory.mktemp("tracking-story")
    return Settings(state_dir=state, tracking=TrackingSettings(promote_tolerance=0.01))


@pytest.fixture
def project(store: Settings) -> ProjectRecord:
    return ProjectRecord(id=1, name=f"story-{next(_names)}", class_names=("a", "b"))


def evaluation(map50_95: float) -> EvalResult:
    return EvalResult("test", precision=0.5, recall=0.4, map50=map50_95 + 0.2, map50_95=map50_95,
                      per_class_ap50={"a": 0.6, "b": 0.4}, seconds=0.1)


def retrained(weights: Path, labelled: int = 12, pseudo: int = 0) -> learn.RetrainResult:
    return learn.RetrainResult(str(weights), "v", "yolov8n.yaml", seconds=1.0, epochs=1,
                               labelled_images=labelled, labelled_boxes=2 * labelled,
                               pseudo_labels=pseudo > 0, pseudo_images=pseudo,
                               pseudo={"pseudo/images": float(pseudo)})


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "round.pt"
    path.write_bytes(b"not really a detector, but a file to register")
    return path


@pytest.fixture
def track(store: Settings, project: ProjectRecord, weights: Path) -> Callable[..., learn.TrackedRound]:
    """``track(round, map50_95, campaign="c")``: one learn round's tracking, as learn-round calls it."""

    def run(number: int, map50_95: float, campaign: str = "c", labelled: int = 12) -> learn.TrackedRound:
        return learn.track_round(store, project, number, campaign, {"strategy": "random"},
                                 retrained(weights, labelled), evaluation(map50_95))

    return run


def running_runs(tracker: Tracker) -> list[str]:
    return [r.info.run_name for r in tracker.client.search_runs(
        [tracker.experiment_id], filter_string="attributes.status = 'RUNNING'")]


# Experiment -----------------------------------------------------------------------------------

@pytest.mark.parametrize("before, kind", [
    ("absent", EXPERIMENT_KIND),            # a new experiment is created tagged
    ("untagged", EXPERIMENT_KIND),          # one from before the tags gets them
    ("genai_development", "genai_development"),  # a kind someone chose in the UI is kept
])
def test_the_experiment_is_tagged_as_model_training_and_has_the_rounds_view(store, project, track, before, kind):
    from mlflow import MlflowClient

    if before != "absent":
        client = MlflowClient(store.resolved_tracking_uri)
        tags = {} if before == "untagged" else {EXPERIMENT_KIND_TAG: before}
        client.create_experiment(f"labelwise/{project.name}", tags=tags)
    tracker = learn.tracker_for(store, project.name)
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.tags[EXPERIMENT_KIND_TAG] == kind

    view = json.loads(exp.tags[SAVED_VIEW_TAG])  # the UI's saved-view envelope
    assert view["name"] == "Rounds" and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert {"metrics.`mAP50-95`", "metrics.`labelled_images`", "params.`strategy`",
            "attributes.`Description`"} <= set(state["selectedColumns"])
    track(0, 0.3)
    # The view's filter is a valid MLflow search that lists the round runs only, not the campaign.
    found = tracker.client.search_runs([tracker.experiment_id], filter_string=state["searchFilter"])
    assert [r.info.run_name for r in found] == ["round-0"]
    assert tracker.rounds_view_path() == (f"#/experiments/{tracker.experiment_id}/runs?"
                                          "workflowType=machine_learning&viewStateShareKey=labelwise-rounds")


# Round runs -----------------------------------------------------------------------------------

def test_a_round_run_has_its_description_and_the_stable_metric_names(store, project, track):
    tracked = track(0, 0.3)
    tracker = learn.tracker_for(store, project.name)
    run = tracker.client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert set(ROUND_METRICS) <= set(run.data.metrics)
    assert run.data.metrics["labelled_images"] == 12
    note = run.data.tags[NOTE_TAG]
    for part in ("**Round 0** of campaign c", "strategy random", "12 labelled images (24 boxes)",
                 "P 0.500", "R 0.400", "mAP50 0.500", "mAP50-95 0.300", "Registered as v1",
                 "Champion: pending"):
        assert part in note, part

    learn.promote(store, project.name, tracked.registered_version, 0.3)
    run = tracker.client.get_run(tracked.run_id)
    assert run.data.tags[CHAMPION_TAG] == "moved to v1 (promoted because no champion yet)"
    assert "Champion: moved to v1 (promoted because no champion yet)." in run.data.tags[NOTE_TAG]


def test_a_round_names_its_pseudo_labelled_images(store, project, weights):
    tracked = learn.track_round(store, project, 0, "c", {"strategy": "random"},
                                retrained(weights, 4, pseudo=3), evaluation(0.3))
    note = learn.tracker_for(store, project.name).client.get_run(tracked.run_id).data.tags[NOTE_TAG]
    assert "4 labelled images (8 boxes) + 3 pseudo-labelled images" in note


def test_a_round_that_fails_while_tracking_ends_failed_with_the_error(store, project, tmp_path):
    gone = tmp_path / "gone.pt"  # the weights vanished: registering them fails
    with pytest.raises(Exception) as raised:
        learn.track_round(store, project, 0, "c", {"strategy": "random"}, retrained(gone), evaluation(0.3))
    tracker = learn.tracker_for(store, project.name)
    (campaign,) = tracker.client.search_runs([tracker.experiment_id], filter_string="attributes.run_name = 'c'")
    (row,) = tracker.campaign_rounds(campaign.info.run_id)
    assert row["status"] == "FAILED"
    assert row["tags"][ERROR_TAG].startswith(type(raised.value).__name__)
    assert row["tags"][CHAMPION_TAG] == "kept (round failed)"
    assert running_runs(tracker) == []  # the campaign it opened ended with it
    assert tracker.champion() is None


# Registered versions ----------------------------------------------------------------------------

@pytest.mark.parametrize("second, promoted, reason", [
    (0.35, True, "promoted because mAP50-95 0.3500 >= champion 0.3000 - tolerance 0.01 (champion was v1)"),
    (0.295, True, "promoted because mAP50-95 0.2950 >= champion 0.3000 - tolerance 0.01 (champion was v1)"),
    (0.2, False, "not promoted because mAP50-95 0.2000 < champion 0.3000 - tolerance 0.01 (champion was v1)"),
])
def test_a_registered_version_says_its_round_metrics_and_why_it_was_or_was_not_promoted(
        store, project, track, second, promoted, reason):
    first = track(0, 0.3)
    learn.promote(store, project.name, first.registered_version, 0.3)
    tracked = track(1, second)
    tracker = learn.tracker_for(store, project.name)
    mv = tracker.client.get_model_version(tracker.model_name, tracked.registered_version)
    assert mv.tags == {"round": "1", "mAP50": f"{second + 0.2:.4f}", "mAP50-95": f"{second:.4f}",
                       "promotion": "pending"}
    assert "Round 1" in mv.description and "Promotion: not decided yet." in mv.description

    result = learn.promote(store, project.name, tracked.registered_version, second)
    assert result["moved"] is promoted and result["explanation"] in reason
    mv = tracker.client.get_model_version(tracker.model_name, tracked.registered_version)
    assert mv.tags["promotion"] == reason
    assert mv.description == (f"Round 1 (run {tracked.run_id}): mAP50 {second + 0.2:.4f}, mAP50-95 "
                              f"{second:.4f} on the project's held-out split, 12 labelled images. "
                              f"Promotion: {reason}.")
    champion = tracker.client.get_run(tracked.run_id).data.tags[CHAMPION_TAG]
    assert champion == (f"moved to v2 ({reason})" if promoted else f"kept v1 ({reason})")
    assert tracker.champion().version == ("2" if promoted else "1")
    first_mv = tracker.client.get_model_version(tracker.model_name, first.registered_version)
    assert first_mv.tags["promotion"] == "promoted because no champion yet"

    again = learn.promote(store, project.name, tracked.registered_version, second)  # a retried task
    assert again["moved"] is False
    assert tracker.client.get_model_version(tracker.model_name, tracked.registered_version).tags["promotion"] == reason


@pytest.mark.parametrize("candidate, champion, text", [
    (0.3, None, "promoted because no champion yet"),
    (0.3, 0.3, "promoted because mAP50-95 0.3000 >= champion 0.3000 - tolerance 0.0"),
    (0.29, 0.3, "not promoted because mAP50-95 0.2900 < champion 0.3000 - tolerance 0.0"),
])
def test_the_rule_explains_itself(candidate, champion, text):
    assert decide_promotion(candidate, champion, 0.0).explanation == text


# Campaign runs ----------------------------------------------------------------------------------

def test_rounds_on_their_own_end_the_campaign_they_opened_and_reopen_it(store, project, track):
    tracker = learn.tracker_for(store, project.name)
    first = track(0, 0.3, campaign="webhook")
    parent = tracker.client.get_run(first.run_id).data.tags[PARENT_TAG]
    campaign = tracker.client.get_run(parent)
    assert campaign.info.status == "FINISHED" and campaign.data.tags[HELD_BY_TAG] == "rounds"
    second = track(1, 0.35, campaign="webhook")
    assert tracker.client.get_run(second.run_id).data.tags[PARENT_TAG] == parent  # the same campaign
    assert running_runs(tracker) == []
    note = tracker.client.get_run(parent).data.tags[NOTE_TAG]
    assert "**Campaign webhook**" in note and "2 round(s), FINISHED" in note
    assert "| 0 | random | 12 |" in note and "| 1 | random | 12 |" in note


def test_a_campaign_held_by_rounds_ends_with_the_last_running_round(store, project):
    tracker = learn.tracker_for(store, project.name)
    parent = tracker.ensure_campaign("c", {})
    assert tracker.ensure_campaign("c", {}) == parent  # a second round joins the running one
    a, b = (tracker.start_round(parent, n, {"strategy": "random"}) for n in (0, 1))
    tracker.end_run(a)
    assert tracker.client.get_run(parent).info.status == "RUNNING"  # round 1 still runs
    tracker.end_run(b)
    assert tracker.client.get_run(parent).info.status == "FINISHED"


class Loop:
    """The closed loop with its rounds faked at the flow boundary: propose, review and learn are
    stand-ins; the campaign tasks and the learn round's tracking are the real ones."""

    def __init__(self, settings: Settings, project: ProjectRecord, weights: Path, fail_round: int | None):
        self.settings, self.project, self.weights, self.fail_round = settings, project, weights, fail_round
        self.parent_status: list[str] = []
        self.number = 0

    def propose(self, params: Any) -> dict[str, Any]:
        return {"round": self.number, "strategy": "random", "queued": 3}

    def learn(self, params: Any) -> dict[str, Any]:
        tracker = learn.tracker_for(self.settings, self.project.name)
        campaign = tracker.find_campaign(params.campaign, status="RUNNING")
        self.parent_status.append(tracker.client.get_run(campaign).info.status if campaign else "none")
        number, self.number = self.number, self.number + 1
        if number == self.fail_round:
            raise RuntimeError("training crashed: image 3 is gone")
        tracked = learn.track_round(self.settings, self.project, number, params.campaign,
                                    {"strategy": "random"}, retrained(self.weights), evaluation(0.3))
        return {"round": number, "run_id": tracked.run_id}


@pytest.fixture
def loop(store: Settings, project: ProjectRecord, weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import flows.closed_loop as closed
    import tasks.learn as learn_tasks
    from flows.params import LoopParams

    config = str(write_settings(store, tmp_path / "labelwise.yaml"))

    def run(fail_round: int | None) -> tuple[Loop, Callable[[], list[dict]]]:
        fake = Loop(store, project, weights, fail_round)
        monkeypatch.setattr(closed, "propose_round", fake.propose)
        monkeypatch.setattr(closed, "learn_round", fake.learn)
        monkeypatch.setattr(closed, "annotate_simulated", lambda *a, **k: None)
        monkeypatch.setattr(closed, "wait_for_review", lambda *a, **k: None)
        monkeypatch.setattr(closed, "start_campaign", learn_tasks.start_campaign.fn)
        monkeypatch.setattr(closed, "end_campaign", learn_tasks.end_campaign.fn)
        params = LoopParams(project=project.name, config=config, rounds=3, annotator="simulated",
                            campaign="loop")
        return fake, lambda: closed.closed_loop.fn(params)

    return run


@pytest.mark.parametrize("fail_round, status, rounds", [(None, "FINISHED", 3), (1, "FAILED", 1)])
def test_the_loop_holds_its_campaign_and_ends_it(store, project, loop, fail_round, status, rounds):
    fake, run = loop(fail_round)
    if fail_round is None:
        rows = run()
        assert [r["round"] for r in rows] == [0, 1, 2]
    else:
        with pytest.raises(RuntimeError, match="training crashed"):
            run()
    # The campaign was RUNNING before every round, between rounds too (a round does not end it).
    assert fake.parent_status == ["RUNNING"] * len(fake.parent_status)
    tracker = learn.tracker_for(store, project.name)
    assert running_runs(tracker) == []
    (campaign,) = tracker.client.search_runs([tracker.experiment_id], filter_string="attributes.run_name = 'loop'")
    assert campaign.info.status == status
    assert campaign.data.tags[HELD_BY_TAG] == "loop"
    assert campaign.data.params["rounds"] == "3"
    assert [r["round"] for r in tracker.campaign_rounds(campaign.info.run_id)] == list(range(rounds))
    note = campaign.data.tags[NOTE_TAG]
    assert f"{rounds} round(s), {status}" in note and tracker.rounds_view_path() in note
    if fail_round is None:
        assert ERROR_TAG not in campaign.data.tags
    else:
        error = "RuntimeError: training crashed: image 3 is gone"
        assert campaign.data.tags[ERROR_TAG] == error and f"Error: `{error}`" in note


def test_round_description_without_numbers_says_so():
    text = tracking.round_description(3, None, {}, "pending")
    assert text.startswith("**Round 3**: strategy n/a, n/a labelled images (n/a boxes).")
    assert "mAP50-95 n/a" in text


def test_a_loop_ends_the_campaign_an_older_version_left_running(store, project):
    tracker = learn.tracker_for(store, project.name)
    # As the tracker before item 6 left it: a lazily created campaign, never ended, no holder tag.
    legacy = tracker.client.create_run(tracker.experiment_id, run_name="demo",
                                       tags={"labelwise.kind": "campaign"}).info.run_id
    done = tracker.start_round(legacy, 0, {"strategy": "random"})
    tracker.client.set_terminated(done)
    fresh = tracker.start_campaign("demo", {})
    assert tracker.client.get_run(legacy).info.status == "FINISHED"
    assert running_runs(tracker) == ["demo"] and tracker.find_campaign("demo", status="RUNNING") == fresh
