"""Review tasks: everything that talks to Label Studio (retried: it is a service)."""

from __future__ import annotations

from prefect import task

from tasks.artifacts import step_logger
from tasks.settings import task_settings

LS_RETRIES = 3
LS_RETRY_DELAYS_S: list[float] = [2, 5, 10]


@task(name="review-status", retries=LS_RETRIES, retry_delay_seconds=LS_RETRY_DELAYS_S)
def review_status(config: str | None, project: str, round_number: int | None) -> dict:
    from labelwise.review import review_status as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    status = run(settings, open_catalog(settings), project, round_number)
    step_logger().info(f"review-status: round {status['round']}: {status['annotated']} annotated, "
                       f"{status['skipped']} skipped, {status['pending']} pending of "
                       f"{status['total']} tasks ({'complete' if status['complete'] else 'not complete'})")
    return status


@task(name="pull-annotations", retries=LS_RETRIES, retry_delay_seconds=LS_RETRY_DELAYS_S)
def pull_annotations(config: str | None, project: str, round_number: int | None) -> dict:
    from labelwise.review import pull_annotations as run
    from labelwise.round_story import pull_line
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    pulled = run(settings, open_catalog(settings), project, round_number)
    step_logger().info(pull_line(pulled))
    return pulled


@task(name="annotate-simulated", retries=LS_RETRIES, retry_delay_seconds=LS_RETRY_DELAYS_S)
def annotate_simulated(config: str | None, project: str, truth_dir: str | None, noise: float, seed: int) -> dict:
    from labelwise.review import annotate_simulated as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    done = run(settings, open_catalog(settings), project, truth_dir, noise, seed)
    step_logger().info(f"annotate-simulated: {done['annotated']} tasks answered from the truth "
                       f"(noise {noise:g}), {done['already_annotated']} already answered, "
                       f"{done['missing_truth']} without a truth file, "
                       f"{done['relabelled_boxes']} boxes relabelled by the noise")
    return done


@task(name="wait-for-review")
def wait_for_review(config: str | None, project: str, round_number: int, timeout_s: float, poll_s: float) -> dict:
    """Poll Label Studio until every task of the round is annotated or skipped (demo path)."""
    from labelwise.review import wait_for_review as run
    from labelwise.runtime import open_catalog

    settings = task_settings(config)
    status = run(settings, open_catalog(settings), project, round_number, timeout_s, poll_s)
    who = ("moved by this poll" if status.get("transitioned")
           else "already moved by the webhook or another poller")
    step_logger().info(f"review: round {status['round']} complete: {status['annotated']} annotated, "
                       f"{status['skipped']} skipped; round is {status.get('round_status')} ({who})")
    return status
