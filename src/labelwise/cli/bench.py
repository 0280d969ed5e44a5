"""``labelwise bench``: commands that print figures (speed and overhead targets live here)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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


@app.command("label-issues")
@friendly_errors
def label_issues(
    ctx: typer.Context,
    seeds: int = typer.Option(3, "--seeds", min=1, help="Runs, each with its own noise, folds and training seed."),
    folds: int = typer.Option(2, "--folds", min=2, help="K of the K-fold grading."),
    drop: float = typer.Option(0.05, "--drop-rate", min=0.0, max=1.0, help="Per box: left out."),
    add: float = typer.Option(0.05, "--add-rate", min=0.0, max=1.0, help="Per box: a spurious box added."),
    shift: float = typer.Option(0.05, "--shift-rate", min=0.0, max=1.0, help="Per box: moved (IoU < 0.5)."),
    swap: float = typer.Option(0.05, "--swap-rate", min=0.0, max=1.0, help="Per box: another class."),
    pool_images: int = typer.Option(300, "--pool-images", min=8, help="Bundled digits pool size."),
    imgsz: int = typer.Option(96, "--imgsz", min=32),
    workers: int = typer.Option(2, "--workers", min=1, help="Fold trainings side by side."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads per worker."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epoch floor (default: the product's)."),
    min_image_passes: Optional[int] = typer.Option(None, "--min-image-passes", min=0),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <state_dir>/bench/label-issues)."),
) -> None:
    """Precision and recall of the label-issue finder at the top 5 % / 10 % of images, per kind,
    against errors injected at known rates (K-fold: no image graded by a model trained on it).
    Prints JSON; the table goes to stderr and OUT/label_issues.md."""
    from labelwise.perf.label_issues import bench_label_issues, config_from, text_table

    target = out or settings_from(ctx).state_dir / "bench" / "label-issues"
    cfg = config_from({"seeds": seeds, "folds": folds, "drop": drop, "add": add, "shift": shift,
                       "swap": swap, "pool_images": pool_images, "imgsz": imgsz, "workers": workers,
                       "threads": threads, "epochs": epochs, "min_image_passes": min_image_passes},
                      target)
    result = bench_label_issues(cfg, log=lambda m: typer.echo(m, err=True))
    print_json(result.as_dict())
    typer.echo(text_table(result.summary), err=True)


@app.command("scale")
@friendly_errors
def scale(
    ctx: typer.Context,
    sizes: str = typer.Option("10000,100000", "--sizes", help="Pool sizes, comma-separated (1000000 allowed)."),
    seed: int = typer.Option(0, "--seed"),
    profile: bool = typer.Option(False, "--profile", help="Top 5 functions of each measurement (cProfile)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <state_dir>/bench/scale)."),
) -> None:
    """Score-batch, auto-label's catalog writes (per 1,000 images) and queue's catalog part on
    synthetic catalogs of each size, each measurement in its own subprocess (seconds, peak RSS,
    growth to the next size). Targets: score-batch over 1M under 60 s and 4 GB; auto-label
    peak RSS flat in the pool size. Prints JSON; the table goes to stderr."""
    from labelwise.perf.scale import ScaleConfig, bench_scale, text_table

    try:
        parsed = tuple(int(s.replace("_", "")) for s in sizes.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter(f"--sizes must be comma-separated integers; got {sizes!r}") from None
    target = out or settings_from(ctx).state_dir / "bench" / "scale"
    cfg = ScaleConfig(sizes=parsed, out=target, seed=seed, profile=profile)
    result = bench_scale(cfg, log=lambda m: typer.echo(m, err=True))
    print_json(result.as_dict())
    typer.echo(text_table(result), err=True)


@app.command("autolabel")
@friendly_errors
def autolabel(
    ctx: typer.Context,
    images: int = typer.Option(256, "--images", min=1, help="Bundled digits pool images."),
    sizes: str = typer.Option("128,640", "--sizes", help="Inference image sizes, comma-separated."),
    backends: str = typer.Option("torch,onnx,openvino", "--backends", help="torch first (the reference)."),
    batch: int = typer.Option(16, "--batch", min=1),
    conf: float = typer.Option(0.01, "--conf", min=0.0, max=1.0),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats, alternated; best of."),
    seed: int = typer.Option(0, "--seed"),
    model: str = typer.Option("yolov8n.yaml", "--model", help="A model yaml (random init) or a .pt."),
    profile: bool = typer.Option(False, "--profile", help="Top functions of one torch auto-label (cProfile)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <state_dir>/bench/autolabel)."),
) -> None:
    """Auto-label images/s per inference backend (torch, onnx, openvino) against a raw YOLO.predict
    loop on the same backend and images, at each size, and the class vectors' largest difference
    from torch (goals: auto-label >= 0.9x the raw loop; fastest backend >= 1.5x the torch loop at
    640 px; class vectors within 1e-3). Prints JSON; the table goes to stderr and OUT/autolabel.md."""
    from labelwise.perf.autolabel import AutoLabelBenchConfig, bench_autolabel, text_table

    try:
        parsed = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter(f"--sizes must be comma-separated integers; got {sizes!r}") from None
    target = out or settings_from(ctx).state_dir / "bench" / "autolabel"
    cfg = AutoLabelBenchConfig(images=images, sizes=parsed, backends=tuple(b.strip() for b in backends.split(",")
                                                                             if b.strip()),
                               batch=batch, conf=conf, repeats=repeats, seed=seed, model=model, out=target,
                               profile=profile)
    result = bench_autolabel(cfg, log=lambda m: typer.echo(m, err=True))
    print_json(result.as_dict())
    typer.echo(text_table(result), err=True)
