"""Review commands: ``queue``, ``review-status``, ``pull`` and ``annotate-simulated``."""

from __future__ import annotations

from typing import Optional

import typer

from labelwise.cli.common import (
    diversity_weight_option,
    friendly_errors,
    limit_option,
    print_json,
    project_option,
    settings_from,
    strategy_option,
)


def register(app: typer.Typer) -> None:
    app.command("queue")(queue)
    app.command("review-status")(review_status)
    app.command("pull")(pull)
    app.command("annotate-simulated")(annotate_simulated)


@friendly_errors
def queue(
    ctx: typer.Context,
    project: str = project_option(),
    strategy: Optional[str] = strategy_option(),
    limit: Optional[int] = limit_option(),
    diversity_weight: Optional[float] = diversity_weight_option(),
    group: Optional[str] = typer.Option(
        None, "--group", "-g", help="Upload group; gets its own Label Studio tab."
    ),
) -> None:
    """Score, select and send a batch to Label Studio with the model's boxes pre-annotated.

    Rounds a killed or failed queue left proposed are settled first: the output lists them
    (``closed_stale_rounds``, ``resumed_stale_rounds``). Images another open round holds are
    left out; when nothing else is left, one line names that round (exit 2).
    """
    from labelwise.review import queue_batch
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    settings = settings_from(ctx)
    catalog = open_catalog(settings)
    request = ScoreBatchRequest.from_settings(
        settings, project, strategy=strategy, limit=limit, diversity_weight=diversity_weight
    )
    batch = build_score_batch(catalog, settings, request, record=True)
    result = queue_batch(settings, catalog, project, batch, group)
    for key in ("closed_stale_rounds", "resumed_stale_rounds"):
        result[key] = batch.params.get(key, [])
    print_json(result)


@friendly_errors
def review_status(
    ctx: typer.Context,
    project: str = project_option(),
    round_number: Optional[int] = typer.Option(
        None, "--round", "-r", help="Round (default: the newest queued round)."
    ),
) -> None:
    """Count the round's tasks annotated, skipped and pending in Label Studio."""
    from labelwise.review import review_status as run
    from labelwise.runtime import open_catalog

    settings = settings_from(ctx)
    print_json(run(settings, open_catalog(settings), project, round_number))


@friendly_errors
def pull(
    ctx: typer.Context,
    project: str = project_option(),
    round_number: Optional[int] = typer.Option(
        None, "--round", "-r", help="Round to report corrections for (default: what is pulled)."
    ),
) -> None:
    """Bring reviewed labels back: annotated -> labelled, skipped -> rejected."""
    from labelwise.review import pull_annotations
    from labelwise.runtime import open_catalog

    settings = settings_from(ctx)
    print_json(pull_annotations(settings, open_catalog(settings), project, round_number))


@friendly_errors
def annotate_simulated(
    ctx: typer.Context,
    project: str = project_option(),
    truth: Optional[str] = typer.Option(
        None, "--truth", help="Folder of YOLO truth files (default: the digits pool_truth)."
    ),
    noise: float = typer.Option(
        0.0, "--noise", min=0.0, max=1.0, help="Probability a box gets a wrong class."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Answer unanswered queued tasks with ground truth (demos and tests)."""
    from labelwise.review import annotate_simulated as run
    from labelwise.runtime import open_catalog

    settings = settings_from(ctx)
    print_json(run(settings, open_catalog(settings), project, truth, noise, seed))
