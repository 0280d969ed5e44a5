"""The learn half of a round: retrain -> evaluate on the held-out set -> track -> promote.

Each function takes settings and plain values and returns plain values, so a CLI command, a
Prefect task or a test calls it the same way.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import Settings
from labelwise.training import build_training_set, holdout_data_yaml, train_round

CHAMPION_PREFIX = "models:/"


@dataclass(frozen=True)
class BaseModel:
    ref: str
    source: str  # "champion" | "configured" | "explicit"
    registry_version: str | None = None


def tracker_for(settings: Settings, project: str):  # type: ignore[no-untyped-def]
    from labelwise.tracking import Tracker

    return Tracker(settings.resolved_tracking_uri, project, settings.tracking.experiment_prefix)


def resolve_base_model(settings: Settings, project: str, explicit: str | None = None) -> BaseModel:
    """The model a round starts from: explicit ref, else (``training.start_from``) the registry
    champion or the configured ``detector.model``.

    With ``start_from: champion`` (default) the champion is used once there is one; before the
    first promotion, and always with ``start_from: base``, the configured model. A
    ``models:/<name>@champion`` ref (or ``@champion`` alone) is downloaded from the registry
    into ``state_dir/models``.
    """
    if explicit and not explicit.startswith(CHAMPION_PREFIX):
        return BaseModel(explicit, "explicit")
    if settings.training.start_from == "base" and not explicit:
        return BaseModel(settings.detector.model, "configured")
    tracker = tracker_for(settings, project)
    info = tracker.champion()
    if info is not None:
        path = tracker.download_champion(settings.models_dir / project)
        return BaseModel(str(path), "champion", info.version)
    if explicit:
        raise FileNotFoundError(f"{explicit}: project {project!r} has no champion model yet")
    return BaseModel(settings.detector.model, "configured")


@dataclass(frozen=True)
class RetrainResult:
    weights: str
    model_version: str
    base_model: str
    seconds: float
    epochs: int
    labelled_images: int
    labelled_boxes: int
    class_box_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrain(
    settings: Settings, catalog: Catalog, project: ProjectRecord, round_number: int, base_model: str,
) -> RetrainResult:
    """Fine-tune ``base_model`` on every labelled image of the project by the one recipe
    (:func:`labelwise.training.train_round` under ``settings.training``).

    The weights are copied to ``state_dir/models/<project>/round-<n>.pt``.
    """
    from labelwise.runtime import load_detector

    ts = build_training_set(catalog, project, settings.state_dir / "datasets" / project.name / f"round-{round_number}")
    detector = load_detector(settings, project.class_names, base_model)
    result = train_round(detector, ts.data_yaml, settings.training, ts.n_images,
                         settings.runs_dir / project.name, name=f"round-{round_number}")
    target = settings.models_dir / project.name / f"round-{round_number}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(result.weights, target)
    trained = load_detector(settings, project.class_names, str(target))
    return RetrainResult(str(target), trained.version, base_model, result.seconds, result.epochs,
                         ts.n_images, ts.n_boxes, ts.class_box_counts)


def evaluate(settings: Settings, project: ProjectRecord, weights: str) -> dict[str, Any]:
    """Precision, recall, mAP50, mAP50-95 (and per class) on the project's held-out split."""
    from labelwise.runtime import load_detector

    data_yaml, split = holdout_data_yaml(project)
    detector = load_detector(settings, project.class_names, weights)
    result = detector.evaluate(data_yaml, split, out_dir=settings.runs_dir / project.name / "eval")
    return asdict(result)


@dataclass(frozen=True)
class TrackedRound:
    run_id: str
    registered_version: str


def round_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """The headline metrics under the names shown everywhere."""
    return {
        "precision": float(evaluation["precision"]),
        "recall": float(evaluation["recall"]),
        "mAP50": float(evaluation["map50"]),
        "mAP50-95": float(evaluation["map50_95"]),
    }


def track_round(
    settings: Settings,
    project: ProjectRecord,
    round_number: int,
    campaign: str,
    params: dict[str, Any],
    retrained: dict[str, Any],
    evaluation: dict[str, Any],
    extra_metrics: dict[str, float] | None = None,
    artifacts: dict[str, str] | None = None,
) -> TrackedRound:
    """One MLflow child run per round (under the campaign's parent run), weights registered."""
    from labelwise.reports import learning_curve

    tracker = tracker_for(settings, project.name)
    parent = tracker.ensure_campaign(campaign, {"project": project.name})
    run_id = tracker.start_round(parent, round_number, {**params, "base_model": retrained["base_model"],
                                                         "epochs": retrained["epochs"]})
    metrics = round_metrics(evaluation)
    metrics.update({f"AP50/{k}": v for k, v in evaluation.get("per_class_ap50", {}).items()})
    metrics.update({
        "labelled_images": retrained["labelled_images"],
        "labelled_boxes": retrained["labelled_boxes"],
        "seconds/train": retrained["seconds"],
        "seconds/evaluate": evaluation.get("seconds", 0.0),
    })
    metrics.update(extra_metrics or {})
    tracker.log_metrics(run_id, metrics, step=round_number)
    tracker.log_metrics(parent, round_metrics(evaluation), step=round_number)
    for name, path in (artifacts or {}).items():
        if path and Path(path).exists():
            tracker.log_artifact(run_id, Path(path), name)
    history = [r for r in tracker.round_metrics() if "mAP50-95" in r["metrics"]]
    points = sorted((r["metrics"].get("labelled_images", 0.0), r["metrics"]["mAP50-95"]) for r in history)
    curve = learning_curve({project.name: points}, settings.state_dir / "reports" / project.name /
                           f"learning-curve-round-{round_number}.png", title=f"{project.name}: mAP50-95 vs labels")
    tracker.log_artifact(run_id, curve, "plots")
    (settings.state_dir / "reports" / project.name).mkdir(parents=True, exist_ok=True)
    summary = settings.state_dir / "reports" / project.name / f"round-{round_number}.json"
    summary.write_text(json.dumps({"params": params, "retrain": retrained, "evaluation": evaluation}, indent=2, default=str))
    tracker.log_artifact(run_id, summary, "summary")
    version = tracker.register_weights(run_id, Path(retrained["weights"]))
    tracker.end_run(run_id)
    return TrackedRound(run_id, version)


def promote(settings: Settings, project: str, version: str, map50_95: float) -> dict[str, Any]:
    """Move the ``champion`` alias if mAP50-95 did not drop more than the tolerance."""
    tracker = tracker_for(settings, project)
    decision, moved = tracker.promote(version, map50_95, settings.tracking.promote_tolerance)
    return {"version": version, "moved": moved, "promote": decision.promote, "reason": decision.reason,
            "champion_metric": decision.champion}


def metric_history(settings: Settings, project: str, metric: str = "mAP50-95") -> list[float]:
    """The metric per finished round, in round order (for the plateau rule)."""
    return [r["metrics"][metric] for r in tracker_for(settings, project).round_metrics()
            if metric in r["metrics"] and r["status"] == "FINISHED"]
