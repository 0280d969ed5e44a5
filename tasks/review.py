"""Review tasks: everything that talks to Label Studio (retried: it is a service)."""

from __future__ import annotations

from prefect import task

from tasks.settings import task_settings

LS_RETRIES = dict(retries=3, retry_delay_seconds=[2, 5, 10])


@task(name="queue-for-review", **LS_RETRIES)
def queue_for_review(config: str | None, project: str, batch: dict, group: str | None) -> dict:
    from labelwise.review import queue_batch
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return queue_batch(settings, open_catalog(settings), project, batch, group)


@task(name="review-status", **LS_RETRIES)
def review_status(config: str | None, project: str, round_number: int | None) -> dict:
    from labelwise.review import review_status as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return run(settings, open_catalog(settings), project, round_number)


@task(name="pull-annotations", **LS_RETRIES)
def pull_annotations(config: str | None, project: str, round_number: int | None) -> dict:
    from labelwise.review import pull_annotations as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return run(settings, open_catalog(settings), project, round_number)


@task(name="annotate-simulated", **LS_RETRIES)
def annotate_simulated(config: str | None, project: str, truth_dir: str | None, noise: float, seed: int) -> dict:
    from labelwise.review import annotate_simulated as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return run(settings, open_catalog(settings), project, truth_dir, noise, seed)


@task(name="wait-for-review")
def wait_for_review(config: str | None, project: str, round_number: int, timeout_s: float, poll_s: float) -> dict:
    """Poll Label Studio until every task of the round is annotated or skipped (demo path)."""
    from labelwise.review import wait_for_review as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    return run(settings, open_catalog(settings), project, round_number, timeout_s, poll_s)
