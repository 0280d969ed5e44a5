"""Reviewer agreement: a share of each batch reviewed twice (or more), and how well they agree.

**How images get more than one review.** Label Studio's own overlap settings
(``maximum_annotations``, ``overlap_cohort_percentage``) only steer which annotator the labelling
stream hands a task to; the open-source server neither reports per-task agreement nor keeps a
reviewer from opening a task from the Data Manager, and a task with one of its two annotations
looks "labelled" to every client. So Labelwise duplicates tasks instead, which the SDK supports
fully: for ``consensus.share`` of each queued batch (:func:`consensus_images`: a deterministic
choice per round, so a re-queue picks the same images) every extra reviewer ``k`` (2 ..
``consensus.reviewers``) gets a copy of the image's task::

    data: {"image", "consensus_of": <image id>, "consensus_key": "<image id>:r<k>",
           "reviewer": k, "round", "look": "consensus", "reason_text"}

with the same pre-annotations, in its own tab ``consensus: reviewer <k>``. The import is keyed by
``consensus_key`` (exactly once; a rerun adds none). The copies carry no ``image_id``, so review
status, the webhook and pull count only the main task: a round is complete when its main tasks
are, and the main task's annotation is the image's label.

**Agreement** (:func:`round_agreement`), over the consensus images whose main task and copy are
both answered (not skipped): per image, box F1 with class match at IoU 0.5
(:func:`labelwise.quality.agreement.box_agreement`); per reviewer pair (Label Studio user ids of
the two annotations) and for the round, the pooled F1 ``2 * matched / (boxes of A + boxes of
B)`` and Cohen's kappa of image-level class presence
(:func:`~labelwise.quality.agreement.presence_kappa`). The merge rule
(:func:`~labelwise.quality.agreement.merge_reviews`): boxes both drew (same class, IoU >= 0.5) are
agreed, every other box needs a third look; the report counts both and names the images with a
third look. A round whose F1 is below ``consensus.floor`` is flagged.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelwise.catalog import Catalog, ImageRecord, ProjectRecord
from labelwise.config import Settings
from labelwise.labelstudio.formats import review_format
from labelwise.quality.agreement import box_agreement, merge_reviews, presence_kappa
from labelwise.quality.label_issues import MISSING_BOX, SPURIOUS_BOX, LabelIssue, rank_issues
from labelwise.review.corrections import yolo_rows_to_xyxy
from labelwise.review.status import latest_final_annotation, require_ls_project, task_state
from labelwise.task_types import TaskType

CONSENSUS_OF = "consensus_of"
CONSENSUS_KEY = "consensus_key"
LOOK_VALUE = "consensus"


def consensus_images(image_ids: Sequence[str], round_number: int, share: float) -> list[str]:
    """The images of a batch that get extra reviews: ``ceil(share * n)`` of them (none when
    ``share`` is 0), those with the smallest SHA-256 of ``"<round>:<image id>"`` (deterministic
    per round, spread over the queue), in the batch's order."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"consensus share must lie in [0, 1]; got {share}")
    if share == 0.0 or not image_ids:
        return []
    count = min(len(image_ids), math.ceil(share * len(image_ids)))
    digest = {i: hashlib.sha256(f"{round_number}:{i}".encode()).hexdigest() for i in image_ids}
    chosen = set(sorted(image_ids, key=lambda i: digest[i])[:count])
    return [i for i in image_ids if i in chosen]


def consensus_key(image_id: str, reviewer: int) -> str:
    return f"{image_id}:r{reviewer}"


def consensus_copies(
    main_tasks: Mapping[str, Mapping[str, Any]], chosen: Sequence[str], reviewers: int,
    round_number: int, existing_keys: set[str],
) -> list[dict[str, Any]]:
    """The copy tasks still missing for ``chosen`` (main task dicts by image id, as imported:
    ``data`` and optional ``predictions``), reviewers 2 .. ``reviewers``."""
    copies: list[dict[str, Any]] = []
    for image_id in chosen:
        main = main_tasks[image_id]
        data = dict(main["data"])
        for k in range(2, reviewers + 1):
            key = consensus_key(image_id, k)
            if key in existing_keys:
                continue
            copy: dict[str, Any] = {"data": {
                "image": data["image"], CONSENSUS_OF: image_id, CONSENSUS_KEY: key,
                "reviewer": k, "round": round_number, "look": LOOK_VALUE,
                "reason_text": f"Consensus review {k}: label it as you would; another reviewer "
                               f"labels the same image. {data.get('reason_text') or ''}".strip(),
            }}
            if main.get("predictions"):
                copy["predictions"] = main["predictions"]
            copies.append(copy)
    return copies


@dataclass(frozen=True)
class ImageAgreement:
    """One consensus image: reviewer A (the main task) and B (a copy), their user ids, box F1,
    the box counts, and how many boxes the merge keeps / sends to a third look."""

    image_id: str
    reviewer: int
    a_user: int | None
    b_user: int | None
    f1: float
    matched: int
    a_boxes: int
    b_boxes: int
    agreed: int
    third_look: int


