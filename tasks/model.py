"""Which model a round starts from (the registry champion, else the configured base)."""

from __future__ import annotations

from prefect import task

from tasks.settings import task_settings


@task(name="resolve-model", retries=2, retry_delay_seconds=5)
def resolve_model(config: str | None, project: str, explicit: str | None = None) -> dict:
    from dataclasses import asdict

    from labelwise.learn import resolve_base_model

    return asdict(resolve_base_model(task_settings(config), project, explicit))
