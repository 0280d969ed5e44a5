"""Getting flagged images into Label Studio through :func:`labelwise.review.queue_batch`.

``queue_batch`` imports a *recorded round*'s batch. Each upload group has one open *serving
round* (:func:`labelwise.rounds.opening.serving_round`: the newest round of source ``serving``
for the group whose status is still ``proposed`` or ``queued``). Flags keep joining it (one-item
batches with ``params.round`` = its number) until review closes it (``reviewed`` -> ``learning``
-> ``learned``, like any round, so production flags get learned); the next flag then opens a new
serving round. Assignments (``POST /v1/assignments/queue``) are :mod:`labelwise.review.assignments`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelwise.catalog import Catalog
from labelwise.config import ServingSettings, Settings
from labelwise.domain import ImageStatus
from labelwise.rounds.opening import one_round_batch, serving_round
from labelwise.rounds.params import RoundSource, RoutingRecord
from labelwise.scorebatch import queue_entry
from labelwise.serving.outbox import OutboxItem


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
        routing = RoutingRecord(serving.routing_strategy, serving.routing_threshold)
        number = serving_round(catalog, project, item.group, item.model_version, routing)
        entry = queue_entry(image, item.routing_score, item.scores, settings.thumbnails_dir,
                            serving.thumbnail_size)
        batch = one_round_batch(project, RoundSource.SERVING.value, item.model_version, number, [entry])
        run(settings, catalog, project.name, batch, item.group)

    return deliver
