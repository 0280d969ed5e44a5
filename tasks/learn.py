"""A closed loop's campaign run (MLflow). A round's own learn steps run through the library's
learn use case (:mod:`labelwise.rounds.learning`, as :mod:`tasks.steps` runs them)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.settings import task_settings


@task(name="start-campaign")  # not retried: a retry would open a second campaign run
def start_campaign(config: str | None, project: str, campaign: str, params: dict[str, Any]) -> str:
    """A campaign run the calling flow holds open; returns its run id."""
    from labelwise.learn import start_campaign as run

    return run(task_settings(config), project, campaign, params)


@task(name="end-campaign", retries=2, retry_delay_seconds=5)
def end_campaign(config: str | None, project: str, run_id: str, error: str | None) -> dict:
    """End the campaign run: FINISHED, or FAILED with ``error`` recorded."""
    from labelwise.learn import end_campaign as run

    return run(task_settings(config), project, run_id, error)
