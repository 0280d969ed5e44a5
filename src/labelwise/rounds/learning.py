"""The learn use case: pull -> retrain -> evaluate -> track -> promote, once per batch.

:func:`learn_round` is the one recipe of the learn half of a round, for every caller: the
``labelwise learn`` command, a notebook, the ``learn-round`` Prefect flow and the reconciler. It
owns the round's moves: it claims the round (``queued``/``reviewed -> learning``, a
compare-and-set, so of several runs racing for one batch exactly one learns it), gives it back
(``learning -> reviewed``) when a step fails, records what it learnt with the round
(``params.learned``, :data:`~labelwise.rounds.status.LEARNED_SUMMARY`) and moves it ``learning ->
learned``.

Each step is a library call run through a :class:`~labelwise.rounds.steps.StepRunner`:
:func:`~labelwise.rounds.steps.run_directly` calls it; the flow passes one that runs it as a
named Prefect task (its own run in the UI, retries only where the step is safe to repeat), so
the flow and the command run the same code in the same order. Steps hand each other typed
results (:class:`~labelwise.learn.StartingModel`, :class:`~labelwise.learn.RetrainResult`,
:class:`~labelwise.detector.EvalResult`, :class:`~labelwise.learn.TrackedRound`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from labelwise.config import Settings
from labelwise.rounds.params import RoundNote
from labelwise.rounds.status import LEARNED, LEARNED_SUMMARY, LEARNING, OPEN_STATUSES, REVIEWED
from labelwise.rounds.steps import StepRunner, run_directly

if TYPE_CHECKING:
    from labelwise.evaluation import Evaluation
    from labelwise.learn import RetrainResult, StartingModel, TrackedRound

log = logging.getLogger(__name__)

__all__ = ["LEARN_STEPS", "RETRYABLE_STEPS", "LearnOutcome", "StepRunner", "learn_round",
           "run_directly"]


LEARN_STEPS = ("claim", "pull", "label-issues", "agreement", "resolve-model", "champion-before", "retrain", "evaluate",
               "track-round", "promote", "plateau-check", "record-learned", "finish")
"""The steps of :func:`learn_round`, in order (the names the runner gets)."""

RETRYABLE_STEPS = frozenset({"pull", "resolve-model", "champion-before", "track-round",
                             "promote", "plateau-check"})
"""Steps safe to repeat after a failure (IO that finds what an earlier attempt wrote, or only
reads); a runner may retry these and no others."""


@dataclass(frozen=True)
class LearnOutcome:
    """What one :func:`learn_round` call did.

    Attributes:
        round: the round number.
        skipped: why nothing was learnt (the round was not open: another run holds or learnt
            it), else None.
        summary: the learnt round's figures (also recorded with the round): labelled and pseudo
            images/boxes, P/R/mAP50/mAP50-95, champion moved, registered version, MLflow run,
            plateau, what was pulled, who learnt it.
        evaluation, retrained, promoted, tracked, pulled, before: each step's result (before:
            the champion before promotion, None on a first round), for reports; None (and
            empty) when the round was skipped.
    """

    round: int
    skipped: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    retrained: RetrainResult | None = None
    promoted: dict[str, Any] = field(default_factory=dict)
    tracked: TrackedRound | None = None
    pulled: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The summary (what flows return), or ``{"round", "skipped"}``."""
        return {"round": self.round, "skipped": self.skipped} if self.skipped else dict(self.summary)


# -- steps: one library call each --------------------------------------------------------------
def claim(settings: Settings, project: str, number: int) -> bool:
    """``queued``/``reviewed -> learning`` (compare-and-set): True for the one caller that wins."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    return catalog.transition_round(catalog.project(project), number, OPEN_STATUSES, LEARNING)


def give_back(settings: Settings, project: str, number: int) -> bool:
    """``learning -> reviewed`` after a failed step, so a later run can learn the batch."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    return catalog.transition_round(catalog.project(project), number, LEARNING, REVIEWED)


def finish(settings: Settings, project: str, number: int) -> bool:
    """``learning -> learned``."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    return catalog.transition_round(catalog.project(project), number, LEARNING, LEARNED)


def record_learned(settings: Settings, project: str, number: int, summary: dict[str, Any]) -> None:
    """Keep the summary with the round (a loop that handed the round over reads it there)."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    catalog.update_round_params(catalog.project(project), number, {LEARNED_SUMMARY: summary})


