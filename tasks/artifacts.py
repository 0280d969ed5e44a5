"""Artifact tasks: what a round did, as Prefect artifacts on its run (and the step logger).

The pages are rendered by :mod:`labelwise.round_story`; these tasks only publish them. Keys (one
per project and kind, each round a new version; see :func:`labelwise.round_story.artifact_key`):

- ``queue-<project>``: markdown, the propose run's queue (strategy, parameters, ties, top items
  with why each was picked, where the queue JSON, contact sheet and Label Studio tab are);
- ``contact-sheet-<project>``: link to the contact sheet PNG (a ``file://`` url: Prefect's image
  artifact only shows images served over http, and the sheet is a local file);
- ``learn-<project>``: markdown, the learn run's metrics before -> after, champion, labels,
  reviewer corrections and MLflow run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task

from tasks.settings import task_settings

if TYPE_CHECKING:
    from labelwise.rounds.learning import LearnOutcome


def step_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (lines land in the Prefect UI), or a plain one when a task's ``.fn``
    is called outside any run."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("labelwise.tasks")


@task(name="queue-artifacts")
def publish_queue(batch: dict, files: dict, queued: dict | None) -> dict[str, str | None]:
    """The propose run's queue page and a link to its contact sheet; returns their keys."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    from labelwise.round_story import artifact_key, queue_markdown

    project = str(batch["project_id"])
    number = (batch.get("params") or {}).get("round")
    key = artifact_key("queue", project)
    create_markdown_artifact(queue_markdown(batch, files, queued), key=key,
                             description=f"Round {number} queue of {project}")
    sheet_key = None
    if files.get("contact_sheet"):
        sheet = Path(files["contact_sheet"]).resolve()
        sheet_key = artifact_key("contact-sheet", project)
        create_link_artifact(sheet.as_uri(), link_text=f"round {number} contact sheet: {sheet}",
                             key=sheet_key,
                             description=f"Round {number} queue of {project}: thumbnails with the "
                                         "model's boxes (a local file; open it on this machine)")
    step_logger().info(f"artifacts: {key}" + (f", {sheet_key}" if sheet_key else ""))
    return {"queue": key, "contact_sheet": sheet_key}


def mlflow_ui_url(tracking_uri: str) -> str | None:
    """Where the MLflow UI is: the tracking URI when it is http(s), else ``$LW_MLFLOW_URL``
    (``make up`` serves a UI over the sqlite store and exports it), else None."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    return os.environ.get("LW_MLFLOW_URL") or None


@task(name="learn-artifacts")
def publish_learn(config: str | None, project: str, outcome: LearnOutcome) -> str:
    """The learn run's page (from a learnt round's outcome); returns its key."""
    from prefect.artifacts import create_markdown_artifact

    from labelwise.evaluation import evaluation_record
    from labelwise.round_story import artifact_key, learn_markdown

    if outcome.evaluation is None or outcome.retrained is None or outcome.tracked is None:
        raise ValueError(f"round {outcome.round} of {project} was not learnt "
                         f"({outcome.skipped}): there is no learn page to publish")
    settings = task_settings(config)
    key = artifact_key("learn", project)
    round_number = outcome.round
    markdown = learn_markdown(round_number, project, evaluation_record(outcome.evaluation),
                              outcome.retrained.as_dict(), outcome.promoted,
                              outcome.tracked.as_dict(), outcome.pulled, outcome.before,
                              mlflow_ui_url(settings.resolved_tracking_uri))
    create_markdown_artifact(markdown, key=key, description=f"Round {round_number} of {project} learned")
    step_logger().info(f"artifacts: {key}")
    return key
