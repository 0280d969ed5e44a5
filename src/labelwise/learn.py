"""The learn half of a round: retrain -> evaluate on the held-out set -> track -> promote.

Each function takes settings and typed values and returns typed values (:class:`StartingModel`,
:class:`RetrainResult`, :class:`~labelwise.detector.EvalResult`, :class:`TrackedRound`), so a CLI
command, a Prefect task or a test calls it the same way; reports turn them into text at the edge.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import Settings
from labelwise.domain import Detections, ImageStatus, class_box_counts
from labelwise.evaluation import Evaluation, evaluation_record
from labelwise.pseudo_labels import PseudoLabelRule, PseudoLabelSet, select_pseudo_labels
from labelwise.task_types import TaskType
from labelwise.training import (
    LabelledImage,
    build_classification_training_set,
    build_training_set,
    holdout_classification_items,
    holdout_data_yaml,
    train_round,
)

CHAMPION_PREFIX = "models:/"


@dataclass(frozen=True)
class StartingModel:
    """The weights a round trains from or auto-labels with: ``ref`` (a path or a model yaml),
    where it came from, and its registry version when it is the champion. (Named so it is not
    read as pydantic's BaseModel.)"""

    ref: str
    source: str  # "champion" | "configured" | "explicit"
    registry_version: str | None = None


def tracker_for(settings: Settings, project: "str | ProjectRecord"):  # type: ignore[no-untyped-def]
    """The MLflow tracker of ``project``, reporting the metric scheme of its task type (a name
    is looked up in the catalog; a name the catalog does not know, such as a benchmark's own
    campaign, is tracked as a detection project, as every project was before task types)."""
    from labelwise.catalog import ProjectNotFound
    from labelwise.evaluation import metric_scheme
    from labelwise.runtime import open_catalog
    from labelwise.tracking import Tracker

    task = TaskType.DETECT
    if isinstance(project, str):
        try:
            task = open_catalog(settings).project(project).task_type
        except ProjectNotFound:
            pass
        name = project
    else:
        task, name = project.task_type, project.name
    return Tracker(settings.resolved_tracking_uri, name, settings.tracking.experiment_prefix,
                   metric_scheme(task))


def resolve_base_model(settings: Settings, project: str, explicit: str | None = None) -> StartingModel:
    """The model a round starts from: explicit ref, else (``training.start_from``) the registry
    champion or the configured ``detector.model``.

    With ``start_from: champion`` (default) the champion is used once there is one; before the
    first promotion, and always with ``start_from: base``, the configured model. A
    ``models:/<name>@champion`` ref (or ``@champion`` alone) is downloaded from the registry
    into ``state_dir/models``.
    """
    if explicit and not explicit.startswith(CHAMPION_PREFIX):
        return StartingModel(explicit, "explicit")
    configured = _configured_model(settings, project)
    if settings.training.start_from == "base" and not explicit:
        return StartingModel(configured, "configured")
    tracker = tracker_for(settings, project)
    info = tracker.champion()
    if info is not None:
        path = tracker.download_champion(settings.models_dir / project)
        return StartingModel(str(path), "champion", info.version)
    if explicit:
        raise FileNotFoundError(f"{explicit}: project {project!r} has no champion model yet")
    return StartingModel(configured, "configured")


def _configured_model(settings: Settings, project: str) -> str:
    """The configured model for the project's task (a project the catalog does not know: as
    configured)."""
    from labelwise.catalog import ProjectNotFound
    from labelwise.runtime import configured_model_ref, open_catalog

    try:
        task = open_catalog(settings).project(project).task_type
    except ProjectNotFound:
        return settings.detector.model
    return configured_model_ref(settings, task)


@dataclass(frozen=True)
class RetrainResult:
    """One retrained model and what it was trained on.

    ``labelled_images`` / ``labelled_boxes`` / ``class_box_counts`` count REVIEWED labels only
    (the learning curve's x axis); a semi-supervised round's pseudo-labels are counted apart.

    Attributes:
        pseudo_labels: whether ``training.pseudo_labels`` was on for this round.
        pseudo_images, pseudo_boxes: pseudo-labelled images / boxes trained on (0 when off).
        pseudo: ``pseudo/*`` numbers: the rule's counts (:meth:`PseudoLabelSet.as_metrics`:
            images, boxes, candidates, dropped_uncertain, dropped_empty, capped) and the rule
            itself (:meth:`PseudoLabelRule.as_params`: threshold, band_floor, cap); see
            :func:`pseudo_tracking` for which are MLflow params and which metrics.
        pseudo_model_version: the model version whose stored predictions were pseudo-labelled.
        pseudo_reason: why a round with pseudo-labels on trained on none (else None).
        pseudo_sheet: PNG of up to 8 pseudo-labelled images with their pseudo boxes, or None.
    """

    weights: str
    model_version: str
    base_model: str
    seconds: float
    epochs: int
    labelled_images: int
    labelled_boxes: int
    class_box_counts: dict[str, int] = field(default_factory=dict)
    pseudo_labels: bool = False
    pseudo_images: int = 0
    pseudo_boxes: int = 0
    pseudo: dict[str, float] = field(default_factory=dict)
    pseudo_model_version: str | None = None
    pseudo_reason: str | None = None
    pseudo_sheet: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetrainResult":
        """Read :meth:`as_dict` back (e.g. a stored round summary); a dict written before
        pseudo-labels existed reads with them off.

        Raises:
            ValueError: a required field is missing or an unknown one is present (named).
        """
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        unknown, missing = sorted(set(data) - known), sorted(required - set(data))
        if unknown or missing:
            raise ValueError(f"a retrain result needs the fields {sorted(required)} (optional: "
                             f"{sorted(known - required)}); missing {missing}, unknown {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class PseudoRound:
    """The pseudo-labels a round trains on (see :func:`pseudo_labels_for`).

    Attributes:
        rule: the rule applied.
        reviewed_images: reviewed labelled images of the project (the cap's base).
        model_version: whose predictions were used; None when the catalog holds none.
        labels: what the rule kept and dropped.
        extra: ``labels`` as training images named by image id, in rank order.
        kept: image id -> the kept Detections (pixel xyxy), for the contact sheet.
        reason: why no pseudo image is used, else None.
    """

    rule: PseudoLabelRule
    reviewed_images: int
    model_version: str | None
    labels: PseudoLabelSet
    extra: tuple[LabelledImage, ...] = ()
    kept: dict[str, Detections] = field(default_factory=dict)
    reason: str | None = None


NO_PSEUDO_LABELS = PseudoLabelSet((), 0, 0, 0, 0)
PSEUDO_SHEET_IMAGES = 8


def pseudo_labels_for(settings: Settings, catalog: Catalog, project: ProjectRecord) -> PseudoRound:
    """Pseudo-labels for the project's next round under ``settings.training.pseudo_rule()``.

    Candidates are the predictions the catalog holds for ``catalog.latest_model_version``
    (what auto-label stored for the model that proposed this round's queue). Every image that
    is not UNLABELLED is excluded (labelled, queued, rejected: a reviewed label always wins and
    a queued image is about to get one), so is every id with a stored label and every
    prediction of an image the catalog no longer lists. Sizes are the images' (width, height)
    in pixels from the catalog. Nothing is written anywhere.
    """
    rule = settings.training.pseudo_rule()
    records = {r.image_id: r for r in catalog.images(project)}
    labels = catalog.labels(project)
    reviewed = sum(1 for image_id in labels if image_id in records)
    version = catalog.latest_model_version(project)
    predictions = catalog.predictions(project, version) if version is not None else {}
    if not predictions:
        return PseudoRound(rule, reviewed, version, NO_PSEUDO_LABELS,
                           reason=f"no predictions stored for project {project.name!r}: trained on "
                                  "reviewed labels only (auto-label the pool to get pseudo-labels)")
    exclude = {i for i, r in records.items() if r.status is not ImageStatus.UNLABELLED}
    exclude |= set(labels) | {i for i in predictions if i not in records}
    sizes = {i: (records[i].width, records[i].height) for i in predictions if i in records}
    chosen = select_pseudo_labels(predictions, sizes, exclude, reviewed, rule)
    extra = tuple(LabelledImage(p.image_id, records[p.image_id].path, p.boxes)
                  for p in chosen.labels)
    kept = {p.image_id: predictions[p.image_id].above(rule.threshold) for p in chosen.labels}
    reason = None
    if not chosen.images:
        reason = (f"the rule kept no image of {chosen.candidates} candidates from model {version} "
                  f"({chosen.dropped_uncertain} uncertain, {chosen.dropped_empty} empty, "
                  f"{chosen.capped} over the cap of {rule.cap} x {reviewed} reviewed images)")
    return PseudoRound(rule, reviewed, version, chosen, extra, kept, reason)


def pseudo_sheet(
    settings: Settings, project: ProjectRecord, round_number: int, pseudo: PseudoRound
) -> str | None:
    """Contact sheet of the first :data:`PSEUDO_SHEET_IMAGES` pseudo-labelled images (rank
    order) with their pseudo boxes, captioned with each image's least confident kept box;
    ``state_dir/reports/<project>/round-<n>-pseudo.png``, None without pseudo images."""
    from labelwise.reports import contact_sheet

    shown = pseudo.extra[:PSEUDO_SHEET_IMAGES]
    if not shown:
        return None
    confidence = {p.image_id: p.confidence for p in pseudo.labels.labels}
    items = [(item.name, item.path, confidence[item.name], pseudo.kept[item.name])
             for item in shown]
    out = settings.state_dir / "reports" / project.name / f"round-{round_number}-pseudo.png"
    sheet = contact_sheet(items, project.class_names, out, confidence_floor=pseudo.rule.threshold)
    return str(sheet)


def retrain(
    settings: Settings, catalog: Catalog, project: ProjectRecord, round_number: int, base_model: str,
) -> RetrainResult:
    """Fine-tune ``base_model`` on every labelled image of the project by the one recipe
    (:func:`labelwise.training.train_round` under ``settings.training``).

    With ``training.pseudo_labels`` on, the round also trains on the pseudo-labels of
    :func:`pseudo_labels_for` (written into this round's training set only: never saved to the
    catalog as labels, never sent to Label Studio); epochs follow the reviewed count, so the
    round trains at most (1 + ``pseudo_cap``) times as long as a supervised one. Without stored
    predictions it trains supervised and says why in ``pseudo_reason``.

    The weights are copied to ``state_dir/models/<project>/round-<n>.pt``.
    """
    from labelwise.runtime import load_model

    rule = settings.training.pseudo_rule()
    detect = project.task_type is TaskType.DETECT
    on = settings.training.pseudo_labels and detect
    pseudo = pseudo_labels_for(settings, catalog, project) if on else None
    extra = pseudo.extra if pseudo is not None else ()
    out_dir = settings.state_dir / "datasets" / project.name / f"round-{round_number}"
    ts = (build_classification_training_set(catalog, project, out_dir)
          if project.task_type is TaskType.CLASSIFY else build_training_set(catalog, project, out_dir, extra=extra))
    reviewed = ts.n_images - len(extra)
    chosen = pseudo.labels if pseudo is not None else NO_PSEUDO_LABELS
    sheet = pseudo_sheet(settings, project, round_number, pseudo) if pseudo is not None else None
    detector = load_model(settings, project, base_model)
    result = train_round(detector, ts.data_yaml, settings.training, ts.n_images,
                         settings.runs_dir / project.name, name=f"round-{round_number}",
                         reviewed_images=reviewed)
    target = settings.models_dir / project.name / f"round-{round_number}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(result.weights, target)
    trained = load_model(settings, project, str(target))
    pseudo_counts = class_box_counts((item.boxes for item in extra), len(project.class_names))
    reviewed_counts = {name: ts.class_box_counts.get(name, 0) - int(c)
                       for name, c in zip(project.class_names, pseudo_counts)}
    return RetrainResult(
        str(target), trained.version, base_model, result.seconds, result.epochs,
        reviewed, ts.n_boxes - chosen.boxes, reviewed_counts,
        pseudo_labels=pseudo is not None, pseudo_images=chosen.images, pseudo_boxes=chosen.boxes,
        pseudo={**{k: float(v) for k, v in chosen.as_metrics().items()}, **rule.as_params()},
        pseudo_model_version=pseudo.model_version if pseudo is not None else None,
        pseudo_reason=pseudo.reason if pseudo is not None else (
            None if detect or not settings.training.pseudo_labels else
            f"pseudo-labels are for detection projects; this {project.task_type.value!r} round "
            "trained on reviewed labels only"),
        pseudo_sheet=sheet,
    )


def evaluate(settings: Settings, project: ProjectRecord, weights: str) -> Evaluation:
    """The held-out metrics of the project's task (:mod:`labelwise.evaluation`) on its fixed
    split: P/R/mAP50/mAP50-95 of a detector, P/R/top1/top5 of a classifier (with per class)."""
    from labelwise.classifier import YoloClassifier
    from labelwise.classify_training import write_classification_set
    from labelwise.runtime import load_model

    data, split = holdout_data_yaml(project)
    model = load_model(settings, project, weights)
    out_dir = settings.runs_dir / project.name / "eval"
    if isinstance(model, YoloClassifier):
        # ultralytics reads a classifier's classes from train/ of the folder it validates:
        # the held-out split is laid out under every split name (links), trained on by nothing.
        items = holdout_classification_items(project)
        data = write_classification_set(settings.state_dir / "datasets" / project.name / "holdout",
                                        items, items, project.class_names, test=items)
        split = "test"
    return model.evaluate(data, split, out_dir=out_dir)


@dataclass(frozen=True)
class TrackedRound:
    """The round's MLflow run and the model version its weights were registered as."""

    run_id: str
    registered_version: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def round_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The headline metrics of the evaluation's task under the names shown everywhere."""
    return evaluation.headline()


PSEUDO_PARAM_KEYS = tuple(PseudoLabelRule().as_params())
TRAINED_MODEL_PARAM = "trained_model_version"
"""The round run's param naming the retrained weights (:attr:`RetrainResult.model_version`)."""


def pseudo_tracking(retrained: RetrainResult) -> tuple[dict[str, Any], dict[str, float]]:
    """A round's pseudo-label record as (MLflow params, MLflow metrics).

    Params: ``pseudo_labels`` (``on``/``off``), the rule (``pseudo/threshold``,
    ``pseudo/band_floor``, ``pseudo/cap``) and, when set, ``pseudo/model_version`` and
    ``pseudo/reason``. Metrics: every other ``pseudo/*`` number (``pseudo/images``,
    ``pseudo/boxes``, ``pseudo/candidates`` and the drop counts). A result read from before
    pseudo-labels existed (:meth:`RetrainResult.from_dict`) reads as ``off``.
    """
    numbers = dict(retrained.pseudo)
    params: dict[str, Any] = {"pseudo_labels": "on" if retrained.pseudo_labels else "off"}
    params.update({k: numbers.pop(k) for k in PSEUDO_PARAM_KEYS if k in numbers})
    if retrained.pseudo_model_version is not None:
        params["pseudo/model_version"] = retrained.pseudo_model_version
    if retrained.pseudo_reason is not None:
        params["pseudo/reason"] = retrained.pseudo_reason
    return params, {k: float(v) for k, v in numbers.items()}


def track_round(
    settings: Settings,
    project: ProjectRecord,
    round_number: int,
    campaign: str,
    params: dict[str, Any],
    retrained: RetrainResult,
    evaluation: Evaluation,
    extra_metrics: dict[str, float] | None = None,
    artifacts: dict[str, str] | None = None,
) -> TrackedRound:
    """One MLflow child run per round (under the campaign's parent run), weights registered.

    Every round also records its pseudo-label rule and counts (:func:`pseudo_tracking`) and,
    when it trained on pseudo-labels, their contact sheet under the artifact path ``pseudo``.
    The run ends FINISHED with its description (:func:`labelwise.tracking.round_description`),
    or FAILED with the error when tracking fails half-way; either way a campaign that only
    its rounds hold open ends with its last running round (:meth:`Tracker.end_run`).

    Safe to call again for the same round (the track task's retries): the round run and the
    registered version that an earlier call left are found by their tags and reused (the run's
    params include :data:`TRAINED_MODEL_PARAM`, the retrained weights' content version, so the
    same weights reuse it and other weights get a run of their own), points already logged are
    not logged again, and the call finishes what the earlier one left undone. Either way one
    round run and one registered version per round and model.
    """
    from labelwise.reports import learning_curve

    tracker = tracker_for(settings, project)
    primary = tracker.scheme.primary
    parent = tracker.ensure_campaign(campaign, {"project": project.name})
    pseudo_params, pseudo_metrics = pseudo_tracking(retrained)
    round_params = {**params, "base_model": retrained.base_model, "epochs": retrained.epochs,
                    **pseudo_params, TRAINED_MODEL_PARAM: retrained.model_version}
    run_id = tracker.start_round(parent, round_number, round_params)
    try:
        metrics = round_metrics(evaluation)
        metrics.update(evaluation.per_class())
        metrics.update({
            "labelled_images": retrained.labelled_images,
            "labelled_boxes": retrained.labelled_boxes,
            "seconds/train": retrained.seconds,
            "seconds/evaluate": evaluation.seconds,
        })
        metrics.update(pseudo_metrics)
        metrics.update(extra_metrics or {})
        tracker.log_metrics(run_id, metrics, step=round_number)
        tracker.log_metrics(parent, round_metrics(evaluation), step=round_number)
        for name, path in (artifacts or {}).items():
            if path and Path(path).exists():
                tracker.log_artifact(run_id, Path(path), name)
        sheet = retrained.pseudo_sheet
        if sheet and Path(sheet).exists():
            tracker.log_artifact(run_id, Path(sheet), "pseudo")
        history = [r for r in tracker.round_metrics() if primary in r["metrics"]]
        points = sorted((r["metrics"].get("labelled_images", 0.0), r["metrics"][primary]) for r in history)
        curve = learning_curve({project.name: points}, settings.state_dir / "reports" / project.name /
                               f"learning-curve-round-{round_number}.png", title=f"{project.name}: {primary} vs labels",
                               ylabel=primary)
        tracker.log_artifact(run_id, curve, "plots")
        (settings.state_dir / "reports" / project.name).mkdir(parents=True, exist_ok=True)
        summary = settings.state_dir / "reports" / project.name / f"round-{round_number}.json"
        summary.write_text(json.dumps({"params": params, "retrain": retrained.as_dict(),
                                       "evaluation": evaluation_record(evaluation)}, indent=2, default=str))
        tracker.log_artifact(run_id, summary, "summary")
        version = tracker.register_weights(run_id, Path(retrained.weights))
    except BaseException as exc:
        from labelwise.tracking import error_text

        tracker.end_run(run_id, "FAILED", error=error_text(exc))
        raise
    tracker.end_run(run_id)
    return TrackedRound(run_id, version)


def start_campaign(settings: Settings, project: str, campaign: str, params: dict[str, Any]) -> str:
    """A new MLflow campaign run that its caller holds open (a closed loop) until
    :func:`end_campaign`; rounds logged under ``campaign`` meanwhile nest under it."""
    return tracker_for(settings, project).start_campaign(campaign, {"project": project, **params})


def end_campaign(settings: Settings, project: str, run_id: str, error: str | None = None) -> dict[str, Any]:
    """End a campaign run: FINISHED, or FAILED with ``error`` recorded (tag ``labelwise.error``
    and the description). Returns the run id, status and the UI route of the ``Rounds`` view."""
    tracker = tracker_for(settings, project)
    status = tracker.end_campaign(run_id, error)
    return {"run_id": run_id, "status": status, "error": error, "rounds_view": tracker.rounds_view_path()}


def promote(settings: Settings, project: str, version: str, primary: float) -> dict[str, Any]:
    """Move the ``champion`` alias if the project's primary metric (``primary``: mAP50-95 of a
    detector, top1 of a classifier) did not drop more than the tolerance; the decision is
    recorded on the version and its round run (:meth:`Tracker.promote`)."""
    tracker = tracker_for(settings, project)
    decision, moved = tracker.promote(version, primary, settings.tracking.promote_tolerance)
    return {"version": version, "moved": moved, "promote": decision.promote, "reason": decision.reason,
            "explanation": decision.explanation, "champion_metric": decision.champion}


def metric_history(settings: Settings, project: str, metric: str | None = None) -> list[float]:
    """The metric (default: the project's primary metric) per finished round, in round order
    (for the plateau rule)."""
    tracker = tracker_for(settings, project)
    name = metric or tracker.scheme.primary
    return [r["metrics"][name] for r in tracker.round_metrics()
            if name in r["metrics"] and r["status"] == "FINISHED"]
