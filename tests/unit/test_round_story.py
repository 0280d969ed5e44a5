"""The round told in words: artifact keys, ties, log lines and the two markdown pages."""

from __future__ import annotations

import pytest

from labelwise.round_story import (
    artifact_key,
    auto_label_line,
    candidate_ties,
    champion_text,
    corrections_text,
    evaluate_line,
    learn_markdown,
    mlflow_run_url,
    model_line,
    pull_line,
    queue_line,
    queue_markdown,
    queue_ties,
    retrain_line,
    score_batch_line,
    shard_line,
    slug,
    tied_count,
)


def item(image_id: str, score: float, reason_text: str | None = None) -> dict:
    out: dict = {"image_id": image_id, "uncertainty_score": score, "scores": {}, "thumbnail": "t.jpg"}
    if reason_text is not None:
        out.update(reason="no_box", reason_text=reason_text)
    return out


def make_batch(queue: list[dict], **params: object) -> dict:
    return {
        "project_id": "Digits_Demo", "strategy": "rare_class_diverse", "model_version": "m42",
        "params": {"limit": 20, "diversity_weight": 0.3, "seed": 7, "class_balance": False,
                   "candidates": 140, "held_back": 0, "unlabelled_without_prediction": 0,
                   "scoring": {"confidence_floor": 0.25, "aggregation": "max"}, "round": 2, **params},
        "queue": queue,
    }


FILES = {"queue": "/s/reports/p/round-2-queue.json", "contact_sheet": "/s/reports/p/round-2-queue.png"}
QUEUED = {"round": 2, "ls_project_id": 7, "created": 3, "reused": 1, "refreshed": 0,
          "url": "http://ls:8089/projects/7/data?tab=4"}


@pytest.mark.parametrize(("text", "expected"), [
    ("digits-demo", "digits-demo"),
    ("Digits_Demo v2", "digits-demo-v2"),
    ("--a..b--", "a-b"),
    ("___", "project"),
])
def test_slug_keeps_only_what_an_artifact_key_allows(text, expected):
    assert slug(text) == expected


@pytest.mark.parametrize(("kind", "project", "expected"), [
    ("queue", "digits-demo", "queue-digits-demo"),
    ("contact-sheet", "Parts_A", "contact-sheet-parts-a"),
    ("learn", "x", "learn-x"),
])
def test_artifact_key(kind, project, expected):
    assert artifact_key(kind, project) == expected


@pytest.mark.parametrize(("scores", "expected"), [
    ([], 0),
    ([0.1], 0),
    ([0.1, 0.2, 0.3], 0),
    ([0.1, 0.1], 2),
    ([0.1, 0.1, 0.2, 0.3, 0.3, 0.3], 5),
    ([0.1234564, 0.1234561], 2),  # equal at the JSON's 6 decimals
    ([0.123456, 0.123457], 0),
])
def test_tied_count_counts_every_score_shared_with_another(scores, expected):
    assert tied_count(scores) == expected


@pytest.mark.parametrize(("params", "expected"), [({}, None), ({"tied_candidates": 12}, 12)])
def test_candidate_ties_only_when_the_batch_reports_them(params, expected):
    assert candidate_ties(make_batch([], **params)) == expected


