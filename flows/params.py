"""Flow parameters as pydantic models (what the Prefect UI renders as a form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ProposeParams(BaseModel):
    """Propose a round: auto-label the pool, score it and queue the batch for review."""

    project: str
    config: str | None = Field(None, description="Labelwise YAML config file.")
    strategy: str | None = Field(None, description="Default: from config; cold_start without a trained model.")
    limit: int | None = Field(None, ge=1)
    diversity_weight: float | None = Field(None, ge=0.0, le=1.0)
    model: str | None = Field(None, description="Explicit .pt/yaml; default: the champion, else config.")
    group: str | None = Field("active-learning", description="Upload group of the queued tasks.")
    shard_size: int = Field(256, ge=1, description="Images per mapped auto-label task.")
    dask_address: str | None = Field(None, description="Run auto-label shards on this Dask cluster.")
    dask_workers: int = Field(0, ge=0, description="Or on a local Dask cluster of N workers (0 = threads).")
    seed: int = 0


class LearnParams(BaseModel):
    """Learn from a reviewed round: pull, retrain, evaluate, track, promote."""

    project: str
    round_number: int | None = Field(None, description="Default: the newest round not learned yet.")
    config: str | None = None
    campaign: str = Field("default", description="MLflow parent run the round is logged under.")


class LoopParams(BaseModel):
    """Several propose -> review -> learn rounds in one run (demo, simulated annotator)."""

    project: str
    config: str | None = None
    rounds: int = Field(3, ge=1)
    strategy: str | None = None
    limit: int | None = Field(None, ge=1)
    diversity_weight: float | None = Field(None, ge=0.0, le=1.0)
    group: str | None = "active-learning"
    annotator: Literal["simulated", "human"] = "human"
    truth_dir: str | None = Field(None, description="Ground-truth labels for the simulated annotator.")
    noise: float = Field(0.0, ge=0.0, le=1.0)
    review_timeout_s: float = Field(3600.0, gt=0)
    poll_s: float = Field(2.0, gt=0)
    campaign: str = "default"
    handoff_s: float = Field(
        0.0, ge=0.0, description="Seconds to wait for the learn run the webhook started to take a "
        "round the webhook marked reviewed, before learning it in the loop (0 = always here).")
    stop_on_plateau: bool = False
    seed: int = 0


class ReconcileParams(BaseModel):
    """Find reviewed rounds whose webhook was lost and learn them."""

    project: str
    config: str | None = None
    campaign: str = "default"
