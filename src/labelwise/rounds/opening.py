"""Opening rounds: the one place a round of any source is created.

Every round starts ``proposed`` through :func:`open_round`, which hands typed
:class:`~labelwise.rounds.params.RoundParams` to ``catalog.create_round`` (the number is
allocated and the round stored in one transaction, so concurrent openers each get their own
number). The three sources each have a use case here:

* :func:`open_selection_round` - a strategy's selection over the pool (score-batch);
* :func:`serving_round` - the open round of a serving upload group, opened when there is none:
  flagged inference requests keep joining it until review closes it;
* :func:`assignment_round` - exactly the images a caller names, with their stored scores.

:func:`one_round_batch` builds the score batch a recorded round's images are queued with, the
same :class:`~labelwise.domain.ScoreBatch` every source hands to
:func:`labelwise.review.queue_batch`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.domain import ImageScore, QueueItem, ScoreBatch
from labelwise.rounds.params import RoundParams, RoundSource, RoutingRecord, SelectionRecord
from labelwise.rounds.status import PROPOSED, QUEUED

MANUAL_STRATEGY = "manual"
"""The strategy name of assignment rounds (nobody's selector picked the images)."""

_serving_lock = threading.Lock()
"""Keeps this process's threads from opening two serving rounds for one group at once."""


def open_round(
    catalog: Catalog,
    project: ProjectRecord,
    params: RoundParams,
    *,
    strategy: str,
    model_version: str | None,
    scores: Sequence[ImageScore] = (),
    selected: Sequence[str] = (),
) -> int:
    """Store a new ``proposed`` round and return its number.

    Args:
        scores: every candidate's scores (one per image).
        selected: the round's images, in the selector's order.

    Raises:
        RoundConflict: some selected images are held by another open round or no longer
            unlabelled; nothing is stored.
    """
    return catalog.create_round(project, strategy, model_version, params, scores, selected)


def open_selection_round(
    catalog: Catalog,
    project: ProjectRecord,
    strategy: str,
    model_version: str | None,
    selection: SelectionRecord,
    scores: Sequence[ImageScore],
    selected: Sequence[str],
) -> int:
    """A score-batch round: ``selected`` picked by ``strategy`` from ``scores``."""
    return open_round(catalog, project, RoundParams(RoundSource.SCORE_BATCH, selection=selection),
                      strategy=strategy, model_version=model_version, scores=scores, selected=selected)


def serving_round(
    catalog: Catalog,
    project: ProjectRecord,
    group: str,
    model_version: str | None,
    routing: RoutingRecord | None = None,
) -> int:
    """Number of the open serving round of ``group`` (``proposed`` or ``queued``), opened when
    there is none. A serving round selects nothing at opening: flagged images join it one at a
    time as they are queued, so it holds no image another round could want."""
    with _serving_lock:
        for info in reversed(catalog.rounds(project)):
            params = RoundParams.from_json(info.get("params"))
            if (params.source is RoundSource.SERVING and params.upload_group == group
                    and info["status"] in (PROPOSED, QUEUED)):
                return int(info["number"])
        return open_round(catalog, project,
                          RoundParams(RoundSource.SERVING, upload_group=group, routing=routing),
                          strategy=RoundSource.SERVING.value, model_version=model_version)


def assignment_round(
    catalog: Catalog,
    project: ProjectRecord,
    model_version: str | None,
    scores: Sequence[ImageScore],
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
    return open_round(catalog, project, RoundParams(RoundSource.ASSIGNMENT, upload_group=group),
                      strategy=MANUAL_STRATEGY, model_version=model_version, scores=scores,
                      selected=[s.image_id for s in scores])


def one_round_batch(
    project: ProjectRecord, strategy: str, model_version: str | None, number: int,
    items: Sequence[QueueItem],
) -> ScoreBatch:
    """The batch that queues ``items`` as round ``number`` (``params.round``)."""
    return ScoreBatch(project.name, strategy, model_version, list(items), {"round": number})