@pytest.mark.parametrize(("queue", "params", "expected"), [
    ([item("a", 0.1), item("b", 0.1), item("c", 0.3)], {},
     "score-batch: round 2, 3 of 140 candidates, strategy rare_class_diverse, 2 tied in the queue"),
    ([item("a", 0.1)], {"tied_candidates": 9, "held_back": 4},
     "score-batch: round 2, 1 of 140 candidates, strategy rare_class_diverse, 0 tied in the queue, "
     "9 among candidates, 4 held back by open rounds"),
])
def test_score_batch_line(queue, params, expected):
    assert score_batch_line(make_batch(queue, **params)) == expected


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: model_line({"ref": "/m/p-v3.pt", "source": "champion", "registry_version": "3"}),
     "model: champion v3 /m/p-v3.pt"),
    (lambda: model_line({"ref": "yolov8n.yaml", "source": "configured", "registry_version": None}),
     "model: configured yolov8n.yaml"),
    (lambda: shard_line({"considered": 24, "predicted": 20, "already_predicted": 4, "embedded": 24,
                         "failed": [{"path": "x", "reason": "y"}], "seconds": 1.234,
                         "model_version": "m42"}, 1),
     "auto-label shard 1: 24 images (20 predicted, 4 already done, 24 embedded, 1 failed) in "
     "1.2 s, model m42"),
    (lambda: auto_label_line([{"considered": 40, "predicted": 40, "embedded": 40, "seconds": 10.0},
                              {"considered": 20, "predicted": 10, "embedded": 20, "seconds": 2.3,
                               "failed": [{}]}]),
     "auto-label: 60 images in 12.3 s (2 shards; 50 predicted, 9 already done, 60 embedded, 1 failed)"),
    (lambda: auto_label_line([{"considered": 0, "seconds": 0.0}]),
     "auto-label: 0 images in 0.0 s (1 shard; 0 predicted, 0 already done, 0 embedded, 0 failed)"),
    (lambda: queue_line(QUEUED),
     "queue: 3 tasks created in Label Studio project 7 (1 reused, 0 refreshed), round 2: "
     "http://ls:8089/projects/7/data?tab=4"),
    (lambda: retrain_line({"labelled_images": 40, "labelled_boxes": 120, "pseudo_labels": True,
                           "pseudo_images": 12, "pseudo_boxes": 30, "epochs": 9, "seconds": 30.12,
                           "base_model": "/m/b.pt"}),
     "retrain: 40 labelled images (120 boxes) + 12 pseudo (30 boxes), 9 epochs in 30.1 s from /m/b.pt"),
    (lambda: retrain_line({"labelled_images": 6, "labelled_boxes": 9, "pseudo_labels": False,
                           "epochs": 2, "seconds": 3.0, "base_model": "y.yaml"}),
     "retrain: 6 labelled images (9 boxes) + no pseudo (pseudo-labels off), 2 epochs in 3.0 s from y.yaml"),
    (lambda: retrain_line({"labelled_images": 6, "labelled_boxes": 9, "pseudo_labels": True,
                           "epochs": 2, "seconds": 3.0, "base_model": "y.yaml",
                           "pseudo_reason": "no predictions stored"}),
     "retrain: 6 labelled images (9 boxes) + 0 pseudo (0 boxes), 2 epochs in 3.0 s from y.yaml; "
     "no predictions stored"),
    (lambda: evaluate_line({"precision": 0.5, "recall": 0.4, "map50": 0.41, "map50_95": 0.2,
                            "n_images": 10, "n_boxes": 25}),
     "evaluate: mAP50 0.410, mAP50-95 0.200, P 0.500, R 0.400 on 10 held-out images (25 boxes)"),
])
def test_step_lines(call, expected):
    assert call() == expected


CORRECTIONS = {"corrections/images": 20, "corrections/added": 2, "corrections/removed": 1,
               "corrections/relabelled": 2, "corrections/kept": 80,
               "corrections/boxes_predicted": 90, "corrections/mean_iou_kept": 0.912}


@pytest.mark.parametrize(("corrections", "expected"), [
    ({}, "no reviewed image to compare with its pre-annotations"),
    ({"corrections/images": 0}, "no reviewed image to compare with its pre-annotations"),
    (CORRECTIONS, "5 edits on 20 images (2 added, 1 removed, 2 relabelled); 80 of 90 sent boxes "
                  "kept (mean IoU 0.91)"),
    ({**CORRECTIONS, "corrections/mean_iou_kept": None},
     "5 edits on 20 images (2 added, 1 removed, 2 relabelled); 80 of 90 sent boxes kept"),
])
def test_corrections_text(corrections, expected):
    assert corrections_text(corrections) == expected


