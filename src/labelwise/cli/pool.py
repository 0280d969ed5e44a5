"""Pool commands: ``auto-label`` and ``score-batch``."""

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
    app.command("auto-label")(auto_label)
    app.command("score-batch")(score_batch)


@friendly_errors
def auto_label(
    ctx: typer.Context,
    project: str = project_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="A .pt weights path or a model yaml (default from config)."
    ),
    embedder: Optional[str] = typer.Option(
        None, "--embedder", help="auto, clip, detector or none (default from config)."
    ),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Images per batch."),
    write_batch: Optional[int] = typer.Option(
        None, "--write-batch", min=1,
        help="Images held before they are stored (default from config: detector.write_batch)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Predict boxes with full class distributions (and embeddings) for unlabelled images.

    Resumable: images this model version already predicted are skipped.
    """
    from tqdm import tqdm

    from labelwise.autolabel import auto_label as run
    from labelwise.runtime import load_embedder, load_model, open_catalog

    settings = settings_from(ctx)
    if embedder is not None:
        settings = settings.model_copy(update={"embedder": settings.embedder.model_copy(update={"kind": embedder})})
    catalog = open_catalog(settings)
    record = catalog.project(project)
    detector = load_model(settings, record, model)
    emb = load_embedder(settings, detector)
    total = catalog.status_counts(record)
    with tqdm(total=sum(total.values()), unit="img", disable=not progress, file=None) as bar:
        report = run(catalog, record, detector, emb, batch or settings.detector.batch, progress=bar.update,
                     write_batch=write_batch or settings.detector.write_batch)
    for _path, reason in report.failed:  # the reason names the file
        typer.echo(f"skipped: {reason}", err=True)
    print_json(report.as_dict())


@friendly_errors
def score_batch(
    ctx: typer.Context,
    project: str = project_option(),
    strategy: Optional[str] = strategy_option(),
    limit: Optional[int] = limit_option(),
    diversity_weight: Optional[float] = diversity_weight_option(),
    model_version: Optional[str] = typer.Option(None, "--model-version", help="Default: latest."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    as_json: bool = typer.Option(True, "--json/--table", help="JSON (default) or a table."),
) -> None:
    """Print the queue of images most worth labelling, most uncertain first."""
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    settings = settings_from(ctx)
    request = ScoreBatchRequest.from_settings(
        settings, project, strategy=strategy, limit=limit, diversity_weight=diversity_weight,
        model_version=model_version, seed=seed,
    )
    batch = build_score_batch(open_catalog(settings), settings, request, record=False)
    if as_json:
        print_json(batch.as_json())
        return
    typer.echo(f"project {batch.project_id}  strategy {batch.strategy}  model {batch.model_version}")
    typer.echo(f"{'#':>3}  {'image_id':<16}  {'score':>7}  {'lc':>6}  {'margin':>6}  {'ent':>6}  thumbnail")
    for i, item in enumerate(batch.queue, 1):
        s = item.scores
        typer.echo(f"{i:>3}  {item.image_id:<16}  {item.uncertainty_score:7.4f}  "
                   f"{s['lowest_confidence']:6.3f}  {s['margin_sampling']:6.3f}  {s['entropy']:6.3f}  {item.thumbnail}")
