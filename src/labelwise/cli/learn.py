"""``labelwise propose`` and ``labelwise learn``: the two halves of a round without Prefect
(the same use cases as the flows, :mod:`labelwise.rounds.proposing` and
:mod:`labelwise.rounds.learning`)."""

from __future__ import annotations

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
    app.command("propose")(propose)
    app.command("learn")(learn)


def _say(line: str) -> None:
    typer.echo(line, err=True)


@friendly_errors
def propose(
    ctx: typer.Context,
    project: str = project_option(),
    strategy: Optional[str] = strategy_option(),
    limit: Optional[int] = limit_option(),
    diversity_weight: Optional[float] = diversity_weight_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="A .pt or model yaml (default: the champion, else the config's)."
    ),
    group: Optional[str] = typer.Option(
        "active-learning", "--group", help="Upload group of the queued tasks ('' for none)."
    ),
    shard_size: int = typer.Option(256, "--shard-size", min=1, help="Images per auto-label shard."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Auto-label the pool, score it, record the round and queue its batch in Label Studio.

    One step per line on stderr, the round's summary as JSON on stdout. The same recipe as the
    propose-round flow, run in this process (shards one after the other).
    """
    from labelwise.rounds.proposing import ProposeRequest, label_pool_in_process, propose_round

    settings = settings_from(ctx)
    request = ProposeRequest(project, strategy, limit, diversity_weight, model, group or None, seed)
    outcome = propose_round(settings, request, say=_say,
                            label_pool=label_pool_in_process(settings, project, shard_size, say=_say))
    print_json(outcome.as_dict())


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
    outcome = learn_round(settings, project, number, campaign, say=_say, learnt_by="labelwise learn")
    if outcome.skipped:
        fail(f"round {number} of project {project!r} was not learnt: {outcome.skipped}")
    print_json(outcome.as_dict())