def test_pull_line_names_counts_invalid_and_edits():
    line = pull_line({"round": 2, "labelled": 18, "rejected": 2, "pending": 0,
                      "invalid": [{"image_id": "x"}], "corrections": CORRECTIONS})
    assert line == ("pull: round 2: 18 labelled, 2 rejected, 0 pending, 1 invalid; 5 edits on 20 "
                    "images (2 added, 1 removed, 2 relabelled); 80 of 90 sent boxes kept (mean IoU 0.91)")


BEFORE = {"version": "2", "run_id": "r1", "round": 1,
          "metrics": {"precision": 0.4, "recall": 0.3, "mAP50": 0.35, "mAP50-95": 0.1}}


@pytest.mark.parametrize(("promoted", "before", "expected"), [
    ({"version": "1", "moved": True, "promote": True, "reason": "no champion yet"}, None,
     "champion moved to v1 (no champion yet)"),
    ({"version": "3", "moved": False, "promote": False, "reason": "mAP50-95 0.05 < champion 0.1 - tolerance 0.02"},
     BEFORE, "champion stays v2: v3 not promoted (mAP50-95 0.05 < champion 0.1 - tolerance 0.02)"),
    ({"version": "3", "moved": False, "promote": True, "reason": "already champion"}, BEFORE,
     "champion already v3"),
])
def test_champion_text_says_whether_it_moved_and_why(promoted, before, expected):
    assert champion_text(promoted, before) == expected


@pytest.mark.parametrize(("params", "row"), [
    ({"diversity_weight": 0.8, "requested_diversity_weight": 0.3},
     "| diversity weight (applied) | 0.8 (requested 0.3; the strategy sets its own) |"),
    ({"diversity_weight": 0.3}, "| diversity weight (applied) | 0.3 |"),
])
def test_queue_markdown_says_what_was_applied_and_what_was_asked(params, row):
    batch = make_batch([item("a1", 0.1)])
    batch = {**batch, "params": {**batch["params"], **params}}
    assert row in queue_markdown(batch, FILES, QUEUED).splitlines()


def test_queue_markdown_shows_parameters_ties_reasons_and_where():
    queue = [item("a1", 0.1, "no box above 0.25 | the model may be missing objects"),
             item("b2", 0.1), item("c3", 0.3, "uncertainty score 0.300")]
    md = queue_markdown(make_batch(queue), FILES, QUEUED, top=2)
    lines = md.splitlines()
    assert lines[0] == "# Round 2 queue of Digits_Demo"
    for row in ("| strategy | rare_class_diverse |", "| limit | 20 |", "| diversity weight (applied) | 0.3 |",
                "| seed | 7 |", "| scoring floor (confidence) | 0.25 |", "| candidates | 140 |"):
        assert row in lines, row
    assert ("**Ties:** 2 of 3 queued images share their uncertainty score with another queued "
            "image; over all candidates: not reported by score-batch.") in lines
    assert "## Queue, most uncertain first (2 of 3; the rest in the queue JSON)" in lines
    # the pipe in a reason is escaped; an item without a reason (before pick reasons) renders empty
    assert "| 1 | `a1` | 0.100000 | no box above 0.25 \\| the model may be missing objects |" in lines
    assert "| 2 | `b2` | 0.100000 |   |" in lines
    assert not any("`c3`" in line for line in lines)
    assert f"- queue JSON: `{FILES['queue']}`" in lines
    assert f"- contact sheet: `{FILES['contact_sheet']}`" in lines
    assert ("- Label Studio: project 7, 3 tasks created, 1 reused, 0 refreshed — "
            "[open the tab](http://ls:8089/projects/7/data?tab=4)") in lines


@pytest.mark.parametrize(("queue", "params", "files", "expected"), [
    ([], {}, {"queue": "/q.json"}, ["The queue is empty.", "- contact sheet: none (empty queue)"]),
    ([item("a", 0.2), item("b", 0.2)], {"tied_candidates": 31}, FILES,
     ["**Ties:** 2 of 2 queued images share their uncertainty score with another queued image; "
      "31 of 140 candidates share theirs with another candidate.", "## Queue, most uncertain first"]),
])
def test_queue_markdown_edges(queue, params, files, expected):
    lines = queue_markdown(make_batch(queue, **params), files).splitlines()
    for line in expected:
        assert line in lines, line
    assert not any(line.startswith("- Label Studio") for line in lines)


