"""``labelwise benchmark``: label-efficiency of every strategy against random sampling.

``labelwise benchmark [OPTIONS]`` runs the benchmark; ``labelwise benchmark [OPTIONS] base``
trains only the warm-start base detector. The options belong to the group, so they go before
the sub-command, and both build the same :class:`~labelwise.benchmark.config.BenchmarkConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TypeVar

import typer

from labelwise.cli.common import fail, friendly_errors, settings_from

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.benchmark.config import BenchmarkConfig

PROTOCOL_CHOICES = {"scratch": ("scratch",), "warm": ("warm",), "both": ("scratch", "warm")}
# Where the group callback leaves the config builder for a sub-command (click's shared ctx.meta).
CONFIG_KEY = "labelwise.benchmark.config"
RARE_CLASSES_EXPECTED = "distinct non-negative integer class ids separated by commas, e.g. 2,5,8"
T = TypeVar("T")

bench_app = typer.Typer(
    no_args_is_help=False,
    short_help="Every strategy vs random on a simulated oracle: labels needed for random's mAP50.",
)


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` group (runs the benchmark; ``base`` trains the base) to ``app``."""
    app.add_typer(bench_app, name="benchmark")


def _strategies(values: Optional[list[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(out)


def parse_rare_classes(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"2,5,8"`` -> ``(2, 5, 8)``; None stays None.

    Raises:
        ValueError: stating what was expected and what was given (empty item, not an integer,
            negative, or repeated).
    """
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    problem = ""
    ids: list[int] = []
    for part in parts:
        try:
            ids.append(int(part))
        except ValueError:
            problem = "an empty item" if not part else f"{part!r} is not an integer"
            break
        if ids[-1] < 0:
            problem = f"{ids[-1]} is negative"
            break
    if not problem:
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            problem = f"{', '.join(map(str, repeated))} repeated"
    if problem:
        raise ValueError(f"--rare-classes expects {RARE_CLASSES_EXPECTED}; got {value!r} ({problem})")
    return tuple(ids)


def _interrupted(run: Callable[[], T]) -> T:
    """Run ``run``; Ctrl-C and SIGTERM become one line and the conventional exit code."""
    from labelwise.benchmark.shutdown import BenchmarkInterrupted

    try:
        return run()
    except BenchmarkInterrupted as exc:
        typer.echo(f"error: {exc}; the worker processes were stopped", err=True)
        raise typer.Exit(128 + exc.signum) from None
    except KeyboardInterrupt:
        typer.echo("error: benchmark interrupted (Ctrl-C); the worker processes were stopped", err=True)
        raise typer.Exit(130) from None


def _log(message: str) -> None:
    typer.echo(message, err=True)


@bench_app.callback(invoke_without_command=True)
@friendly_errors
def benchmark(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="The ~15-minute preset (same as --preset quick)."),
    preset_name: str = typer.Option(
        "full", "--preset", help="quick, full, pool, segment or classify (see docs/benchmarks.md)."),
    task: Optional[str] = typer.Option(
        None, "--task",
        help="detect, classify or segment: the bundled data set, model family and curve metric "
        "(mAP50, top-1, mask mAP50). Default: the preset's (detect; segment and classify for "
        "those presets)."),
    strategies: Optional[list[str]] = typer.Option(
        None, "--strategies", "-s",
        help="Strategies to compare (repeat or comma-separate); random is always included. "
        "Default: every registered strategy except cold_start."),
    pseudo: Optional[list[str]] = typer.Option(
        None, "--pseudo",
        help="Strategies that also run as a semi-supervised twin '<name>+pseudo' (training.pseudo_labels "
        "on; warm protocol). Default: the preset's (pool: random, rare_class_diverse, edit_aware_diverse)."),
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
    preannotation_conf: Optional[float] = typer.Option(
        None, "--preannotation-conf", min=0.0, max=1.0,
        help="Boxes at or above it are pre-annotations; reviewer edits count against them (0.1)."),
    aggregation: Optional[str] = typer.Option(None, "--aggregation", help="Scoring: min, mean, topk_mean or sum."),
    mask_weight: Optional[float] = typer.Option(
        None, "--mask-weight", min=0.0, max=1.0,
        help="Scoring, segmentation: share of each instance's score taken by its mask stability (0)."),
    pool: Optional[Path] = typer.Option(None, "--pool", help="Custom data: folder of pool images."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Custom data: the pool's YOLO labels folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="Custom data: data.yaml with val and test splits."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest",
        help="Custom data: manifest.json with near-duplicate cluster ids and rare classes (digits format)."),
    rare_classes: Optional[str] = typer.Option(
        None, "--rare-classes",
        help="Custom data: class ids counted as rare, e.g. 2,5,8 (default: from --manifest, else the "
        "classes with under 5% of the boxes)."),
    base_weights: Optional[Path] = typer.Option(
        None, "--base-weights", help="Warm-start from this .pt instead of training a source-domain base."),
    base_epochs: Optional[int] = typer.Option(
        None, "--base-epochs", min=1, help="Epochs of the source-domain base detector (cached by recipe)."),
) -> None:
    """Replay the loop with a simulated oracle for every strategy x seed (and protocol) and
    compare labels needed to reach random's final mAP50. Writes results.csv, learning-curve
    PNGs, summary.md/json and MLflow runs (sqlite) into --out.

    With a sub-command, the options (given before it) configure that instead:
    labelwise benchmark --preset pool base    trains only the warm-start base.
    """
    if protocol not in PROTOCOL_CHOICES:
        fail(f"--protocol must be one of {sorted(PROTOCOL_CHOICES)}; got {protocol!r}")
    custom = [pool, truth, data]
    if any(v is not None for v in custom) and not all(v is not None for v in custom):
        fail("custom data needs all of --pool, --truth and --data; got only some of them")
    if pool is None and (manifest is not None or rare_classes is not None):
        given = [n for n, v in (("--manifest", manifest), ("--rare-classes", rare_classes)) if v is not None]
        fail(f"{' and '.join(given)} only apply to custom data, which needs --pool, --truth and --data; "
             f"got {' and '.join(given)} without them (the bundled data set has its own manifest)")
    rare = parse_rare_classes(rare_classes)
    if manifest is not None and not manifest.is_file():
        fail(f"--manifest must be an existing manifest.json file; got {str(manifest)!r}, which is not a file")
    if pool is not None and "warm" in PROTOCOL_CHOICES[protocol] and base_weights is None:
        fail("the warm protocol on custom data needs --base-weights (your pretrained .pt); "
             "or pass --protocol scratch")
    name = "quick" if quick else preset_name
    task_type: str | None = None
    if task is not None:
        try:
            from labelwise.task_types import TaskType

            task_type = TaskType.parse(task).value
        except ValueError as exc:
            fail(f"--task: {exc}")

    def build() -> BenchmarkConfig:
        from labelwise.benchmark.config import DataSpec, preset

        spec = (DataSpec(pool, truth, data, manifest=manifest, rare_classes=rare)  # type: ignore[arg-type]
                if pool is not None else None)
        suffix = "" if task_type in (None, "detect", name) else f"-{task_type}"
        target = out or settings_from(ctx).state_dir / "benchmark" / f"{name}{suffix}"
        return preset(name, target, task=task_type, strategies=_strategies(strategies) or None,
                      pseudo_strategies=_strategies(pseudo) or None, seeds=seeds,
                      protocols=PROTOCOL_CHOICES[protocol], rounds=rounds, per_round=per_round,
                      initial=initial, workers=workers, threads=threads, imgsz=imgsz, epochs=epochs,
                      min_image_passes=min_image_passes, diversity_weight=diversity_weight, data=spec,
                      confidence_floor=confidence_floor, preannotation_conf=preannotation_conf,
                      aggregation=aggregation, mask_weight=mask_weight,
                      base_weights=base_weights, base_epochs=base_epochs)

    if ctx.invoked_subcommand is not None:
        # The sub-command builds it: `benchmark base --help` must not read settings or presets.
        ctx.meta[CONFIG_KEY] = build
        return
    from labelwise.benchmark.runner import run_benchmark

    cfg = build()
    result = _interrupted(lambda: run_benchmark(cfg, log=_log))
    typer.echo(result.summary_md.read_text(encoding="utf-8"))
    if result.failed:
        raise typer.Exit(1)


def config_from(ctx: typer.Context) -> BenchmarkConfig:
    """The BenchmarkConfig the ``benchmark`` options (given before the sub-command) describe."""
    build = ctx.meta.get(CONFIG_KEY)
    if build is None:
        raise RuntimeError("no benchmark options in this context; run the command as `labelwise benchmark ... base`")
    return build()


@bench_app.command("base")
@friendly_errors
def base(ctx: typer.Context) -> None:
    """Train only the warm-start base detector and print its .pt path.

    The options of `labelwise benchmark` go before `base`:
    labelwise benchmark --preset pool base
    The base is cached by recipe under <out>/cache: a later benchmark with the
    same options reuses it. With --base-weights that file is checked and printed.
    """
    from labelwise.benchmark.runner import prepare_base

    cfg = config_from(ctx)
    path = _interrupted(lambda: prepare_base(cfg, log=_log))
    typer.echo(str(path))
