"""Round bookkeeping in the catalog: artifacts, figures and exactly-once status moves."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.settings import task_settings


@task(name="write-batch-artifacts")
def write_batch_artifacts(config: str | None, batch: dict) -> dict:
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import write_batch_artifacts as run

    settings = task_settings(config)
    return run(settings, open_catalog(settings), batch)


@task(name="record-round-figures")
def record_round_figures(config: str | None, project: str, round_number: int, figures: dict[str, Any]) -> dict:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    return catalog.update_round_params(catalog.project(project), round_number, figures)


@task(name="round-info")
def round_info(config: str | None, project: str, round_number: int | None) -> dict:
    """The round (default: the newest one not learned yet)."""
    from labelwise.rounds import find_round

    return find_round(task_settings(config), project, round_number)


@task(name="move-round")
def move_round(config: str | None, project: str, round_number: int, from_status: list[str], to_status: str) -> bool:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    return catalog.transition_round(catalog.project(project), round_number, from_status, to_status)


@task(name="list-rounds")
def list_rounds(config: str | None, project: str, status: str) -> list[int]:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    return [r["number"] for r in catalog.rounds(catalog.project(project), status)]
