"""Finding a round, and waiting for another run to learn one (the statuses: :mod:`.status`)."""

from __future__ import annotations

import time
from typing import Any

from labelwise.catalog import CatalogError
from labelwise.config import Settings
from labelwise.rounds.status import LEARNED, LEARNED_SUMMARY, LEARNING, OPEN_STATUSES, REVIEWED


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
            f"project {project!r} has no round waiting to be learned (statuses {[s.value for s in OPEN_STATUSES]}); "
            "propose and review one first"
        )
    return catalog.round_info(record, waiting[-1]["number"])




def wait_for_learned(
    settings: Settings, project: str, number: int, timeout_s: float, poll_s: float,
    idle_s: float,
) -> dict[str, Any] | None:
    """Wait for another run (the learn run the webhook started) to learn round ``number``.

    Polls the catalog every ``poll_s`` seconds. Returns the recorded summary of the run that
    learnt it (round params ``learned``) once the round is ``learned``; None when the round is
    still ``reviewed`` after ``idle_s`` seconds, i.e. no run took it (the caller learns it
    itself; the compare-and-set keeps it to one learn run either way).

    Raises:
        TimeoutError: a run holds the round in ``learning`` for longer than ``timeout_s``.
        CatalogError: the round is in another status (e.g. still queued).
    """
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    record = catalog.project(project)
    began = time.monotonic()
    while True:
        info = catalog.round_info(record, number)
        status, waited = info["status"], time.monotonic() - began
        if status == LEARNED:
            return dict(info["params"].get(LEARNED_SUMMARY) or {"round": number})
        if status == REVIEWED and waited >= idle_s:
            return None
        if status not in (REVIEWED, LEARNING):
            raise CatalogError(
                f"round {number} of project {project!r} is {status!r}; expected {REVIEWED!r} or "
                f"{LEARNING!r} while waiting for it to be learned"
            )
        if waited >= timeout_s:
            raise TimeoutError(
                f"round {number} of project {project!r} is still {status!r} after {timeout_s:g} s; "
                "expected the learn run holding it to finish (see its Prefect run)"
            )
        time.sleep(poll_s)