def pull(settings: Settings, project: str, number: int) -> dict[str, Any]:
    from labelwise.review import pull_annotations
    from labelwise.runtime import open_catalog

    return pull_annotations(settings, open_catalog(settings), project, number)


ISSUE_SHEET_IMAGES = 8
"""Images on a learnt round's label-issue contact sheet."""


def label_issues(settings: Settings, project: str, number: int) -> dict[str, Any]:
    """The round's label issues, graded by the model that proposed it
    (:func:`labelwise.quality.project_issues.project_label_issues` with ``round_number``):
    counts per kind, images checked and skipped, and a contact sheet of the top images
    (``state_dir/reports/<project>/round-<n>-issues.png``, None without issues)."""
    from labelwise.quality.project_issues import issues_contact_sheet, project_label_issues
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    record = catalog.project(project)
    report = project_label_issues(catalog, record, round_number=number)
    out = settings.state_dir / "reports" / record.name / f"round-{number}-issues.png"
    sheet = issues_contact_sheet(catalog, record, report.issues, out, ISSUE_SHEET_IMAGES)
    return {"by_kind": report.kind_counts(), "total": report.total_issues,
            "images_checked": len(report.images_checked), "images_skipped": len(report.skipped),
            "contact_sheet": None if sheet is None else str(sheet)}


def issue_metrics(found: dict[str, Any]) -> dict[str, float]:
    """:func:`label_issues`' figures as MLflow metrics: ``label_issues/<kind>``,
    ``label_issues/total``, ``label_issues/images_checked``."""
    metrics = {f"label_issues/{kind}": float(n) for kind, n in found["by_kind"].items()}
    metrics["label_issues/total"] = float(found["total"])
    metrics["label_issues/images_checked"] = float(found["images_checked"])
    return metrics


def agreement(settings: Settings, project: str, number: int) -> dict[str, Any] | None:
    """The round's reviewer agreement (:func:`labelwise.review.consensus.round_agreement`), or
    None when consensus is off (``consensus.share`` 0)."""
    if settings.consensus.share <= 0:
        return None
    from labelwise.review.consensus import round_agreement
    from labelwise.runtime import open_catalog

    return round_agreement(settings, open_catalog(settings), project, number)


def agreement_metrics(found: dict[str, Any] | None) -> dict[str, float]:
    """``agreement/box_f1``, ``agreement/kappa``, ``agreement/images`` (those measured)."""
    if not found:
        return {}
    metrics = {"agreement/images": float(found["images_compared"])}
    for key in ("box_f1", "kappa"):
        if found.get(key) is not None:
            metrics[f"agreement/{key}"] = float(found[key])
    return metrics


def resolve_model(settings: Settings, project: str) -> StartingModel:
    from labelwise.learn import resolve_base_model

    return resolve_base_model(settings, project)


def champion_before(settings: Settings, project: str) -> dict[str, Any] | None:
    from labelwise.round_story import champion_before as read

    return read(settings, project)


def retrain(settings: Settings, project: str, number: int, base_model: str) -> RetrainResult:
    from labelwise.learn import retrain as run
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    return run(settings, catalog, catalog.project(project), number, base_model)


def evaluate(settings: Settings, project: str, weights: str) -> Evaluation:
    from labelwise.learn import evaluate as run
    from labelwise.runtime import open_catalog

    return run(settings, open_catalog(settings).project(project), weights)


def track(settings: Settings, project: str, number: int, campaign: str, params: dict[str, Any],
          retrained: RetrainResult, evaluation: Evaluation, extra: dict[str, float],
          artifacts: dict[str, str]) -> TrackedRound:
    from labelwise.learn import track_round
    from labelwise.runtime import open_catalog

    record = open_catalog(settings).project(project)
    return track_round(settings, record, number, campaign, params, retrained, evaluation, extra,
                       artifacts)


def promote(settings: Settings, project: str, version: str, primary: float) -> dict[str, Any]:
    from labelwise.learn import promote as run

    return run(settings, project, version, primary)