EVALUATION = {"precision": 0.5, "recall": 0.4, "map50": 0.41, "map50_95": 0.2}
RETRAINED = {"labelled_images": 40, "labelled_boxes": 120, "pseudo_labels": True, "pseudo_images": 12,
             "pseudo_boxes": 30, "epochs": 9, "seconds": 30.1, "base_model": "/m/b.pt"}
TRACKED = {"run_id": "r123", "registered_version": "3"}
PULLED = {"round": 2, "labelled": 20, "rejected": 1, "pending": 0, "corrections": CORRECTIONS}


@pytest.mark.parametrize(("before", "promoted", "ui", "expected"), [
    (BEFORE, {"version": "3", "moved": True, "promote": True, "reason": "mAP50-95 0.2 >= champion 0.1 - tolerance 0.02"},
     "http://127.0.0.1:5000/",
     ["| held-out metric | before (champion v2, round 1) | after (v3) | change |",
      "| precision | 0.400 | 0.500 | +0.100 |", "| recall | 0.300 | 0.400 | +0.100 |",
      "| mAP50 | 0.350 | 0.410 | +0.060 |", "| mAP50-95 | 0.100 | 0.200 | +0.100 |",
      "**Promotion:** champion moved to v3 (mAP50-95 0.2 >= champion 0.1 - tolerance 0.02).",
      "**MLflow:** run `r123` — [open](http://127.0.0.1:5000/#/runs/r123), registered model version 3."]),
    (None, {"version": "3", "moved": True, "promote": True, "reason": "no champion yet"}, None,
     ["| held-out metric | before (first round) | after (v3) | change |",
      "| mAP50-95 | – | 0.200 | n/a |",
      "**Promotion:** champion moved to v3 (no champion yet).",
      "**MLflow:** run `r123`, registered model version 3."]),
    (BEFORE, {"version": "3", "moved": False, "promote": False, "reason": "mAP50-95 0.2 < champion 0.5 - tolerance 0.02"},
     "sqlite:///x/mlflow.db",
     ["**Promotion:** champion stays v2: v3 not promoted (mAP50-95 0.2 < champion 0.5 - tolerance 0.02).",
      "**MLflow:** run `r123`, registered model version 3."]),
])
def test_learn_markdown(before, promoted, ui, expected):
    md = learn_markdown(2, "digits-demo", EVALUATION, RETRAINED, promoted, TRACKED, PULLED, before, ui)
    lines = md.splitlines()
    assert lines[0] == "# Round 2 learned: digits-demo"
    for line in expected:
        assert line in lines, line
    assert ("**Labels used:** 40 labelled images (120 boxes) + 12 pseudo-labelled images (30 boxes); "
            "9 epochs in 30.1 s from `/m/b.pt`.") in lines
    assert ("**Reviewer corrections:** 5 edits on 20 images (2 added, 1 removed, 2 relabelled); 80 of "
            "90 sent boxes kept (mean IoU 0.91); pulled 20 labelled, 1 rejected (skipped), 0 still "
            "pending.") in lines


@pytest.mark.parametrize(("ui", "run_id", "expected"), [
    ("http://127.0.0.1:5000", "abc", "http://127.0.0.1:5000/#/runs/abc"),
    ("https://mlflow.example/", "abc", "https://mlflow.example/#/runs/abc"),
    ("sqlite:///tmp/mlflow.db", "abc", None),
    (None, "abc", None),
    ("http://127.0.0.1:5000", None, None),
])
def test_mlflow_run_url_only_for_a_served_ui(ui, run_id, expected):
    assert mlflow_run_url(ui, run_id) == expected


def test_queue_ties_reads_the_queue():
    assert queue_ties(make_batch([item("a", 0.5), item("b", 0.5), item("c", 0.5)])) == 3
