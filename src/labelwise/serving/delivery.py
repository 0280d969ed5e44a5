"""Getting images into Label Studio through :func:`labelwise.review.queue_batch`.

``queue_batch`` imports a *recorded round*'s batch, so both paths here record one:

* Flagged images (outbox worker): each upload group has one open *serving round*: the newest
  round whose params say ``{"source": "serving", "upload_group": G}`` and whose status is still
  ``proposed`` or ``queued``. Flags keep joining it (one-item batches with ``params.round`` = its
  number) until review closes it (``reviewed`` -> ``learning`` -> ``learned``, like any round, so
  production flags get learned); the next flag then opens a new serving round.
* Assignments (``POST /v1/assignments/queue``): one new round per call, holding exactly the
  given images with their stored scores.

Round numbers come from ``catalog.create_round``, which allocates the number and stores the round
in one transaction: a round recorded at the same instant by another process (a flow's
score-batch, a second API worker) gets the next number, never the same one. An assignment's
images must not be held by another open round (``RoundConflict``, which the API answers 409).
``_round_lock`` only keeps this process's threads from opening two serving rounds for a group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from labelwise.catalog import Catalog, ImageRecord, ProjectRecord
from labelwise.config import ServingSettings, Settings
from labelwise.domain import ImageScore, ImageStatus
from labelwise.images import make_thumbnail
from labelwise.catalog.proposals import SERVING_SOURCE
from labelwise.rounds import PROPOSED, QUEUED
from labelwise.serving.outbox import OutboxItem

_round_lock = threading.Lock()


def serving_round(
    catalog: Catalog,
    project: ProjectRecord,
    group: str,
    model_version: str | None,
    params: dict[str, Any] | None = None,
) -> int:
    """Number of the open serving round of ``group`` (recorded when there is none)."""
    with _round_lock:
        for info in reversed(catalog.rounds(project)):
            p = info.get("params") or {}
            if (
                p.get("source") == SERVING_SOURCE
                and p.get("upload_group") == group
                and info["status"] in (PROPOSED, QUEUED)
            ):
                return int(info["number"])
        number = catalog.create_round(
            project,
            SERVING_SOURCE,
            model_version,
            {**(params or {}), "source": SERVING_SOURCE, "upload_group": group},
            [],
            [],
        )
        return number


def record_assignment_round(
    catalog: Catalog,
    project: ProjectRecord,
    model_version: str | None,
    scores: list[ImageScore],
    group: str | None,
) -> int:
    """A new round holding exactly ``scores``' images (all selected, in the given order).

    Stale proposals are settled first (``catalog.settle_stale_rounds``), so images a killed
    ``queue`` left selected can be assigned.

    Raises:
        RoundConflict: some of the images are held by another open round or no longer
            unlabelled (nothing is recorded).
    """
    catalog.settle_stale_rounds(project)
    number = catalog.create_round(
        project,
        "manual",
        model_version,
        {"source": "api", "upload_group": group},
        scores,
        [s.image_id for s in scores],
    )
    return number


def queue_item(
    settings: Settings, image: ImageRecord, score: float, scores: dict[str, float], size: int
) -> dict[str, Any]:
    """One score-batch queue entry (thumbnail as a file path, as the CLI writes it)."""
    thumb = make_thumbnail(image.path, settings.thumbnails_dir, image.image_id, size)
    return {
        "image_id": image.image_id,
        "uncertainty_score": round(float(score), 6),
        "scores": {k: round(float(v), 6) for k, v in scores.items()},
        "thumbnail": str(thumb),
    }


def make_deliver(
    settings: Settings,
    serving: ServingSettings,
    catalog: Catalog,
    queue: Callable[..., dict[str, Any]] | None = None,
) -> Callable[[OutboxItem], None]:
    """Deliver one outbox item: a one-item batch of the group's serving round to ``queue``
    (default :func:`labelwise.review.queue_batch`); raises when Label Studio is unreachable."""

    def deliver(item: OutboxItem) -> None:
        if queue is None:
            from labelwise.review import queue_batch as run
        else:
            run = queue
        project = catalog.project(item.project)
        image = catalog.image(project, item.image_id)
        if image.status is not ImageStatus.UNLABELLED:
            return  # queued by a round, or by an earlier attempt that went through
        number = serving_round(
            catalog,
            project,
            item.group,
            item.model_version,
            {
                "evaluation_strategy": serving.evaluation_strategy,
                "evaluation_threshold": serving.evaluation_threshold,
            },
        )
        batch = {
            "project_id": project.name,
            "strategy": SERVING_SOURCE,
            "model_version": item.model_version,
            "params": {"round": number},
            "queue": [
                queue_item(
                    settings, image, item.evaluation_score, item.scores, serving.thumbnail_size
                )
            ],
        }
        run(settings, catalog, project.name, batch, item.group)

    return deliver
