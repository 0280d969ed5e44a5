"""Label-issue finder: compare one image's human labels with a model's predictions.

Inputs, per image (boxes are ``x1, y1, x2, y2`` float pixels; any one unit works, IoU does not
depend on it):

* ``labels_xyxy``: (N, 4) human boxes; ``label_classes``: (N,) int class ids in ``[0, C)``;
* ``pred_xyxy``: (M, 4) predicted boxes; ``pred_conf``: (M,) confidences in ``[0, 1]``;
* ``pred_probs``: (M, C) per-box class probabilities in ``[0, 1]`` (rows need not sum to 1: YOLO's
  per-class sigmoid scores are fine).

The model should not have trained on the image (k-fold, or the previous round's model), else it
grades its own homework; this module does not know which model it is given.

The rule (thresholds are fields of :class:`IssueRule`). A prediction is *confident* when
``conf >= min_conf``; a label and a prediction *overlap* when their IoU is ``>= match_iou``.
Labels are matched one-to-one to the confident predictions, class-agnostically, by
:func:`labelwise.review.corrections.greedy_match` at ``match_iou`` (decreasing IoU). Then:

* ``missing_box``: a confident prediction that overlaps no label (matched or not, so a duplicate
  prediction on a labelled object is not reported). ``class_id`` = the prediction's most probable
  class, ``box`` = the prediction's box. **score = conf**.
* ``class_swap``: a matched label whose class the model finds far less likely than another:
  ``p(other) - p(labelled) >= swap_margin`` on the matched prediction's row, ``other`` its most
  probable class besides the labelled one. ``class_id`` = the labelled class, ``box`` = the label.
  **score = p(other) - p(labelled)** (in ``[swap_margin, 1]``).
* ``spurious_box``: a label (not reported as a class swap) whose *support*, the highest
  ``p(labelled class)`` over all predictions overlapping it (any confidence; 0 when none overlaps),
  is below ``spurious_prob``. ``box`` = the label. **score = 1 - support** (in
  ``(1 - spurious_prob, 1]``). A class swap is not also reported as spurious: the model sees an
  object there, of another class.
* ``bad_localisation``: a matched label (not reported as spurious) whose IoU with its confident
  prediction is below ``good_iou``. ``box`` = the label. **score = conf * (good_iou - iou) /
  (good_iou - match_iou)** (in ``(0, conf]``: ``conf`` at the matching threshold, towards 0 as the
  IoU nears ``good_iou``).

So a label yields at most ``class_swap`` and ``bad_localisation`` together, or ``spurious_box``
alone; a prediction yields at most one ``missing_box``. Every score lies in ``[0, 1]``, higher
meaning more likely an error; scores of different kinds are on different scales, ranking mixes
them as they are. Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelwise.review.corrections import greedy_match, iou_matrix

MISSING_BOX = "missing_box"
SPURIOUS_BOX = "spurious_box"
CLASS_SWAP = "class_swap"
BAD_LOCALISATION = "bad_localisation"
KINDS: tuple[str, ...] = (MISSING_BOX, SPURIOUS_BOX, CLASS_SWAP, BAD_LOCALISATION)


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok or not np.isfinite(value):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}]; got {value!r}")


@dataclass(frozen=True)
class IssueRule:
    """Thresholds of the label-issue rule (see the module docstring for how each is used).

    Attributes:
        match_iou: IoU at/above which a label and a prediction are the same object, in ``(0, 1]``.
            Default 0.5.
        good_iou: a matched pair below this IoU is ``bad_localisation``, in ``[match_iou, 1]``
            (``good_iou == match_iou`` turns that kind off). Default 0.75.
        min_conf: a prediction is confident at/above this confidence, in ``(0, 1]``. Default 0.5.
        spurious_prob: a label whose best overlapping ``p(labelled class)`` is below this is
            ``spurious_box``, in ``[0, 1]`` (0 turns that kind off). Default 0.1.
        swap_margin: ``p(other) - p(labelled)`` at/above this is ``class_swap``, in ``(0, 1]``.
            Default 0.5.
    """

    match_iou: float = 0.5
    good_iou: float = 0.75
    min_conf: float = 0.5
    spurious_prob: float = 0.1
    swap_margin: float = 0.5

    def __post_init__(self) -> None:
        _check_range("match_iou", self.match_iou, 0.0, 1.0, low_open=True)
        _check_range("good_iou", self.good_iou, self.match_iou, 1.0)
        _check_range("min_conf", self.min_conf, 0.0, 1.0, low_open=True)
        _check_range("spurious_prob", self.spurious_prob, 0.0, 1.0)
        _check_range("swap_margin", self.swap_margin, 0.0, 1.0, low_open=True)


@dataclass(frozen=True)
class LabelIssue:
    """One suspected label error.

    Attributes:
        image_id: the image's id.
        kind: one of :data:`KINDS`.
        class_id: the class in question (the label's class; for ``missing_box`` the prediction's).
        box: ``(x1, y1, x2, y2)`` in the input's unit (the label's box; for ``missing_box`` the
            prediction's).
        score: in ``[0, 1]``, higher = more likely an error (formulas in the module docstring).
        detail: a human-readable reason.
    """

    image_id: str
    kind: str
    class_id: int
    box: tuple[float, float, float, float]
    score: float
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        _check_range("score", self.score, 0.0, 1.0)
        if len(self.box) != 4:
            raise ValueError(f"box must have 4 values (x1, y1, x2, y2); got {len(self.box)}")


def _box_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) x1, y1, x2, y2; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got NaN/inf")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name} must have x2 >= x1 and y2 >= y1; got inverted corners")
    return arr


def _vector(value: Any, n: int, name: str, what: str, dtype: type) -> np.ndarray:
    raw = np.asarray(value)
    if raw.size == 0 and n == 0:
        return np.zeros((0,), dtype=dtype)
    if raw.ndim != 1 or raw.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match {what}; got shape {raw.shape}")
    if dtype is np.int64 and raw.dtype.kind not in "iu":
        if raw.dtype.kind != "f" or not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise ValueError(f"{name} must hold integer class ids; got dtype {raw.dtype}")
    return raw.astype(dtype)


def _box_tuple(row: np.ndarray) -> tuple[float, float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def _clip01(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def find_label_issues(
    image_id: str,
    labels_xyxy: Any,
    label_classes: Any,
    pred_xyxy: Any,
    pred_conf: Any,
    pred_probs: Any,
    rule: IssueRule | None = None,
) -> list[LabelIssue]:
    """Suspected label issues of one image (the rule and scores are in the module docstring).

    Args:
        image_id: the image's id (non-empty).
        labels_xyxy: (N, 4) human boxes, xyxy float pixels.
        label_classes: (N,) int class ids, each in ``[0, C)`` when there are predictions.
        pred_xyxy: (M, 4) predicted boxes, same unit as the labels.
        pred_conf: (M,) confidences in ``[0, 1]``.
        pred_probs: (M, C) class probabilities in ``[0, 1]``; with M == 0 any empty array.
        rule: the thresholds; ``IssueRule()`` when None.

    Returns:
        The issues in a fixed order: per label (label index order) its ``class_swap``,
        ``spurious_box`` or ``bad_localisation``, then the ``missing_box`` of each prediction
        (prediction index order). Use :func:`rank_issues` to sort by score.

    Raises:
        ValueError: an empty image id, or an input of the wrong shape (message: expected vs actual)
            or out of range.
    """
    rule = IssueRule() if rule is None else rule
    if not isinstance(image_id, str) or not image_id:
        raise ValueError(f"image_id must be a non-empty string; got {image_id!r}")
    labels = _box_array(labels_xyxy, "labels_xyxy")
    classes = _vector(label_classes, len(labels), "label_classes", "labels_xyxy", np.int64)
    preds = _box_array(pred_xyxy, "pred_xyxy")
    m = len(preds)
    conf = _vector(pred_conf, m, "pred_conf", "pred_xyxy", np.float64)
    probs_raw = np.asarray(pred_probs, dtype=np.float64)
    if m == 0:
        if probs_raw.size != 0:
            raise ValueError(f"pred_probs must be empty (shape (0, C)) when there are no predictions; "
                             f"got shape {probs_raw.shape}")
        probs: np.ndarray = np.zeros((0, 0), dtype=np.float64)
    else:
        if probs_raw.ndim != 2 or probs_raw.shape[0] != m or probs_raw.shape[1] < 1:
            raise ValueError(f"pred_probs must have shape ({m}, C) with C >= 1 to match pred_xyxy; "
                             f"got shape {probs_raw.shape}")
        probs = probs_raw
    if not (np.isfinite(conf).all() and ((conf >= 0) & (conf <= 1)).all()):
        raise ValueError(f"pred_conf must lie in [0, 1]; got min {conf.min()}, max {conf.max()}")
    if probs.size and not (np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()):
        raise ValueError(f"pred_probs must lie in [0, 1]; got min {probs.min()}, max {probs.max()}")
    if len(classes) and classes.min() < 0:
        raise ValueError(f"label_classes must be >= 0; got {int(classes.min())}")
    num_classes = probs.shape[1]
    if m and len(classes) and classes.max() >= num_classes:
        raise ValueError(f"label_classes must lie in [0, {num_classes}) (pred_probs has C = {num_classes} "
                         f"columns); got {int(classes.max())}")

    iou = iou_matrix(labels, preds)  # (N, M)
    overlap = iou >= rule.match_iou
    confident = np.flatnonzero(conf >= rule.min_conf)
    pairs = greedy_match(labels, preds[confident], rule.match_iou)
    matched = {i: (int(confident[j]), v) for i, j, v in pairs}

    issues: list[LabelIssue] = []
    for i in range(len(labels)):
        c = int(classes[i])
        box = _box_tuple(labels[i])
        swapped = False
        if i in matched:
            j, pair_iou = matched[i]
            row = probs[j]
            if num_classes > 1:
                others = row.copy()
                others[c] = -np.inf
                other = int(np.argmax(others))
                margin = float(row[other] - row[c])
                if margin >= rule.swap_margin:
                    swapped = True
                    issues.append(LabelIssue(
                        image_id, CLASS_SWAP, c, box, _clip01(margin),
                        f"labelled class {c} (p={row[c]:.3f}) but the matched prediction "
                        f"(conf {conf[j]:.3f}, IoU {pair_iou:.3f}) favours class {other} (p={row[other]:.3f})",
                    ))
        over = np.flatnonzero(overlap[i])
        support = float(probs[over, c].max()) if len(over) else 0.0
        if not swapped and support < rule.spurious_prob:
            why = (f"best overlapping p(class {c}) = {support:.3f} < {rule.spurious_prob}" if len(over)
                   else f"no prediction overlaps it at IoU >= {rule.match_iou}")
            issues.append(LabelIssue(image_id, SPURIOUS_BOX, c, box, _clip01(1.0 - support),
                                     f"label of class {c}: {why}"))
            continue
        if i in matched:
            j, pair_iou = matched[i]
            if pair_iou < rule.good_iou:
                score = conf[j] * (rule.good_iou - pair_iou) / (rule.good_iou - rule.match_iou)
                issues.append(LabelIssue(
                    image_id, BAD_LOCALISATION, c, box, _clip01(float(score)),
                    f"label of class {c} has IoU {pair_iou:.3f} < {rule.good_iou} with a prediction "
                    f"of conf {conf[j]:.3f} at {_fmt_box(preds[j])}",
                ))

    for jj in confident:
        j = int(jj)
        if overlap[:, j].any():
            continue
        cls = int(np.argmax(probs[j]))
        issues.append(LabelIssue(
            image_id, MISSING_BOX, cls, _box_tuple(preds[j]), _clip01(float(conf[j])),
            f"prediction of class {cls} (conf {conf[j]:.3f}) overlaps no label at IoU >= {rule.match_iou}",
        ))
    return issues


def _fmt_box(row: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in row) + ")"


def rank_issues(issues: Iterable[LabelIssue]) -> list[LabelIssue]:
    """Issues sorted by score descending; ties by image id, then kind, class, box and detail."""
    return sorted(issues, key=lambda x: (-x.score, x.image_id, x.kind, x.class_id, x.box, x.detail))


def image_issue_scores(issues: Iterable[LabelIssue]) -> dict[str, float]:
    """The highest issue score of each image that has issues (images without any are absent)."""
    scores: dict[str, float] = {}
    for issue in issues:
        if issue.score > scores.get(issue.image_id, -1.0):
            scores[issue.image_id] = issue.score
    return scores
