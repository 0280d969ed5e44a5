"""Label-issue rule: each kind found on a crafted case, a clean image yields none, validation."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from labelwise.quality.label_issues import (
    BAD_LOCALISATION,
    CLASS_SWAP,
    KINDS,
    MISSING_BOX,
    SPURIOUS_BOX,
    IssueRule,
    LabelIssue,
    find_label_issues,
    image_issue_scores,
    rank_issues,
)

L = [0.0, 0.0, 10.0, 10.0]  # the label box of most cases
FAR = [50.0, 50.0, 60.0, 60.0]  # overlaps nothing near L
TALL = [0.0, 0.0, 10.0, 15.0]  # IoU with L = 100 / 150 = 2/3 (matched at 0.5, below good_iou 0.75)
EMPTY_P: list[list[float]] = []


def _find(labels, classes, preds, conf, probs, rule=None):
    return find_label_issues("img", labels, classes, preds, conf, probs, rule)


def _kinds(issues):
    return [(i.kind, i.class_id) for i in issues]


# (case, labels, label classes, predictions, conf, probs (C = 3), expected (kind, class, score) list)
CASES = [
    ("clean: one label, one confident agreeing prediction",
     [L], [0], [L], [0.9], [[0.9, 0.05, 0.05]], []),
    ("clean: empty image, no predictions", EMPTY_P, [], EMPTY_P, [], EMPTY_P, []),
    ("clean: unlabelled prediction below min_conf is ignored",
     [L], [0], [L, FAR], [0.9, 0.3], [[0.9, 0.0, 0.0], [0.0, 0.3, 0.0]], []),
    ("clean: duplicate confident prediction on a labelled object is not missing",
     [L], [0], [L, [0.0, 0.0, 10.0, 11.0]], [0.9, 0.8], [[0.9, 0.0, 0.0], [0.8, 0.0, 0.0]], []),
    ("missing_box: confident prediction overlapping no label, score = conf",
     [L], [0], [L, FAR], [0.9, 0.8], [[0.9, 0.0, 0.0], [0.1, 0.8, 0.1]], [(MISSING_BOX, 1, 0.8)]),
    ("missing_box: no labels at all", EMPTY_P, [], [FAR], [0.7], [[0.0, 0.0, 0.7]], [(MISSING_BOX, 2, 0.7)]),
    ("spurious_box: no prediction overlaps the label, score = 1 - 0",
     [L], [0], [FAR], [0.2], [[0.2, 0.0, 0.0]], [(SPURIOUS_BOX, 0, 1.0)]),
    ("spurious_box: no predictions at all", [L, FAR], [0, 2], EMPTY_P, [], EMPTY_P,
     [(SPURIOUS_BOX, 0, 1.0), (SPURIOUS_BOX, 2, 1.0)]),
    ("spurious_box: overlapping low-conf prediction gives the class p = 0.04, score = 0.96",
     [L], [0], [L], [0.3], [[0.04, 0.3, 0.2]], [(SPURIOUS_BOX, 0, 0.96)]),
    ("spurious_box: matched, no swap (margin 0.45 < 0.5), suppresses bad_localisation",
     [L], [0], [TALL], [0.6], [[0.05, 0.5, 0.3]], [(SPURIOUS_BOX, 0, 0.95)]),
    ("class_swap: p(1) - p(0) = 0.9 - 0.05 = 0.85, not also spurious",
     [L], [0], [L], [0.9], [[0.05, 0.9, 0.05]], [(CLASS_SWAP, 0, 0.85)]),
    ("class_swap needs a confident match: low-conf overlap is spurious instead",
     [L], [0], [L], [0.4], [[0.05, 0.4, 0.0]], [(SPURIOUS_BOX, 0, 0.95)]),
    ("no class_swap below the margin (0.6 - 0.2 = 0.4)",
     [L], [0], [L], [0.6], [[0.2, 0.6, 0.0]], []),
    ("bad_localisation: IoU 2/3, score = 0.9 * (0.75 - 2/3) / 0.25 = 0.3",
     [TALL], [0], [L], [0.9], [[0.9, 0.0, 0.0]], [(BAD_LOCALISATION, 0, 0.3)]),
    ("class_swap and bad_localisation on one label",
     [TALL], [0], [L], [0.9], [[0.0, 0.9, 0.0]], [(CLASS_SWAP, 0, 0.9), (BAD_LOCALISATION, 0, 0.3)]),
    ("IoU below match_iou is no match: spurious label plus missing prediction",
     [[0.0, 0.0, 10.0, 25.0]], [0], [L], [0.9], [[0.9, 0.0, 0.0]],  # IoU 100 / 250 = 0.4
     [(SPURIOUS_BOX, 0, 1.0), (MISSING_BOX, 0, 0.9)]),
]


@pytest.mark.parametrize(
    ("labels", "classes", "preds", "conf", "probs", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_issue_rule_table(labels, classes, preds, conf, probs, expected):
    issues = _find(labels, classes, preds, conf, probs)
    assert [(i.kind, i.class_id) for i in issues] == [(k, c) for k, c, _ in expected]
    assert [i.score for i in issues] == pytest.approx([s for _, _, s in expected])
    for issue in issues:
        assert issue.image_id == "img"
        assert 0.0 <= issue.score <= 1.0
        assert issue.detail


def test_boxes_reported_are_the_label_or_the_prediction():
    issues = _find([TALL], [0], [L, FAR], [0.9, 0.8], [[0.0, 0.9, 0.0], [0.0, 0.0, 0.8]])
    by_kind = {i.kind: i for i in issues}
    assert by_kind[CLASS_SWAP].box == tuple(TALL)
    assert by_kind[BAD_LOCALISATION].box == tuple(TALL)
    assert by_kind[MISSING_BOX].box == tuple(FAR)
    assert "class 1" in by_kind[CLASS_SWAP].detail  # the suggested class is named


def test_each_kind_is_reachable():
    found = {i.kind for c in CASES for i in _find(*c[1:6])}
    assert found == set(KINDS)


def test_rule_thresholds_change_the_outcome():
    labels, classes, preds, conf, probs = [TALL], [0], [L], [0.9], [[0.9, 0.0, 0.0]]
    assert _kinds(_find(labels, classes, preds, conf, probs)) == [(BAD_LOCALISATION, 0)]
    assert _find(labels, classes, preds, conf, probs, IssueRule(good_iou=0.6)) == []
    assert _find(labels, classes, preds, conf, probs, IssueRule(good_iou=0.5)) == []  # kind off
    # min_conf above the prediction's: no confident match, but it still supports the label's class
    assert _find(labels, classes, preds, conf, probs, IssueRule(min_conf=0.95)) == []
    swap = [[0.2, 0.6, 0.0]]
    assert _find([L], [0], [L], [0.6], swap) == []
    assert _kinds(_find([L], [0], [L], [0.6], swap, IssueRule(swap_margin=0.35))) == [(CLASS_SWAP, 0)]
    assert _find([L], [0], [L], [0.3], [[0.04, 0.3, 0.0]], IssueRule(spurious_prob=0.0)) == []


def test_single_class_model_never_reports_a_swap():
    assert _find([L], [0], [L], [0.9], [[0.9]]) == []
    assert _kinds(_find([L], [0], [L], [0.3], [[0.02]])) == [(SPURIOUS_BOX, 0)]


def test_accepts_numpy_inputs_and_float_class_ids():
    issues = _find(np.asarray([L], np.float32), np.asarray([1.0]), np.asarray([L]), np.asarray([0.9]),
                   np.asarray([[0.9, 0.05, 0.05]]))
    assert _kinds(issues) == [(CLASS_SWAP, 1)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels_xyxy": [0.0, 0.0, 1.0, 1.0]}, r"labels_xyxy must have shape \(N, 4\).*got shape \(4,\)"),
        ({"labels_xyxy": [[0.0, 0.0, 1.0]]}, r"labels_xyxy must have shape \(N, 4\).*got shape \(1, 3\)"),
        ({"label_classes": [0, 1]}, r"label_classes must have shape \(1,\) to match labels_xyxy; got shape \(2,\)"),
        ({"label_classes": [0.5]}, r"label_classes must hold integer class ids"),
        ({"label_classes": [-1]}, r"label_classes must be >= 0; got -1"),
        ({"label_classes": [3]}, r"label_classes must lie in \[0, 3\).*got 3"),
        ({"pred_xyxy": [[0.0, 0.0, 1.0, 1.0, 0.9]]}, r"pred_xyxy must have shape \(N, 4\).*got shape \(1, 5\)"),
        ({"pred_xyxy": [[5.0, 0.0, 1.0, 1.0]]}, r"pred_xyxy must have x2 >= x1"),
        ({"pred_xyxy": [[np.nan, 0.0, 1.0, 1.0]]}, r"pred_xyxy must be finite"),
        ({"pred_conf": [0.9, 0.8]}, r"pred_conf must have shape \(1,\) to match pred_xyxy; got shape \(2,\)"),
        ({"pred_conf": [1.5]}, r"pred_conf must lie in \[0, 1\]"),
        ({"pred_probs": [0.9, 0.05, 0.05]}, r"pred_probs must have shape \(1, C\).*got shape \(3,\)"),
        ({"pred_probs": [[0.9], [0.1]]}, r"pred_probs must have shape \(1, C\).*got shape \(2, 1\)"),
        ({"pred_probs": [[1.2, 0.0, 0.0]]}, r"pred_probs must lie in \[0, 1\]"),
        ({"pred_xyxy": EMPTY_P, "pred_conf": [], "pred_probs": [[0.5]]},
         r"pred_probs must be empty \(shape \(0, C\)\) when there are no predictions; got shape \(1, 1\)"),
        ({"image_id": ""}, r"image_id must be a non-empty string"),
    ],
)
def test_shape_and_range_errors_say_expected_vs_actual(kwargs, message):
    args = {
        "image_id": "img",
        "labels_xyxy": [L],
        "label_classes": [0],
        "pred_xyxy": [L],
        "pred_conf": [0.9],
        "pred_probs": [[0.9, 0.05, 0.05]],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        find_label_issues(**args)


@pytest.mark.parametrize(
    ("field", "value", "expected_range"),
    [
        ("match_iou", 0.0, "(0.0, 1.0]"),
        ("match_iou", 1.5, "(0.0, 1.0]"),
        ("good_iou", 0.4, "[0.5, 1.0]"),  # below the default match_iou
        ("good_iou", 1.01, "[0.5, 1.0]"),
        ("min_conf", 0.0, "(0.0, 1.0]"),
        ("spurious_prob", -0.1, "[0.0, 1.0]"),
        ("spurious_prob", float("nan"), "[0.0, 1.0]"),
        ("swap_margin", 0.0, "(0.0, 1.0]"),
        ("swap_margin", 2.0, "(0.0, 1.0]"),
    ],
)
def test_issue_rule_validation_names_field_range_and_value(field, value, expected_range):
    with pytest.raises(ValueError) as err:
        IssueRule(**{field: value})
    text = str(err.value)
    assert text.startswith(f"{field} must lie in {expected_range}")
    assert repr(value) in text


def test_issue_rule_defaults_and_frozen():
    rule = IssueRule()
    assert (rule.match_iou, rule.good_iou, rule.min_conf, rule.spurious_prob, rule.swap_margin) == (
        0.5, 0.75, 0.5, 0.1, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.match_iou = 0.3  # type: ignore[misc]


def test_label_issue_validates_kind_and_score():
    with pytest.raises(ValueError, match="kind must be one of"):
        LabelIssue("i", "typo", 0, (0.0, 0.0, 1.0, 1.0), 0.5, "")
    with pytest.raises(ValueError, match=r"score must lie in \[0.0, 1.0\]; got 1.5"):
        LabelIssue("i", MISSING_BOX, 0, (0.0, 0.0, 1.0, 1.0), 1.5, "")


def _issue(image_id: str, score: float, kind: str = MISSING_BOX) -> LabelIssue:
    return LabelIssue(image_id, kind, 0, (0.0, 0.0, 1.0, 1.0), score, "d")


def test_rank_issues_score_descending_ties_by_image_id():
    issues = [_issue("b", 0.5), _issue("c", 0.9), _issue("a", 0.5), _issue("a", 0.1)]
    ranked = rank_issues(issues)
    assert [(i.image_id, i.score) for i in ranked] == [("c", 0.9), ("a", 0.5), ("b", 0.5), ("a", 0.1)]
    assert rank_issues(reversed(issues)) == ranked  # deterministic whatever the input order
    assert rank_issues([]) == []


def test_image_issue_scores_is_the_max_per_image():
    issues = [_issue("a", 0.2), _issue("b", 0.7, SPURIOUS_BOX), _issue("a", 0.6, CLASS_SWAP), _issue("a", 0.4)]
    assert image_issue_scores(issues) == {"a": 0.6, "b": 0.7}
    assert image_issue_scores([]) == {}
    assert image_issue_scores([_issue("z", 0.0)]) == {"z": 0.0}


def test_multi_image_end_to_end_ranking():
    clean = find_label_issues("clean", [L], [0], [L], [0.95], [[0.95, 0.0, 0.0]])
    swapped = find_label_issues("swapped", [L], [0], [L], [0.95], [[0.0, 0.95, 0.0]])
    missed = find_label_issues("missed", EMPTY_P, [], [FAR], [0.6], [[0.6, 0.0, 0.0]])
    ranked = rank_issues(clean + swapped + missed)
    assert [(i.image_id, i.kind) for i in ranked] == [("swapped", CLASS_SWAP), ("missed", MISSING_BOX)]
    assert image_issue_scores(ranked) == pytest.approx({"swapped": 0.95, "missed": 0.6})


def test_import_is_light():
    """Importing the quality modules (in a fresh interpreter) does not import prefect."""
    import subprocess

    code = "import sys, labelwise.quality.label_issues, labelwise.quality.agreement; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
