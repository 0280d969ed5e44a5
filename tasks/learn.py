"""Learn tasks: retrain, evaluate, track (MLflow), promote; a closed loop's campaign run."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.settings import task_settings


@task(name="retrain", task_run_name="retrain-{project}-round-{round_number}")
def retrain(config: str | None, project: str, round_number: int, base_model: str) -> dict:
    from labelwise.learn import retrain as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    catalog = open_catalog(settings)
    return run(settings, catalog, catalog.project(project), round_number, base_model).as_dict()


@task(name="evaluate", task_run_name="evaluate-{project}")
def evaluate(config: str | None, project: str, weights: str) -> dict:
    from labelwise.learn import evaluate as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return run(settings, open_catalog(settings).project(project), weights)


@task(name="track-round", retries=2, retry_delay_seconds=5)
def track_round(
    config: str | None, project: str, round_number: int, campaign: str, params: dict[str, Any],
    retrained: dict[str, Any], evaluation: dict[str, Any], extra_metrics: dict[str, float],
    artifacts: dict[str, str],
) -> dict:
    from dataclasses import asdict

    from labelwise.learn import track_round as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    record = open_catalog(settings).project(project)
    return asdict(run(settings, record, round_number, campaign, params, retrained, evaluation,
                      extra_metrics, artifacts))


@task(name="promote", retries=2, retry_delay_seconds=5)
def promote(config: str | None, project: str, version: str, map50_95: float) -> dict:
    from labelwise.learn import promote as run

    return run(task_settings(config), project, version, map50_95)


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


@task(name="plateau-check")
def plateau(config: str | None, project: str) -> dict:
    from labelwise.learn import metric_history
    from labelwise.promotion import has_plateaued

    settings = task_settings(config)
    history = metric_history(settings, project)
    t = settings.tracking
    return {"plateaued": has_plateaued(history, t.plateau_epsilon, t.plateau_rounds), "history": history}
