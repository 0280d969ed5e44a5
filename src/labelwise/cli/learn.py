"""``labelwise learn``: learn a reviewed round without Prefect (the same use case as the flow)."""

from __future__ import annotations

from typing import Optional

import typer

from labelwise.cli.common import fail, friendly_errors, print_json, project_option, settings_from


def register(app: typer.Typer) -> None:
    app.command("learn")(learn)


@friendly_errors
def learn(
    ctx: typer.Context,
    project: str = project_option(),
    round_number: Optional[int] = typer.Option(
        None, "--round", "-r", help="Round (default: the newest round waiting to be learned)."
    ),
    campaign: str = typer.Option("default", "--campaign", help="MLflow campaign to log it under."),
) -> None:
    """Pull the round's reviewed labels, retrain, evaluate, track and promote, once per batch.

    The round must be queued (its review complete) or reviewed; a round another run holds or
    learnt is left alone and the command says so (exit 2). A failed step gives the round back
    (reviewed), so the command can run again.
    """
    from labelwise.rounds import find_round
    from labelwise.rounds.learning import learn_round

    settings = settings_from(ctx)
    number = int(find_round(settings, project, round_number)["number"])
    outcome = learn_round(settings, project, number, campaign, say=lambda line: typer.echo(line, err=True),
                          learnt_by="labelwise learn")
    if outcome.skipped:
        fail(f"round {number} of project {project!r} was not learnt: {outcome.skipped}")
    print_json(outcome.as_dict())