def _answer(task: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    if task is None:
        return None, "pending"
    state = task_state(task)
    return (latest_final_annotation(task) if state == "annotated" else None), state


def _user(annotation: Mapping[str, Any]) -> int | None:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("id")
    return int(who) if who is not None else None


@dataclass(frozen=True)
class AnsweredPair:
    """One consensus image whose main task (reviewer A) and copy (reviewer B, number
    ``reviewer``) are both answered: each side's YOLO rows ``(N, 5)`` and annotation."""

    image_id: str
    reviewer: int
    a: Mapping[str, Any]
    b: Mapping[str, Any]
    rows_a: np.ndarray
    rows_b: np.ndarray


def answered_pairs(
    images: Sequence[ImageRecord], tasks: Sequence[Mapping[str, Any]], class_names: Sequence[str],
    round_number: int, task_type: TaskType = TaskType.DETECT,
) -> tuple[list[AnsweredPair], int, int, int]:
    """``(pairs, copies, pending, skipped)`` of round ``round_number``: the copies whose main
    task and copy are both answered (in ``consensus_key`` order), how many copies the round has,
    and how many wait for an answer or were skipped on either side. Answers are read in the
    Label Studio format of ``task_type`` (a classification: one whole-image row)."""
    fmt = review_format(task_type)
    by_id = {int(t["id"]): t for t in tasks}
    copies = [t for t in tasks if (t.get("data") or {}).get(CONSENSUS_OF) is not None
              and (t.get("data") or {}).get("round") == round_number]
    main_of = {img.image_id: by_id.get(int(img.ls_task_id)) for img in images
               if img.ls_task_id is not None}
    pairs: list[AnsweredPair] = []
    pending = skipped = 0
    for copy in sorted(copies, key=lambda t: str(t["data"][CONSENSUS_KEY])):
        image_id = str(copy["data"][CONSENSUS_OF])
        a, a_state = _answer(main_of.get(image_id))
        b, b_state = _answer(copy)
        if "skipped" in (a_state, b_state):
            skipped += 1
            continue
        if a is None or b is None:
            pending += 1
            continue
        pairs.append(AnsweredPair(image_id, int(copy["data"]["reviewer"]), a, b,
                                  fmt.result_to_labels(a.get("result") or [], class_names),
                                  fmt.result_to_labels(b.get("result") or [], class_names)))
    return pairs, len(copies), pending, skipped


def agreement_from_tasks(
    images: Sequence[ImageRecord], tasks: Sequence[Mapping[str, Any]], class_names: Sequence[str],
    round_number: int, floor: float, task_type: TaskType = TaskType.DETECT,
) -> dict[str, Any]:
    """:func:`round_agreement` over tasks already listed (``fields="all"``); ``images`` are the
    round's images (their ``ls_task_id`` names the main task)."""
    answered, n_copies, pending, skipped = answered_pairs(images, tasks, class_names, round_number,
                                                          task_type)
    compared: list[ImageAgreement] = []
    a_presence: list[np.ndarray] = []
    b_presence: list[np.ndarray] = []
    for pair in answered:
        xa, ca = yolo_rows_to_xyxy(pair.rows_a)
        xb, cb = yolo_rows_to_xyxy(pair.rows_b)
        boxes = box_agreement(xa, ca, xb, cb)
        merged = merge_reviews(xa, ca, xb, cb)
        compared.append(ImageAgreement(pair.image_id, pair.reviewer, _user(pair.a), _user(pair.b),
                                       boxes.f1, boxes.matched, len(ca), len(cb),
                                       len(merged.agreed), len(merged.third_look)))
        a_presence.append(ca)
        b_presence.append(cb)

    def pooled(items: Sequence[ImageAgreement]) -> float | None:
        total = sum(i.a_boxes + i.b_boxes for i in items)
        return None if not items else (1.0 if total == 0 else 2.0 * sum(i.matched for i in items) / total)

    def kappa(idx: Sequence[int]) -> float | None:
        if not idx:
            return None
        return presence_kappa([a_presence[i] for i in idx], [b_presence[i] for i in idx],
                              len(class_names)).kappa

    pairs: dict[tuple[int | None, int | None], list[int]] = {}
    for n, item in enumerate(compared):
        pairs.setdefault((item.a_user, item.b_user), []).append(n)
    f1 = pooled(compared)
    return {
        "round": round_number,
        "consensus_tasks": n_copies,
        "images_compared": len(compared),
        "pending": pending,
        "skipped": skipped,
        "box_f1": f1,
        "kappa": kappa(range(len(compared))),
        "floor": floor,
        "below_floor": f1 is not None and f1 < floor,
        "pairs": [{"reviewers": list(users), "images": len(idx),
                   "box_f1": pooled([compared[i] for i in idx]), "kappa": kappa(idx)}
                  for users, idx in sorted(pairs.items(), key=lambda kv: str(kv[0]))],
        "merged": {"agreed_boxes": sum(i.agreed for i in compared),
                   "third_look_boxes": sum(i.third_look for i in compared),
                   "third_look_images": sorted({i.image_id for i in compared if i.third_look})},
        "per_image": [{"image_id": i.image_id, "reviewer": i.reviewer, "box_f1": i.f1,
                       "matched": i.matched, "a_boxes": i.a_boxes, "b_boxes": i.b_boxes}
                      for i in compared],
    }


def round_agreement(settings: Settings, catalog: Catalog, project: ProjectRecord | str,
                    round_number: int) -> dict[str, Any]:
    """Agreement so far between the reviewers of round ``round_number`` (module docstring):
    ``{"round", "consensus_tasks", "images_compared", "pending", "skipped", "box_f1", "kappa",
    "floor", "below_floor", "pairs", "merged", "per_image"}``; F1 and kappa are None before any
    image was compared."""
    from labelwise.review.project import open_client

    record = catalog.project(project) if isinstance(project, str) else project
    ls_id = require_ls_project(record)
    with open_client(settings) as client:
        tasks = client.list_tasks(ls_id, fields="all")
    return agreement_from_tasks(catalog.round_images(record, round_number), tasks,
                                record.class_names, round_number, settings.consensus.floor,
                                record.task_type)


def third_look_issues(
    images: Sequence[ImageRecord], tasks: Sequence[Mapping[str, Any]], class_names: Sequence[str],
    round_number: int, task_type: TaskType = TaskType.DETECT,
) -> list[LabelIssue]:
    """The merge rule's third looks of round ``round_number`` as label issues of the image's
    label (reviewer A's, the main task's), for :func:`labelwise.review.second_look.queue_second_look`.

    A box only reviewer A drew is a ``spurious_box`` of the label; a box only reviewer B drew is a
    ``missing_box`` (class and box of B's). Boxes are xyxy pixels of the image record. Every issue
    of an image scores ``1 - box F1`` of that image, so the second-look tab lists the images the
    reviewers disagree on most first.
    """
    record_of = {img.image_id: img for img in images}
    issues: list[LabelIssue] = []
    for pair in answered_pairs(images, tasks, class_names, round_number, task_type)[0]:
        img = record_of[pair.image_id]
        scale = np.array([img.width, img.height, img.width, img.height], dtype=np.float64)
        xa, ca = yolo_rows_to_xyxy(pair.rows_a)
        xb, cb = yolo_rows_to_xyxy(pair.rows_b)
        f1 = box_agreement(xa, ca, xb, cb).f1
        for box in merge_reviews(xa * scale, ca, xb * scale, cb).third_look:
            name = class_names[box.class_id] if 0 <= box.class_id < len(class_names) else str(box.class_id)
            if box.reviewer == "a":
                kind, detail = SPURIOUS_BOX, (f"only the first reviewer drew this {name} box; "
                                              f"reviewer {pair.reviewer} did not")
            else:
                kind, detail = MISSING_BOX, (f"reviewer {pair.reviewer} drew a {name} box here; "
                                             f"the label has none")
            issues.append(LabelIssue(pair.image_id, kind, box.class_id, box.box,
                                     float(min(1.0, max(0.0, 1.0 - f1))), detail))
    return rank_issues(issues)


def round_third_looks(settings: Settings, catalog: Catalog, project: ProjectRecord | str,
                      round_number: int | None = None) -> tuple[int, list[LabelIssue]]:
    """``(round, issues)``: :func:`third_look_issues` of ``round_number`` (default: the newest
    round that has consensus copies), read from Label Studio.

    Raises:
        ValueError: the project has no consensus copies (``consensus.share`` was 0), or none in
            the given round.
    """
    from labelwise.review.project import open_client

    record = catalog.project(project) if isinstance(project, str) else project
    ls_id = require_ls_project(record)
    with open_client(settings) as client:
        tasks = client.list_tasks(ls_id, fields="all")
    rounds = sorted({int(t["data"]["round"]) for t in tasks
                     if (t.get("data") or {}).get(CONSENSUS_OF) is not None
                     and (t.get("data") or {}).get("round") is not None})
    if round_number is None:
        if not rounds:
            raise ValueError(f"project {record.name!r} has no consensus tasks; expected rounds "
                             f"queued with consensus.share > 0")
        round_number = rounds[-1]
    elif round_number not in rounds:
        raise ValueError(f"round {round_number} of project {record.name!r} has no consensus tasks; "
                         f"rounds with them: {rounds or 'none'}")
    return round_number, third_look_issues(catalog.round_images(record, round_number), tasks,
                                           record.class_names, round_number, record.task_type)
