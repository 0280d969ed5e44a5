"""Label issues of a project: each labelled image graded by the model that proposed its round.

The rule, exactly:

1. The candidates are the project's images that have stored labels (``catalog.labels``), in
   image-id order; with ``round_number`` only those labelled in that round.
2. An image's *labelled round* is the round stored with its label (``save_labels(...,
   round_number=...)``, which ``pull`` sets to the round the image was queued in). Its *grading
   model* is that round's ``model_version``: the model whose predictions proposed the round, which
   had not trained on the image (it was unlabelled then), so the model never grades its own
   homework. A later model is never used.
3. An image is **skipped**, and counted under its reason, when its label has no round
   (:data:`SKIP_NO_ROUND`, e.g. seed labels), the round does not exist
   (:data:`SKIP_UNKNOWN_ROUND`), the round has no model version (:data:`SKIP_NO_MODEL`, e.g. a
   cold-start random round), or the catalog holds no prediction of that version for the image
   (:data:`SKIP_NO_PREDICTION`).
4. Every other image is *checked*: its YOLO label rows ``(N, 5) [cls, cx, cy, w, h]`` (normalised
   to ``[0, 1]``) become ``(N, 4)`` xyxy float pixels (x times the image record's ``width``, y
   times its ``height``), and :func:`labelwise.quality.label_issues.find_label_issues` compares
   them with the stored :class:`~labelwise.domain.Detections` (xyxy pixels, confidence, probs)
   under ``rule``. An image whose prediction has no boxes is checked too (every label of it can be
   a ``spurious_box``).
5. The issues of all checked images are ranked by
   :func:`~labelwise.quality.label_issues.rank_issues` (score descending) and cut to the first
   ``limit`` when given.

:func:`project_label_issues` reads the catalog only and writes nothing; :func:`issue_thumbnails`
and :func:`issues_contact_sheet` draw what it found (for the command's table and MLflow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.quality.label_issues import (
    KINDS,
    IssueRule,
    LabelIssue,
    find_label_issues,
    rank_issues,
)
from labelwise.review.corrections import yolo_rows_to_xyxy

if TYPE_CHECKING:
    from labelwise.catalog import Catalog
    from labelwise.catalog.records import ProjectRecord

SKIP_NO_ROUND = "no_labelled_round"
SKIP_UNKNOWN_ROUND = "unknown_round"
SKIP_NO_MODEL = "round_without_model"
SKIP_NO_PREDICTION = "no_prediction"
SKIP_REASONS: tuple[str, ...] = (SKIP_NO_ROUND, SKIP_UNKNOWN_ROUND, SKIP_NO_MODEL, SKIP_NO_PREDICTION)


@dataclass(frozen=True)
class SkippedImage:
    """A labelled image that was not checked.

    Attributes:
        image_id: the image's id.
        reason: one of :data:`SKIP_REASONS`.
        round_number: its labelled round (None when the label has none).
        model_version: the round's model version when known.
    """

    image_id: str
    reason: str
    round_number: int | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class ProjectIssueReport:
    """Label issues of a project (the rule is in the module docstring).

    Attributes:
        project: the project's name.
        issues: ranked issues (score descending), at most ``limit`` when one was given; boxes in
            xyxy pixels of the original image.
        total_issues: issues found before ``limit`` cut them.
        images_checked: ids of the images compared with a prediction, sorted.
        skipped: the images not checked, with why, sorted by id.
        model_versions: labelled round number -> the model version that graded its images (rounds
            with a checked image only).
        rule: the thresholds used.
        round_number: the round the report is restricted to (None: every round).
        counts: issues per kind before ``limit`` cut them (None: count ``issues``).
    """

    project: str
    issues: tuple[LabelIssue, ...]
    total_issues: int
    images_checked: tuple[str, ...]
    skipped: tuple[SkippedImage, ...]
    model_versions: Mapping[int, str]
    rule: IssueRule
    round_number: int | None = None
    counts: Mapping[str, int] | None = None

    def skipped_counts(self) -> dict[str, int]:
        """Skipped images per reason (every reason of :data:`SKIP_REASONS`, zeros included)."""
        counts = dict.fromkeys(SKIP_REASONS, 0)
        for item in self.skipped:
            counts[item.reason] += 1
        return counts

    def kind_counts(self) -> dict[str, int]:
        """Issues per kind over every issue found (not only the first ``limit``), every kind
        of :data:`~labelwise.quality.label_issues.KINDS` included."""
        return dict(self.counts) if self.counts is not None else kind_counts(self.issues)

    def as_dict(self, class_names: tuple[str, ...] = (),
                thumbnails: Mapping[str, str] | None = None) -> dict[str, Any]:
        """JSON-ready form; ``class_names`` adds each issue's class name when given,
        ``thumbnails`` (image id -> path, :func:`issue_thumbnails`) each issue's thumbnail."""

        def name(cid: int) -> str | None:
            return class_names[cid] if 0 <= cid < len(class_names) else None

        return {
            "project": self.project,
            "round": self.round_number,
            "rule": {"match_iou": self.rule.match_iou, "good_iou": self.rule.good_iou,
                     "min_conf": self.rule.min_conf, "spurious_prob": self.rule.spurious_prob,
                     "swap_margin": self.rule.swap_margin},
            "issues": [{"image_id": i.image_id, "kind": i.kind, "class_id": i.class_id,
                        "class_name": name(i.class_id), "box": list(i.box), "score": i.score,
                        "detail": i.detail,
                        **({"thumbnail": thumbnails.get(i.image_id)} if thumbnails is not None else {})}
                       for i in self.issues],
            "total_issues": self.total_issues,
            "issues_by_kind": self.kind_counts(),
            "images_checked": len(self.images_checked),
            "images_skipped": len(self.skipped),
            "skipped_by_reason": self.skipped_counts(),
            "skipped": [{"image_id": s.image_id, "reason": s.reason, "round": s.round_number,
                         "model_version": s.model_version} for s in self.skipped],
            "model_versions": {str(k): v for k, v in sorted(self.model_versions.items())},
        }


