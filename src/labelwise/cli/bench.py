"""``labelwise bench``: commands that print figures (speed and overhead targets live here)."""

from __future__ import annotations

import typer

from labelwise.cli.common import friendly_errors, print_json, settings_from

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)


@app.command("scoring")
@friendly_errors
def scoring(
    ctx: typer.Context,
    images: int = typer.Option(256, "--images", min=8, help="Pool images for the overhead figure."),
    pool: int = typer.Option(100_000, "--pool", min=100, help="Embeddings for the selection figure."),
    labelled: int = typer.Option(10_000, "--labelled", min=0),
    k: int = typer.Option(50, "--k", min=1),
) -> None:
    """Score-batch overhead vs auto-label inference (goal <= 5%) and selection speed at scale
    vs plain greedy k-center (goal >= 5x)."""
    from labelwise.perf.scoring_overhead import bench_overhead
    from labelwise.perf.selection_scale import bench_selection

    sel = bench_selection(pool=pool, labelled=labelled, k=k)
    overhead = bench_overhead(images=images, settings=settings_from(ctx))
    print_json({"selection": sel.as_dict(), "overhead": overhead.as_dict()})
    typer.echo(
        f"selection of {k} from {pool:,} ({labelled:,} labelled): {sel.diverse_seconds:.3f} s; "
        f"k-center pool-only {sel.kcenter_pool_only_seconds:.3f} s ({sel.speedup_vs_pool_only:.1f}x), "
        f"with labelled {sel.kcenter_with_labelled_seconds:.3f} s ({sel.speedup_vs_with_labelled:.1f}x)",
        err=True,
    )
    typer.echo(
        f"score-batch {overhead.score_batch_seconds:.3f} s vs predict {overhead.predict_seconds:.3f} s "
        f"on {images} images: overhead {100 * overhead.overhead_vs_predict:.1f}% (goal <= 5%)",
        err=True,
    )


@app.command("serving")
@friendly_errors
def serving(
    requests: int = typer.Option(200, "--requests", min=1),
    concurrency: int = typer.Option(4, "--concurrency", min=1),
    imgsz: int = typer.Option(128, "--imgsz", min=32),
) -> None:
    """p50/p95 of /v1/predict vs the bare model (goal <= 1.15x) and requests/s under load."""
    from labelwise.perf.serving import bench_serving

    print_json(bench_serving(requests=requests, concurrency=concurrency, imgsz=imgsz))


@app.command("labelstudio-import")
@friendly_errors
def labelstudio_import(
    ctx: typer.Context,
    tasks: int = typer.Option(1000, "--tasks", min=1),
) -> None:
    """Queue TASKS tasks with pre-annotations into the configured Label Studio (goal <= 10 s)."""
    from labelwise.labelstudio import LabelStudioClient
    from labelwise.perf.labelstudio_import import bench_import

    settings = settings_from(ctx)
    with LabelStudioClient.from_settings(settings.labelstudio) as client:
        print_json(bench_import(client, n_tasks=tasks))