def plateau(settings: Settings, project: str) -> dict[str, Any]:
    from labelwise.learn import metric_history
    from labelwise.promotion import has_plateaued

    history = metric_history(settings, project)
    t = settings.tracking
    return {"plateaued": has_plateaued(history, t.plateau_epsilon, t.plateau_rounds), "history": history}


# -- the use case ------------------------------------------------------------------------------
def learn_round(
    settings: Settings,
    project: str,
    number: int,
    campaign: str = "default",
    *,
    run: StepRunner = run_directly,
    say: Callable[[str], None] = log.info,
    learnt_by: str = "local",
) -> LearnOutcome:
    """Learn round ``number`` of ``project`` unless another run holds or learnt it.

    Args:
        campaign: the MLflow campaign the round is logged under.
        run: how each step runs (:func:`run_directly`, or the flow's Prefect-task runner).
        say: where the one line per step goes (a logger's ``info``).
        learnt_by: who is learning (recorded with the summary, e.g. the flow run's name).

    Returns:
        The outcome; ``skipped`` says why when the round was not open (nothing changed).

    Raises:
        Whatever a step raised, after the round was given back (``learning -> reviewed``).
    """
    from labelwise.evaluation import evaluation_record, primary_value
    from labelwise.round_story import (
        evaluate_line,
        label_issues_line,
        model_line,
        promote_line,
        pull_line,
        retrain_line,
        track_line,
    )
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    info = catalog.round_info(catalog.project(project), number)
    if not run("claim", claim, settings, project, number):
        return LearnOutcome(number, skipped=f"round is {info['status']}, not one of "
                                            f"{[s.value for s in OPEN_STATUSES]}")
    try:
        pulled = run("pull", pull, settings, project, number)
        say(pull_line(pulled))
        issues = run("label-issues", label_issues, settings, project, number)
        say(label_issues_line(issues, number))
        agreed = run("agreement", agreement, settings, project, number)
        base: StartingModel = run("resolve-model", resolve_model, settings, project)
        say(model_line(asdict(base)))
        before = run("champion-before", champion_before, settings, project)
        retrained: RetrainResult = run("retrain", retrain, settings, project, number, base.ref)
        say(retrain_line(retrained.as_dict()))
        evaluation: Evaluation = run("evaluate", evaluate, settings, project, retrained.weights)
        say(evaluate_line(evaluation_record(evaluation)))
        params = dict(info["params"])
        seconds, artifacts = RoundNote.AUTO_LABEL_SECONDS.value, RoundNote.ARTIFACTS.value
        figures = {seconds: params[seconds]} if seconds in params else {}
        untracked = {seconds, artifacts, RoundNote.LEARNED.value}  # metrics, files, the summary
        tracked_params = {"strategy": info["strategy"],
                          **{k: v for k, v in params.items() if k not in untracked}}
        files = dict(params.get(artifacts, {}))
        if issues["contact_sheet"]:
            files["label_issues"] = issues["contact_sheet"]
        tracked: TrackedRound = run("track-round", track, settings, project, number, campaign,
                                    tracked_params, retrained, evaluation,
                                    {**figures, **pulled.get("corrections", {}),
                                     **issue_metrics(issues), **agreement_metrics(agreed)},
                                    files)
        say(track_line(tracked.as_dict(), number))
        promoted = run("promote", promote, settings, project, tracked.registered_version,
                       primary_value(evaluation))
        say(promote_line(promoted, before))
        summary = {
            "round": number, "labelled_images": retrained.labelled_images,
            "labelled_boxes": retrained.labelled_boxes,
            "pseudo_images": retrained.pseudo_images, "pseudo_boxes": retrained.pseudo_boxes,
            **evaluation.headline(),
            "champion_moved": promoted["moved"], "registered_version": tracked.registered_version,
            "run_id": tracked.run_id, "plateau": run("plateau-check", plateau, settings, project),
            "pulled": pulled, "label_issues": issues, "agreement": agreed,
            "agreement_below_floor": bool(agreed and agreed["below_floor"]),
            "learnt_by": learnt_by,
        }
        run("record-learned", record_learned, settings, project, number, summary)
    except BaseException:
        give_back(settings, project, number)
        raise
    run("finish", finish, settings, project, number)
    return LearnOutcome(number, None, summary, evaluation, retrained, promoted, tracked, pulled,
                        before)