def project_label_issues(
    catalog: Catalog,
    project: ProjectRecord,
    rule: IssueRule | None = None,
    round_number: int | None = None,
    limit: int | None = None,
) -> ProjectIssueReport:
    """Find suspected label errors in a project's labelled images (rule: the module docstring).

    Args:
        catalog: the catalog to read.
        project: the project.
        rule: thresholds; ``IssueRule()`` when None.
        round_number: only images labelled in this round (None: all).
        limit: keep the first ``limit`` ranked issues (>= 1; None: all).

    Returns:
        A :class:`ProjectIssueReport`.

    Raises:
        ValueError: ``limit`` below 1.
    """
    rule = IssueRule() if rule is None else rule
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1; got {limit}")
    labels = catalog.labels(project)
    label_round = catalog.label_rounds(project)
    ids = sorted(i for i in labels if round_number is None or label_round.get(i) == round_number)
    records = {r.image_id: r for r in catalog.images(project, image_ids=ids)} if ids else {}
    known_rounds = {int(r["number"]): r.get("model_version") for r in catalog.rounds(project)}

    skipped: list[SkippedImage] = []
    by_version: dict[str, list[tuple[str, int]]] = {}
    for image_id in ids:
        rnd = label_round.get(image_id)
        if rnd is None:
            skipped.append(SkippedImage(image_id, SKIP_NO_ROUND))
            continue
        if rnd not in known_rounds:
            skipped.append(SkippedImage(image_id, SKIP_UNKNOWN_ROUND, rnd))
            continue
        version = known_rounds[rnd]
        if not version:
            skipped.append(SkippedImage(image_id, SKIP_NO_MODEL, rnd))
            continue
        by_version.setdefault(str(version), []).append((image_id, rnd))

    issues: list[LabelIssue] = []
    checked: list[str] = []
    used: dict[int, str] = {}
    for version, group in by_version.items():
        preds = catalog.predictions(project, version, [image_id for image_id, _ in group])
        for image_id, rnd in group:
            det = preds.get(image_id)
            record = records.get(image_id)
            if det is None or record is None:
                skipped.append(SkippedImage(image_id, SKIP_NO_PREDICTION, rnd, version))
                continue
            xyxy, classes = yolo_rows_to_xyxy(labels[image_id])
            scale = np.array([record.width, record.height, record.width, record.height], dtype=np.float64)
            issues.extend(find_label_issues(
                image_id, xyxy * scale, classes, det.xyxy, det.confidence,
                det.probs if len(det.xyxy) else np.zeros((0, 0)), rule,
            ))
            checked.append(image_id)
            used[rnd] = version
    ranked = rank_issues(issues)
    return ProjectIssueReport(
        project=project.name,
        issues=tuple(ranked if limit is None else ranked[:limit]),
        total_issues=len(ranked),
        images_checked=tuple(sorted(checked)),
        skipped=tuple(sorted(skipped, key=lambda s: s.image_id)),
        model_versions=dict(sorted(used.items())),
        rule=rule,
        round_number=round_number,
        counts=kind_counts(ranked),
    )


