"""Round life cycle in the catalog.

    proposed -> queued -> reviewed -> learning -> learned
        \\           \\____________/      \\-> (failure) back to reviewed
         \\-> abandoned

``queued`` is set when the batch lands in Label Studio, ``reviewed`` when every task of it was
annotated or skipped (webhook, reconciler or poll), ``learning`` by the one learn run that wins
the compare-and-set, so a batch never trains twice. ``abandoned`` ends a proposal whose batch
never reached Label Studio (a failed API assignment, or a killed/failed ``queue`` settled by the
next recording score-batch: the rule is in :mod:`labelwise.catalog.rounds`).
"""

from __future__ import annotations

from typing import Any

from labelwise.catalog import CatalogError
from labelwise.catalog.proposals import (  # noqa: F401 - the statuses' one definition, re-exported
    ABANDONED,
    LEARNED,
    LEARNING,
    PROPOSED,
    QUEUED,
    REVIEWED,
)
from labelwise.config import Settings

OPEN_STATUSES = (QUEUED, REVIEWED)


def find_round(settings: Settings, project: str, number: int | None = None) -> dict[str, Any]:
    """A round by number, or the newest round still waiting to be learned."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    record = catalog.project(project)
    if number is not None:
        return catalog.round_info(record, number)
    waiting = [r for r in catalog.rounds(record) if r["status"] in OPEN_STATUSES]
    if not waiting:
        raise CatalogError(
            f"project {project!r} has no round waiting to be learned (statuses {list(OPEN_STATUSES)}); "
            "propose and review one first"
        )
    return catalog.round_info(record, waiting[-1]["number"])
