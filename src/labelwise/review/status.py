"""Review progress of a round, read from Label Studio.

A task is

* ``annotated`` when it has at least one annotation that was not cancelled;
* ``skipped`` when it has annotations and all of them were cancelled (the reviewer pressed
  Skip);
* ``pending`` otherwise (no annotation yet; drafts do not count).

A round is ``complete`` when it has tasks and none is pending. :func:`wait_for_review` polls
until then and moves the round ``queued -> reviewed`` (compare-and-set, so it races safely with
the webhook receiver).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from labelwise.catalog import Catalog, CatalogError, ProjectRecord
from labelwise.config import Settings
from labelwise.review.project import open_client
from labelwise.rounds import LEARNED, LEARNING, QUEUED, REVIEWED

if TYPE_CHECKING:
    from labelwise.labelstudio.client import LabelStudioClient

TaskState = Literal["annotated", "skipped", "pending"]


def task_state(task: Mapping[str, Any]) -> TaskState:
    """State of a Label Studio task dict (from ``list_tasks``, any ``fields``).

    Uses the ``annotations`` list when present (``fields="all"``), else the server's
    ``total_annotations`` (not cancelled) and ``cancelled_annotations`` counts.
    """
    annotations = task.get("annotations")
    if isinstance(annotations, list):
        if any(not a.get("was_cancelled") for a in annotations):
            return "annotated"
        return "skipped" if annotations else "pending"
    if int(task.get("total_annotations") or 0) > 0:
        return "annotated"
    return "skipped" if int(task.get("cancelled_annotations") or 0) > 0 else "pending"


def task_round(task: Mapping[str, Any]) -> int | None:
    """``data.round`` of a task as an int (None when absent or not a number)."""
    value = (task.get("data") or {}).get("round")
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def latest_final_annotation(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most recently updated non-cancelled annotation of a task (``fields="all"``)."""
    final = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not final:
        return None
    return max(final, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                     int(a.get("id") or 0)))


def resolve_round(catalog: Catalog, project: ProjectRecord, round_number: int | None) -> int:
    """``round_number`` checked to exist, or the newest queued round (else the newest round
    that was queued at some point: reviewed, learning or learned).

    Raises:
        CatalogError: no such round / no round was ever queued.
    """
    if round_number is not None:
        catalog.round_info(project, round_number)
        return int(round_number)
    rounds = catalog.rounds(project)
    for statuses in ((QUEUED,), (REVIEWED, LEARNING, LEARNED)):
        found = [r["number"] for r in rounds if r["status"] in statuses]
        if found:
            return int(found[-1])
    raise CatalogError(
        f"project {project.name!r} has no queued round (round statuses: "
        f"{[(r['number'], r['status']) for r in rounds] or 'none'}); queue a batch first"
    )


def require_ls_project(project: ProjectRecord) -> int:
    """The Label Studio project id of ``project``; CatalogError when it was never queued."""
    if project.ls_project_id is None:
        raise CatalogError(
            f"project {project.name!r} has no Label Studio project yet; queue a batch first "
            "(`labelwise queue --project ...`)"
        )
    return int(project.ls_project_id)


def count_states(
    tasks: Iterable[Mapping[str, Any]], round_number: int, queued: int | None = None
) -> dict[str, Any]:
    """Counts of the tasks whose ``data.round`` is ``round_number`` (not the consensus copies:
    :mod:`labelwise.review.consensus`; the main tasks decide when a round is complete).

    Args:
        queued: images the catalog queued in the round (default: the number of tasks).
    """
    counts = {"annotated": 0, "skipped": 0, "pending": 0}
    for task in tasks:
        if "consensus_of" in (task.get("data") or {}):
            continue
        if task_round(task) == round_number:
            counts[task_state(task)] += 1
    total = sum(counts.values())
    return {"round": round_number, "queued": total if queued is None else queued, **counts,
            "total": total, "complete": total > 0 and counts["pending"] == 0}


def status_with(
    client: "LabelStudioClient", catalog: Catalog, project: ProjectRecord, round_number: int
) -> dict[str, Any]:
    tasks = client.list_tasks(require_ls_project(project), fields="task_only")
    return count_states(tasks, round_number, len(catalog.round_images(project, round_number)))


def review_status(
    settings: Settings, catalog: Catalog, project: str, round_number: int | None
) -> dict[str, Any]:
    """How far the review of a round is, from Label Studio.

    Args:
        round_number: the round; None = the newest queued round.

    Returns:
        ``{"round", "queued", "annotated", "skipped", "pending", "total", "complete"}``:
        ``queued`` = images the catalog queued in the round, ``total`` = the round's tasks in
        Label Studio (``data.round``; equal unless tasks were deleted there), ``complete`` =
        there are tasks and none is pending; with ``consensus.share`` above 0 also
        ``"agreement"``: :func:`labelwise.review.consensus.round_agreement` so far.
    """
    record = catalog.project(project)
    number = resolve_round(catalog, record, round_number)
    ls_id = require_ls_project(record)
    with open_client(settings) as client:
        status = status_with(client, catalog, record, number)
        if settings.consensus.share > 0:
            from labelwise.review.consensus import agreement_from_tasks

            status["agreement"] = agreement_from_tasks(
                catalog.round_images(record, number), client.list_tasks(ls_id, fields="all"),
                record.class_names, number, settings.consensus.floor, record.task_type)
    return status


def wait_for_review(
    settings: Settings,
    catalog: Catalog,
    project: str,
    round_number: int,
    timeout_s: float,
    poll_s: float,
) -> dict[str, Any]:
    """Poll :func:`review_status` every ``poll_s`` seconds until the round is complete, then move
    it ``queued -> reviewed``.

    Returns:
        The final status plus ``"transitioned"`` (True when this call moved the round; False
        when the webhook or another poller did it first) and ``"round_status"``.

    Raises:
        ValueError: ``timeout_s < 0``, ``poll_s <= 0``, or the round has no task in Label Studio.
        TimeoutError: not complete within ``timeout_s``, naming the round and its counts.
    """
    if timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0; got {timeout_s}")
    if poll_s <= 0:
        raise ValueError(f"poll_s must be > 0; got {poll_s}")
    record = catalog.project(project)
    number = resolve_round(catalog, record, round_number)
    require_ls_project(record)
    deadline = time.monotonic() + timeout_s
    with open_client(settings) as client:
        while True:
            status = status_with(client, catalog, record, number)
            if status["total"] == 0:
                raise ValueError(
                    f"round {number} of project {project!r} has no task in Label Studio project "
                    f"{record.ls_project_id}; expected a queued batch"
                )
            if status["complete"]:
                moved = catalog.transition_round(record, number, QUEUED, REVIEWED)
                info = catalog.round_info(record, number)
                return {**status, "transitioned": moved, "round_status": info["status"]}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"round {number} of project {project!r} was not reviewed within "
                    f"{timeout_s:g} s: {status['annotated']} annotated, {status['skipped']} "
                    f"skipped, {status['pending']} pending of {status['total']} tasks"
                )
            time.sleep(min(poll_s, remaining))
