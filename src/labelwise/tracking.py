"""MLflow: one experiment per project, a parent run per campaign, a child run per round, and a
registered model per project whose ``champion`` alias marks the deployed weights.

Uses ``MlflowClient`` with explicit run ids throughout (no fluent active run: that is
thread-local and breaks under Prefect's task runners).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelwise.promotion import PromotionDecision, decide_promotion

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
PRIMARY_METRIC = "mAP50-95"


@dataclass(frozen=True)
class ChampionInfo:
    model_name: str
    version: str
    run_id: str | None
    metric: float | None


def model_name_for(project: str) -> str:
    return f"labelwise-{project}"


class Tracker:
    """MLflow tracking and registry for one project."""

    def __init__(self, tracking_uri: str, project: str, experiment_prefix: str = "labelwise") -> None:
        import mlflow
        from mlflow import MlflowClient

        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._mlflow = mlflow
        self.project = project
        self.model_name = model_name_for(project)
        self.experiment_name = f"{experiment_prefix}/{project}"
        self.experiment_id = self._ensure_experiment()

    def _ensure_experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is not None:
            return exp.experiment_id
        artifact_location = None
        if self.tracking_uri.startswith("sqlite:///"):
            root = Path(self.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
            artifact_location = root.resolve().as_uri()
        return self.client.create_experiment(self.experiment_name, artifact_location=artifact_location)

    # Runs -------------------------------------------------------------------------------
    def start_campaign(self, name: str, params: Mapping[str, Any]) -> str:
        """A parent run for a series of rounds; returns its run id (left open)."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"labelwise.kind": "campaign"})
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def find_campaign(self, name: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`labelwise.kind` = 'campaign' and attributes.run_name = '{name}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def ensure_campaign(self, name: str, params: Mapping[str, Any]) -> str:
        return self.find_campaign(name) or self.start_campaign(name, params)

    def start_round(self, parent_run_id: str | None, round_number: int, params: Mapping[str, Any]) -> str:
        tags = {"labelwise.kind": "round", "labelwise.round": str(round_number)}
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=f"round-{round_number}", tags=tags)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(run_id, key, str(value)[:6000])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            if value is not None:
                self.client.log_metric(run_id, key, float(value), step=step)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def round_metrics(self) -> list[dict[str, Any]]:
        """Every finished round run of this project: round number, params and metrics."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string="tags.`labelwise.kind` = 'round'", max_results=1000
        )
        out = []
        for run in runs:
            out.append({
                "run_id": run.info.run_id,
                "round": int(run.data.tags.get("labelwise.round", -1)),
                "status": run.info.status,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
            })
        return sorted(out, key=lambda r: (r["round"], r["run_id"]))

    # Registry ---------------------------------------------------------------------------
    def register_weights(self, run_id: str, weights: Path) -> str:
        """Log ``weights`` under the run's ``weights/`` and register them; returns the version."""
        self.client.log_artifact(run_id, str(weights), "weights")
        try:
            self.client.get_registered_model(self.model_name)
        except Exception:  # noqa: BLE001 - MLflow raises its own RestException subtypes
            self.client.create_registered_model(self.model_name)
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/weights"
        mv = self.client.create_model_version(self.model_name, source, run_id=run_id)
        return str(mv.version)

    def champion(self) -> ChampionInfo | None:
        try:
            mv = self.client.get_model_version_by_alias(self.model_name, CHAMPION)
        except Exception:  # noqa: BLE001 - no model or no alias yet
            return None
        metric = None
        if mv.run_id:
            metric = self.client.get_run(mv.run_id).data.metrics.get(PRIMARY_METRIC)
        return ChampionInfo(self.model_name, str(mv.version), mv.run_id, metric)

    def promote(self, version: str, candidate_metric: float, tolerance: float) -> tuple[PromotionDecision, bool]:
        """Move ``champion`` to ``version`` if the rule allows; returns (decision, moved).

        Idempotent: when the alias already points at ``version`` nothing moves again.
        """
        current = self.champion()
        if current is not None and current.version == str(version):
            return PromotionDecision(True, "already champion", candidate_metric, current.metric), False
        decision = decide_promotion(candidate_metric, current.metric if current else None, tolerance)
        if decision.promote:
            self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))
        return decision, decision.promote

    def download_champion(self, dst: Path) -> Path | None:
        """Download the champion's weights file into ``dst``; None when there is no champion."""
        info = self.champion()
        if info is None:
            return None
        dst.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dst) as tmp:
            mv = self.client.get_model_version(self.model_name, info.version)
            local = Path(self._mlflow.artifacts.download_artifacts(
                artifact_uri=mv.source, dst_path=tmp, tracking_uri=self.tracking_uri))
            files = sorted(local.rglob("*.pt")) if local.is_dir() else [local]
            if not files:
                raise FileNotFoundError(f"champion {self.model_name} v{info.version} has no .pt file")
            target = dst / f"{self.model_name}-v{info.version}.pt"
            shutil.copy2(files[0], target)
        return target
