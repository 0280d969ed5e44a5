"""benchmark: the strategy benchmark (every strategy vs random, simulated oracle) from the UI.

Composition only: the parameters become a :class:`labelwise.benchmark.config.BenchmarkConfig`
and :func:`labelwise.benchmark.runner.run_benchmark` does the work (a process pool of
``workers`` trainings side by side). The outputs land in ``out`` as with ``labelwise benchmark``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

PROTOCOLS = {"scratch": ("scratch",), "warm": ("warm",), "both": ("scratch", "warm")}


class BenchmarkParams(BaseModel):
    """Benchmark parameters (None = the preset's value)."""

    preset: Literal["quick", "full", "pool", "segment", "classify"] = Field(
        "quick", description="See docs/benchmarks.md for measured durations."
    )
    task: Literal["detect", "classify", "segment"] | None = Field(
        None, description="The bundled data set, model family and curve metric (default: the preset's).")
    out: str = Field(".labelwise/benchmark", description="Output folder (CSV, PNGs, summary, MLflow).")
    strategies: list[str] | None = Field(None, description="Default: every registered strategy but cold_start.")
    pseudo: list[str] | None = Field(
        None, description="Strategies that also run as a '+pseudo' twin (default: the preset's)."
    )
    seeds: int | None = Field(None, ge=1)
    protocol: Literal["scratch", "warm", "both"] = "both"
    rounds: int | None = Field(None, ge=0)
    per_round: int | None = Field(None, ge=1)
    workers: int = Field(2, ge=1, description="Trajectories trained side by side (one core each).")
    diversity_weight: float | None = Field(None, ge=0.0, le=1.0)
    mask_weight: float | None = Field(
        None, ge=0.0, le=1.0, description="Segmentation: share of each instance's score taken by its "
        "mask stability (default: the product's scoring.mask_weight).")
    base_weights: str | None = Field(None, description="Warm-start .pt instead of the source-domain base.")


@flow(name="benchmark", flow_run_name="benchmark-{params.preset}")
def benchmark(params: BenchmarkParams) -> dict:
    from labelwise.benchmark.config import preset
    from labelwise.benchmark.runner import run_benchmark

    logger = get_run_logger()
    cfg = preset(
        params.preset, Path(params.out), task=params.task,
        strategies=tuple(params.strategies) if params.strategies else None,
        pseudo_strategies=tuple(params.pseudo) if params.pseudo else None,
        seeds=params.seeds, protocols=PROTOCOLS[params.protocol], rounds=params.rounds,
        per_round=params.per_round, workers=params.workers, diversity_weight=params.diversity_weight,
        mask_weight=params.mask_weight,
        base_weights=Path(params.base_weights) if params.base_weights else None,
    )
    return run_benchmark(cfg, log=logger.info).as_dict()
