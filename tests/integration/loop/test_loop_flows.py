"""The closed loop under a real Prefect harness, real Label Studio and a real MLflow store."""

from __future__ import annotations

import pytest

from labelwise.domain import ImageStatus
from labelwise.learn import tracker_for
from labelwise.runtime import open_catalog
from labelwise.strategies import DEFAULT_STRATEGY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
        for metric in ("precision", "recall", "mAP50", "mAP50-95", "labelled_images", "labelled_boxes"):
            assert metric in run["metrics"], metric
        assert run["params"]["strategy"] in {"cold_start", DEFAULT_STRATEGY}
    assert runs[1]["metrics"]["labelled_images"] == 12
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


@pytest.mark.faults
def test_label_studio_down_during_queue_fails_the_run_and_changes_no_image(prefect_harness, make_loop_project, monkeypatch):
    from flows.params import ProposeParams
    from flows.propose_round import propose_round
    from labelwise.labelstudio.errors import LabelStudioUnavailable
    from tasks import review

    monkeypatch.setattr(review.queue_for_review, "retry_delay_seconds", [0.1, 0.1, 0.1])
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
        with pytest.raises(FileNotFoundError, match="is gone"):
            learn_round(LearnParams(project=lp.name, round_number=proposed["round"], config=lp.config))
    finally:
        broken.rename(victim.path)
    after = tracker.champion()
    assert after is not None and after.version == before.version
    assert catalog.round_info(project, proposed["round"])["status"] == "reviewed"  # can be retried
