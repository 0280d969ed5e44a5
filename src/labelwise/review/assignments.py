"""Assignments: queue exactly the images a caller names to Label Studio, as one new round.

The use case behind the serving API's ``POST /v1/assignments/queue`` (the handler maps the
errors below to HTTP statuses; a notebook or a script calls :func:`queue_assignments` alike):

1. the images must be in the project and ``unlabelled`` (:class:`UnknownImages`,
   :class:`NotAssignable`);
2. each needs a stored prediction of the project's latest model version, scored by the
   configured rule (``scorebatch.scoring_rule``) and queued in ascending uncertainty;
3. one new round records exactly these images (:func:`labelwise.rounds.opening.assignment_round`, after the stale
   proposals are settled; images another open round holds are refused, :class:`NotAssignable`);
4. :func:`labelwise.review.queue_batch` sends the batch. When it fails nothing was marked
   queued, so the round moves ``proposed -> abandoned`` (compare-and-set) before the error is
   raised: a :class:`~labelwise.labelstudio.errors.LabelStudioError` as it is, a refused batch
   as :class:`NotAssignable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labelwise.catalog import Catalog, CatalogError, ProjectRecord, RoundConflict
from labelwise.config import Settings
from labelwise.domain import ImageStatus, ScoreBatch
from labelwise.images import ImageReadError
from labelwise.labelstudio.errors import LabelStudioError
from labelwise.rounds import ABANDONED, PROPOSED
from labelwise.rounds.opening import MANUAL_STRATEGY, assignment_round, one_round_batch
from labelwise.scorebatch import queue_entry, scoring_rule
from labelwise.scoring import score_image

QueueBatch = Callable[[Settings, Catalog, str, ScoreBatch, str | None], dict[str, Any]]
"""``queue_batch(settings, catalog, project name, batch, group) -> report``."""


class AssignmentError(ValueError):
    """An assignment refused; the message says which images and what was expected."""


class UnknownImages(AssignmentError):
    """Some image ids are not in the project (nothing was recorded)."""


class NotAssignable(AssignmentError):
    """The images exist but cannot be queued: not unlabelled, no stored prediction of the
    latest model, unreadable, held by another open round, or the batch was refused."""


@dataclass(frozen=True)
class AssignmentResult:
    """What :func:`queue_assignments` did.

    Attributes:
        project: the project's name.
        group: the upload group the tasks were tagged with (None: none).
        model_version: the model version whose predictions were sent.
        round_number: the round recorded for these images.
        image_ids: the images in queue order (ascending uncertainty, then id).
        queued: :func:`labelwise.review.queue_batch`'s report.
    """

    project: str
    group: str | None
    model_version: str | None
    round_number: int
    image_ids: tuple[str, ...]
    queued: dict[str, Any]


def _queue_batch() -> QueueBatch:
    """:func:`labelwise.review.queue_batch`, looked up now (so a replaced one is used)."""
    import labelwise.review

    return labelwise.review.queue_batch


def queue_assignments(
    settings: Settings,
    catalog: Catalog,
    project: ProjectRecord,
    image_ids: Sequence[str],
    group: str | None,
    *,
    thumbnail_size: int,
    queue: QueueBatch | None = None,
) -> AssignmentResult:
    """Queue exactly ``image_ids`` (duplicates dropped) of ``project`` to Label Studio with
    their stored predictions, as one new round.

    Args:
        thumbnail_size: long side (px) of the queue entries' thumbnails.
        queue: what sends the batch (default :func:`labelwise.review.queue_batch`, looked up
            at call time).

    Raises:
        UnknownImages: some ids are not in the project.
        NotAssignable: see the class; nothing is queued, and a round recorded for the batch is
            abandoned.
        LabelStudioError: Label Studio failed (the round recorded for the batch is abandoned).
    """
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise NotAssignable("expected at least one image id; got none")
    try:
        records = catalog.require_images(project, ids)
    except CatalogError as exc:
        raise UnknownImages(str(exc)) from None
    taken = [f"{r.image_id} ({r.status.value})" for r in records
             if r.status is not ImageStatus.UNLABELLED]
    if taken:
        raise NotAssignable(f"expected unlabelled images; got {taken[:10]}")
    version = catalog.latest_model_version(project)
    preds = catalog.predictions(project, version, ids) if version else {}
    missing = [i for i in ids if i not in preds]
    if missing:
        raise NotAssignable(
            f"no stored prediction of model {version!r} in project {project.name!r} for "
            f"{missing[:10]}; run auto-label first"
        )
    rule = scoring_rule(settings, project.task_type)
    scores = sorted(
        (score_image(r.image_id, preds[r.image_id], rule) for r in records),
        key=lambda sc: (sc.uncertainty_score, sc.image_id),
    )
    by_id = {r.image_id: r for r in records}
    try:
        entries = [queue_entry(by_id[sc.image_id], sc.uncertainty_score, sc.scores,
                               settings.thumbnails_dir, thumbnail_size) for sc in scores]
    except ImageReadError as exc:
        raise NotAssignable(str(exc)) from None
    try:
        number = assignment_round(catalog, project, version, scores, group)
    except RoundConflict as exc:  # taken by a concurrent round since the checks above
        raise NotAssignable(str(exc)) from None
    batch = one_round_batch(project, MANUAL_STRATEGY, version, number, entries)
    send = queue if queue is not None else _queue_batch()
    try:
        report = send(settings, catalog, project.name, batch, group)
    except (LabelStudioError, ValueError) as exc:
        # nothing was marked queued; compare-and-set, as every round status change
        catalog.transition_round(project, number, PROPOSED, ABANDONED)
        if isinstance(exc, LabelStudioError):
            raise
        raise NotAssignable(str(exc)) from None
    return AssignmentResult(project.name, group, version, number,
                            tuple(entry.image_id for entry in entries), report)