def kind_counts(issues: Iterable[LabelIssue]) -> dict[str, int]:
    """Issues per kind, every kind of :data:`~labelwise.quality.label_issues.KINDS` (zeros too)."""
    counts = dict.fromkeys(KINDS, 0)
    for issue in issues:
        counts[issue.kind] += 1
    return counts


def _images_of(issues: Sequence[LabelIssue]) -> list[str]:
    """Image ids in the order of their first (highest-ranked) issue."""
    return list(dict.fromkeys(i.image_id for i in issues))


def issue_thumbnails(
    catalog: Catalog, project: ProjectRecord, issues: Sequence[LabelIssue], thumbnails_dir: Path,
    size: int = 128,
) -> dict[str, str]:
    """Image id -> thumbnail path (long side ``size`` px, the score-batch queue's thumbnails,
    made once per image) for every image the issues name."""
    from labelwise.images import make_thumbnail

    ids = _images_of(issues)
    records = catalog.require_images(project, ids) if ids else []
    return {r.image_id: str(make_thumbnail(r.path, thumbnails_dir, r.image_id, size)) for r in records}


def issues_contact_sheet(
    catalog: Catalog, project: ProjectRecord, issues: Sequence[LabelIssue], out: Path,
    images: int = 8,
) -> Path | None:
    """A contact sheet of the first ``images`` images of ranked ``issues``: each with its
    suspected boxes drawn (the box in question, labelled with the class and the issue's score)
    and its issues as the caption. An image whose file is gone from disk is left off the sheet
    (the step that needs the file, retraining, is the one that reports it); None when no issue
    has an image left to draw."""
    from labelwise.domain import Detections
    from labelwise.reports import contact_sheet

    ids = _images_of(issues)[:images]
    if not ids:
        return None
    records = {r.image_id: r for r in catalog.require_images(project, ids)}
    items: list[tuple[str, Path, float, Detections | None]] = []
    captions: list[str] = []
    for image_id in ids:
        if not records[image_id].path.is_file():
            continue
        found = [i for i in issues if i.image_id == image_id]
        boxes = np.array([i.box for i in found], dtype=np.float64).reshape(-1, 4)
        classes = np.array([max(i.class_id, 0) for i in found], dtype=np.int64)
        scores = np.array([i.score for i in found], dtype=np.float64)
        probs = np.eye(len(project.class_names), dtype=np.float32)[classes]  # (N, C) one-hot
        items.append((image_id, records[image_id].path, found[0].score,
                      Detections(boxes, scores, classes, probs)))
        captions.append("; ".join(f"{i.kind} {i.score:.2f}" for i in found[:3]))
    if not items:
        return None
    return contact_sheet(items, project.class_names, out, confidence_floor=0.0, captions=captions)
