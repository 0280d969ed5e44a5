"""``labelwise benchmark``: label-efficiency of every strategy against random sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from labelwise.cli.common import fail, friendly_errors, settings_from

PROTOCOL_CHOICES = {"scratch": ("scratch",), "warm": ("warm",), "both": ("scratch", "warm")}


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` command to the root app."""
    app.command("benchmark")(benchmark)


def _strategies(values: Optional[list[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(out)


@friendly_errors
def benchmark(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="The ~15-minute preset (same as --preset quick)."),
    preset_name: str = typer.Option("full", "--preset", help="quick or full (see docs/benchmarks.md)."),
    strategies: Optional[list[str]] = typer.Option(
        None, "--strategies", "-s",
        help="Strategies to compare (repeat or comma-separate); random is always included. "
        "Default: every registered strategy except cold_start."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Seeds per strategy (preset: 3 full, 2 quick)."),
    protocol: str = typer.Option("both", "--protocol", help="scratch, warm or both."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=0, help="Selection rounds after round 0."),
    per_round: Optional[int] = typer.Option(None, "--per-round", min=1, help="Images labelled per round."),
    initial: Optional[int] = typer.Option(None, "--initial", min=1, help="Images in the shared initial set."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <state_dir>/benchmark/<preset>)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Trajectories trained side by side."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads per worker."),
    imgsz: Optional[int] = typer.Option(None, "--imgsz", min=32),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epoch floor per round."),
    min_image_passes: Optional[int] = typer.Option(None, "--min-image-passes", min=0),
    diversity_weight: Optional[float] = typer.Option(None, "--diversity-weight", min=0.0, max=1.0),
    confidence_floor: Optional[float] = typer.Option(
        None, "--confidence-floor", min=0.0, max=1.0, help="Scoring: boxes below it are not aggregated (0.25)."),
    aggregation: Optional[str] = typer.Option(None, "--aggregation", help="Scoring: min, mean, topk_mean or sum."),
    pool: Optional[Path] = typer.Option(None, "--pool", help="Custom data: folder of pool images."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Custom data: the pool's YOLO labels folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="Custom data: data.yaml with val and test splits."),
    base_weights: Optional[Path] = typer.Option(
        None, "--base-weights", help="Warm-start from this .pt instead of training a source-domain base."),
    base_epochs: Optional[int] = typer.Option(
        None, "--base-epochs", min=1, help="Epochs of the source-domain base detector (cached by recipe)."),
) -> None:
    """Replay the loop with a simulated oracle for every strategy x seed (and protocol) and
    compare labels needed to reach random's final mAP50. Writes results.csv, learning-curve
    PNGs, summary.md/json and MLflow runs (sqlite) into --out."""
    from labelwise.benchmark.config import DataSpec, preset
    from labelwise.benchmark.runner import run_benchmark

    if protocol not in PROTOCOL_CHOICES:
        fail(f"--protocol must be one of {sorted(PROTOCOL_CHOICES)}; got {protocol!r}")
    custom = [pool, truth, data]
    if any(v is not None for v in custom) and not all(v is not None for v in custom):
        fail("custom data needs all of --pool, --truth and --data; got only some of them")
    spec = DataSpec(pool, truth, data) if pool is not None else None  # type: ignore[arg-type]
    if spec is not None and "warm" in PROTOCOL_CHOICES[protocol] and base_weights is None:
        fail("the warm protocol on custom data needs --base-weights (your pretrained .pt); "
             "or pass --protocol scratch")
    name = "quick" if quick else preset_name
    target = out or settings_from(ctx).state_dir / "benchmark" / name
    cfg = preset(name, target, strategies=_strategies(strategies) or None, seeds=seeds,
                 protocols=PROTOCOL_CHOICES[protocol], rounds=rounds, per_round=per_round,
                 initial=initial, workers=workers, threads=threads, imgsz=imgsz, epochs=epochs,
                 min_image_passes=min_image_passes, diversity_weight=diversity_weight, data=spec,
                 confidence_floor=confidence_floor, aggregation=aggregation,
                 base_weights=base_weights, base_epochs=base_epochs)
    result = run_benchmark(cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(result.summary_md.read_text(encoding="utf-8"))
    if result.failed:
        raise typer.Exit(1)
