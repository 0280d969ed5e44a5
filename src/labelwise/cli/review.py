"""Review commands: ``queue``, ``review-status``, ``pull`` and ``annotate-simulated``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from labelwise.cli.common import (
    diversity_weight_option,
    fail,
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
    issues: Optional[int] = typer.Option(
        None, "--issues", min=1,
        help="Instead: send the N labelled images with the most probable label errors back "
        "for a second look (their own tab; see `labelwise label-issues`).",
    ),
    third_looks: bool = typer.Option(
        False, "--third-looks",
        help="Instead: send every consensus image whose reviewers disagree (the boxes only one "
        "of them drew) for a second look; with --round N that round's, else the newest.",
    ),
    round_number: Optional[int] = typer.Option(
        None, "--round", "-r", min=1, help="With --third-looks: the consensus round."),
) -> None:
    """Score, select and send a batch to Label Studio with the model's boxes pre-annotated.

    Rounds a killed or failed queue left proposed are settled first: the output lists them
    (``closed_stale_rounds``, ``resumed_stale_rounds``). Images another open round holds are
    left out; when nothing else is left, one line names that round (exit 2).

    With --issues N, no batch is scored: the top N images of `labelwise label-issues` each get
    one "second look" task holding their current labels to fix and the suspected issues shown
    above the image. Running it again creates no task twice; `labelwise pull` brings fixes back.

    With --third-looks, the images the merge rule could not settle (a box only one reviewer
    drew) go to the same "second look" tab, most disagreement first; pull the round first.
    """
    from labelwise.runtime import open_catalog

    if issues is not None and third_looks:
        fail("--issues and --third-looks each choose the images to send; got both, expected one")
    if round_number is not None and not third_looks:
        fail("--round applies to --third-looks only; got --round without it")
    settings = settings_from(ctx)
    catalog = open_catalog(settings)
    if third_looks:
        from labelwise.review.consensus import round_third_looks
        from labelwise.review.second_look import queue_second_look

        rnd, found = round_third_looks(settings, catalog, project, round_number)
        if not found:
            fail(f"round {rnd} of project {project!r} has no disagreement between reviewers "
                 f"(or no consensus image answered by both yet): nothing to send for a third look")
        images = len({i.image_id for i in found})
        print_json({"round": rnd, **queue_second_look(settings, catalog, project, found, images)})
        return
    if issues is not None:
        from labelwise.quality.project_issues import project_label_issues
        from labelwise.review.second_look import queue_second_look

        report = project_label_issues(catalog, catalog.project(project))
        if not report.issues:
            fail(f"no label issues found in project {project!r} ({len(report.images_checked)} "
                 f"images checked, {len(report.skipped)} skipped): nothing to send for a second look")
        print_json(queue_second_look(settings, catalog, project, report.issues, issues))
        return
    from labelwise.review import queue_batch
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

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
    drop_rate: float = typer.Option(
        0.0, "--drop-rate", min=0.0, max=1.0, help="Per true box: probability it is left out."
    ),
    add_rate: float = typer.Option(
        0.0, "--add-rate", min=0.0, max=1.0, help="Per true box: probability a spurious box is added."
    ),
    shift_rate: float = typer.Option(
        0.0, "--shift-rate", min=0.0, max=1.0,
        help="Per kept box: probability it is moved to IoU < 0.5 with the truth.",
    ),
    swap_rate: float = typer.Option(
        0.0, "--swap-rate", min=0.0, max=1.0,
        help="Per kept box: probability its class is swapped for another.",
    ),
    injected_out: Optional[Path] = typer.Option(
        None, "--injected-out",
        help="Write every injected error here as JSON lines (the truth a label-issue finder is scored against).",
    ),
    consensus: bool = typer.Option(
        False, "--consensus", help="Be the extra reviewer: answer the consensus copies instead."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Answer unanswered queued tasks with ground truth (demos and tests).

    With any of the --*-rate options, the answers carry label errors at those rates (overlooked,
    spurious, badly placed and class-swapped boxes), each one recorded (--injected-out).
    """
    from labelwise.review import annotate_simulated as run
    from labelwise.review.simulate import LabelNoise
    from labelwise.runtime import open_catalog

    label_noise = LabelNoise(drop=drop_rate, add=add_rate, shift=shift_rate, swap=swap_rate)
    if injected_out is not None and not label_noise.any and noise == 0.0:
        typer.echo("note: no noise asked for: the injected-errors file will be empty", err=True)
    wanted = label_noise if (label_noise.any or injected_out is not None) else None
    settings = settings_from(ctx)
    print_json(run(settings, open_catalog(settings), project, truth, noise, seed,
                   label_noise=wanted, injected_out=injected_out, consensus=consensus))
