"""Round bookkeeping in the catalog: finding rounds, exactly-once status moves, handoffs."""

from __future__ import annotations

from prefect import task

from tasks.artifacts import step_logger
from tasks.settings import task_settings


@task(name="round-info")
def round_info(config: str | None, project: str, round_number: int | None) -> dict:
    """The round (default: the newest one not learned yet)."""
    from labelwise.rounds import find_round

    info = find_round(task_settings(config), project, round_number)
    step_logger().info(f"round {info['number']} of {project}: {info['status']}, strategy "
                       f"{info['strategy']}, {len(info.get('selected') or [])} images selected"
                       + ("" if round_number is not None else " (the newest round not learned yet)"))
    return info


@task(name="move-round")
def move_round(config: str | None, project: str, round_number: int, from_status: list[str], to_status: str) -> bool:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    moved = catalog.transition_round(catalog.project(project), round_number, from_status, to_status)
    source = " or ".join(from_status)
    step_logger().info(f"round {round_number}: {source} -> {to_status}" if moved else
                       f"round {round_number}: not moved to {to_status} (it is not {source})")
    return moved


@task(name="list-rounds")
def list_rounds(config: str | None, project: str, status: str) -> list[int]:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    numbers = [r["number"] for r in catalog.rounds(catalog.project(project), status)]
    step_logger().info(f"rounds of {project} {status}: {numbers or 'none'}")
    return numbers


@task(name="wait-for-learned")
def wait_for_learned(config: str | None, project: str, round_number: int, timeout_s: float,
                     poll_s: float, idle_s: float) -> dict | None:
    """What another run learnt for the round, once learned; None if none took it in idle_s."""
    from labelwise.rounds import wait_for_learned as run

    learned = run(task_settings(config), project, round_number, timeout_s, poll_s, idle_s)
    step_logger().info(f"handoff: round {round_number} " + (
        "was not taken by another run: learning it here" if learned is None
        else f"learnt by {learned.get('learnt_by', 'another run')}"))
    return learned
