"""MLflow: one experiment per project, a campaign run per loop, a run per round, and a
registered model per project whose ``champion`` alias marks the deployed weights.

Uses ``MlflowClient`` with explicit run ids throughout (no fluent active run: that is
thread-local and breaks under Prefect's task runners).

What the MLflow UI shows (MLflow 3.17):

- The experiment carries ``mlflow.experimentKind = custom_model_development`` (the value the
  UI's experiment-kind selector writes for "Machine learning"). The UI's sidebar switch
  (GenAI / Machine learning, kept per browser) still decides which tab an experiment opens on,
  so links to the rounds carry ``workflowType=machine_learning`` (:meth:`Tracker.rounds_view_path`).
- Round runs link to their campaign run by the tag ``labelwise.campaign_run`` (not
  ``mlflow.parentRunId``: the UI would fold them under one collapsed campaign row), so the default
  runs table lists every round as a row with its metrics, next to the campaign runs, which hold
  the headline metrics per round (step = round), i.e. the learning curve. The experiment also
  carries a saved view, ``Rounds`` (experiment tag ``mlflow.sharedViewState.labelwise-rounds``):
  only the round runs, oldest first, with the columns of :data:`ROUND_COLUMNS` (description,
  strategy, labelled images, P/R/mAP50/mAP50-95, champion, registered model).
- Every round run has a description (``mlflow.note.content``, :func:`round_description`);
  every campaign run gets one when it ends (:func:`campaign_description`).
- Every registered version has a description and the tags :data:`VERSION_TAG_KEYS`.

Campaign runs end (no run stays RUNNING once nothing runs under it):

- a closed loop holds its campaign (``labelwise.held_by = loop``): :meth:`Tracker.start_campaign`
  at the start, :meth:`Tracker.end_campaign` at the end (FINISHED, or FAILED with the error in
  the tag ``labelwise.error`` and in the description);
- a learn round started on its own (webhook, reconciler) under no running campaign opens one
  (``labelwise.held_by = rounds``: the newest such campaign of that name is reopened, else a new
  one) and :meth:`Tracker.end_run` of its round run ends it again once no round under it runs.

Safe to repeat (a retried Prefect task, a learn run started again for the same round): what a
round writes is found before it is created. :meth:`Tracker.start_round` reuses the round run an
earlier attempt left (tags ``labelwise.kind = round``, ``labelwise.round = <n>``, the same
campaign, and params that agree), :meth:`Tracker.register_weights` the version it registered from
that run (tag ``round = <n>``, same run id), :meth:`Tracker.log_metrics` skips a point already
logged at that step; so an attempt that died half-way is finished by the next one, with one run
and one version per round.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelwise.evaluation import DETECT_SCHEME, MetricScheme
from labelwise.promotion import PromotionDecision, decide_promotion

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

CHAMPION = "champion"
PRIMARY_METRIC = DETECT_SCHEME.primary
"""A detection project's primary metric (a project's own: ``Tracker.scheme.primary``)."""

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
PARENT_TAG = "labelwise.campaign_run"
"""The round run's link to its campaign run. Not ``mlflow.parentRunId``: the UI would nest the
rounds under a collapsed campaign row (one row, no metric columns) in every view."""
KIND_TAG = "labelwise.kind"
ROUND_TAG = "labelwise.round"
HELD_BY_TAG = "labelwise.held_by"
HELD_BY_LOOP = "loop"
HELD_BY_ROUNDS = "rounds"
ERROR_TAG = "labelwise.error"
CHAMPION_TAG = "labelwise.champion"
VERSION_TAG = "labelwise.registered_version"
SAVED_VIEW_KEY = "labelwise-rounds"
SAVED_VIEW_TAG = f"mlflow.sharedViewState.{SAVED_VIEW_KEY}"
SAVED_VIEW_NAME = "Rounds"

HEADLINE_METRICS = DETECT_SCHEME.headline
"""Held-out metrics of every detection round, under these names (round runs and the campaign
run); a project of another task type logs its scheme's (:mod:`labelwise.evaluation`)."""
ROUND_METRICS = (*HEADLINE_METRICS, "labelled_images", "labelled_boxes")
"""Metrics every round run has, under these names."""
ROUND_COLUMNS = (
    "attributes.`Description`", "params.`strategy`",
    *(f"metrics.`{m}`" for m in ("labelled_images", "labelled_boxes", *HEADLINE_METRICS)),
    f"tags.`{CHAMPION_TAG}`", "attributes.`Models`",
)
"""Columns of the ``Rounds`` saved view (the runs table's column keys)."""
VERSION_TAG_KEYS = ("round", "mAP50", "mAP50-95", "promotion")
"""Tags of every registered version; ``promotion`` is ``pending`` until the rule has decided,
then ``promoted because …`` or ``not promoted because …``."""
PENDING = "pending"
ROUND_FAILED = "kept (round failed)"
"""The champion tag of a round run that ended FAILED before promotion."""
TAG_LIMIT = 8000  # MLflow's run tag value limit


@dataclass(frozen=True)
class ChampionInfo:
    model_name: str
    version: str
    run_id: str | None
    metric: float | None


def model_name_for(project: str) -> str:
    return f"labelwise-{project}"


def error_text(error: BaseException) -> str:
    """``Type: message``, how a failed run records its error."""
    return f"{type(error).__name__}: {error}"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return "n/a" if value is None else str(int(value))


def _param_text(value: Any) -> str:
    """A param as MLflow stores it (text, cut to 6000 characters)."""
    return str(value)[:6000]


def _clip(text: str, limit: int = TAG_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SHORT = {"precision": "P", "recall": "R"}


def _held_out(metrics: Mapping[str, float], scheme: MetricScheme, digits: int = 3,
              only_quality: bool = False) -> str:
    """``P 0.500, R 0.400, mAP50 0.410, mAP50-95 0.200`` of the scheme's headline metrics
    (``only_quality``: without precision and recall)."""
    names = [n for n in scheme.headline if not (only_quality and n in _SHORT)]
    return ", ".join(f"{_SHORT.get(n, n)} {_fmt(metrics.get(n), digits)}" for n in names)


def round_description(
    round_number: int, strategy: str | None, metrics: Mapping[str, float], champion: str,
    campaign: str | None = None, version: str | None = None, scheme: MetricScheme = DETECT_SCHEME,
) -> str:
    """A round run's description (markdown): round, strategy, labelled images, held-out
    P/R/mAP50/mAP50-95 and what happened to the champion (``champion``: e.g. ``moved to v3
    (promoted because …)``)."""
    pseudo = metrics.get("pseudo/images")
    labels = (f"{_count(metrics.get('labelled_images'))} labelled images "
              f"({_count(metrics.get('labelled_boxes'))} boxes)")
    if pseudo:
        labels += f" + {_count(pseudo)} pseudo-labelled images"
    head = f"**Round {round_number}**" + (f" of campaign {campaign}" if campaign else "")
    registered = f"Registered as v{version}. " if version else ""
    return (f"{head}: strategy {strategy or 'n/a'}, {labels}.\n\n"
            f"Held-out: {_held_out(metrics, scheme)}.\n\n"
            f"{registered}Champion: {champion}.")


def version_description(
    round_number: int, metrics: Mapping[str, float], run_id: str, promotion: str,
    scheme: MetricScheme = DETECT_SCHEME,
) -> str:
    """A registered version's description: its round, held-out metrics and the promotion."""
    return (f"Round {round_number} (run {run_id}): {_held_out(metrics, scheme, 4, only_quality=True)} "
            "on the project's held-out split, "
            f"{_count(metrics.get('labelled_images'))} labelled images. Promotion: {promotion}.")


def campaign_description(
    name: str, project: str, status: str, rounds: Sequence[Mapping[str, Any]],
    error: str | None = None, rounds_view: str | None = None, scheme: MetricScheme = DETECT_SCHEME,
) -> str:
    """A campaign run's description (markdown): status (with the error), one table row per
    round (``rounds``: :meth:`Tracker.campaign_rounds`) and a link to the ``Rounds`` view."""
    lines = [f"**Campaign {name}** of project {project}: {len(rounds)} round(s), {status}."]
    if error:
        lines.append(f"\nError: `{error}`")
    if rounds:
        heads = [_SHORT.get(n, n) for n in scheme.headline]
        lines += ["", f"| round | strategy | labelled images | {' | '.join(heads)} | champion |",
                  "|---|---|---|" + "---|" * len(heads) + "---|"]
        for r in rounds:
            m = r["metrics"]
            values = " | ".join(_fmt(m.get(n)) for n in scheme.headline)
            lines.append(f"| {r['round']} | {r['params'].get('strategy', 'n/a')} | "
                         f"{_count(m.get('labelled_images'))} | {values} | "
                         f"{r['tags'].get(CHAMPION_TAG, PENDING)} |")
    if rounds_view:
        lines.append(f"\n[The rounds as rows, with their metrics]({rounds_view})")
    return "\n".join(lines)


def rounds_view_state(scheme: MetricScheme = DETECT_SCHEME) -> dict[str, Any]:
    """The ``Rounds`` saved view: the UI's view state (search facets and columns; the metric
    columns are the scheme's headline)."""
    columns = list(ROUND_COLUMNS) if scheme is DETECT_SCHEME else [
        c for c in ROUND_COLUMNS if not any(c == f"metrics.`{m}`" for m in HEADLINE_METRICS)]
    if scheme is not DETECT_SCHEME:
        at = columns.index("metrics.`labelled_boxes`") + 1
        columns[at:at] = [f"metrics.`{m}`" for m in scheme.headline]
    return {
        "searchFilter": f"tags.`{KIND_TAG}` = 'round'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": True,
        "selectedColumns": columns,
    }


def saved_view_envelope(name: str, state: Mapping[str, Any], created_ms: int) -> str:
    """A saved view as the MLflow UI stores it in an experiment tag: ``{name, createdAt,
    updatedAt, state}`` with ``state`` the view state as a JSON string."""
    return json.dumps({"name": name, "createdAt": created_ms, "updatedAt": created_ms,
                       "state": json.dumps(dict(state))})


class Tracker:
    """MLflow tracking and registry for one project."""

    def __init__(self, tracking_uri: str, project: str, experiment_prefix: str = "labelwise",
                 scheme: MetricScheme = DETECT_SCHEME) -> None:
        """``scheme``: the project's metric names (:func:`labelwise.evaluation.metric_scheme` of
        its task type): the champion's metric, the descriptions and the ``Rounds`` columns."""
        import mlflow
        from mlflow import MlflowClient

        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._mlflow = mlflow
        self.project = project
        self.scheme = scheme
        self.model_name = model_name_for(project)
        self.experiment_name = f"{experiment_prefix}/{project}"
        self.experiment_id = self._ensure_experiment()

    def _experiment_tags(self) -> dict[str, str]:
        """What the experiment is tagged with: model training, and the ``Rounds`` view."""
        return {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
                SAVED_VIEW_TAG: saved_view_envelope(SAVED_VIEW_NAME, rounds_view_state(self.scheme),
                                                    int(time.time() * 1000))}

    def _ensure_experiment(self) -> str:
        """The project's experiment (created when missing); tags it is missing are added
        (experiments from before these tags), a tag someone set differently is kept."""
        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is not None:
            for key, value in self._experiment_tags().items():
                if key not in exp.tags:
                    self.client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        artifact_location = None
        if self.tracking_uri.startswith("sqlite:///"):
            root = Path(self.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
            artifact_location = root.resolve().as_uri()
        return self.client.create_experiment(self.experiment_name, artifact_location=artifact_location,
                                             tags=self._experiment_tags())

    def rounds_view_path(self) -> str:
        """The UI route of the ``Rounds`` view (append it to the UI's address, e.g.
        ``http://127.0.0.1:5000/`` + this; inside the UI it works as a relative link)."""
        return (f"#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"
                f"&viewStateShareKey={SAVED_VIEW_KEY}")

    # Runs -------------------------------------------------------------------------------
    def start_campaign(self, name: str, params: Mapping[str, Any], held_by: str = HELD_BY_LOOP) -> str:
        """A new parent run for a series of rounds; returns its run id (left RUNNING).

        ``held_by``: ``loop`` (whoever starts it ends it, :meth:`end_campaign`) or ``rounds``
        (its rounds end it, :meth:`end_run`). A loop's start first ends the stale campaigns of
        that name that rounds held (RUNNING with no round running: e.g. left by an older version
        that never ended its campaigns; :meth:`release_campaign`).
        """
        if held_by == HELD_BY_LOOP:
            stale = self.client.search_runs(
                [self.experiment_id], max_results=100,
                filter_string=(f"tags.`{KIND_TAG}` = 'campaign' and attributes.run_name = '{name}' "
                               "and attributes.status = 'RUNNING'"))
            for old in stale:
                self.release_campaign(old.info.run_id)
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={KIND_TAG: "campaign", HELD_BY_TAG: held_by})
        try:
            self.log_params(run.info.run_id, params)
        except BaseException as exc:  # the run is no one's: it must not stay RUNNING
            self.client.set_tag(run.info.run_id, ERROR_TAG, _clip(error_text(exc)))
            self.client.set_terminated(run.info.run_id, status="FAILED")
            raise
        return run.info.run_id

    def find_campaign(self, name: str, status: str | None = None, held_by: str | None = None) -> str | None:
        """The newest campaign run called ``name`` (with that status / holder when given)."""
        filters = [f"tags.`{KIND_TAG}` = 'campaign'", f"attributes.run_name = '{name}'"]
        if status:
            filters.append(f"attributes.status = '{status}'")
        if held_by:
            filters.append(f"tags.`{HELD_BY_TAG}` = '{held_by}'")
        runs = self.client.search_runs([self.experiment_id], filter_string=" and ".join(filters),
                                       max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0].info.run_id if runs else None

    def ensure_campaign(self, name: str, params: Mapping[str, Any]) -> str:
        """The campaign a round is logged under: the newest RUNNING one called ``name`` (a loop's,
        or one another round holds open), else the newest one its rounds held, reopened, else a
        new one held by its rounds. A campaign a loop held and ended is history: not reopened."""
        running = self.find_campaign(name, status="RUNNING")
        if running:
            return running
        held = self.find_campaign(name, held_by=HELD_BY_ROUNDS)
        if held:
            self.client.update_run(held, status="RUNNING")
            return held
        return self.start_campaign(name, params, held_by=HELD_BY_ROUNDS)

    def start_round(self, parent_run_id: str | None, round_number: int, params: Mapping[str, Any]) -> str:
        """The run of round ``round_number`` under the campaign run ``parent_run_id``.

        A new run, unless an earlier attempt of the same round left one (:meth:`find_round`): that
        run is reused, reopened (RUNNING, its ``labelwise.error`` and failed-round champion tag
        cleared) and given the params it lacks. Returns the run id.
        """
        found = self.find_round(parent_run_id, round_number, params)
        if found is not None:
            self._reopen_round(found, params)
            return found
        tags = {KIND_TAG: "round", ROUND_TAG: str(round_number)}
        if parent_run_id:
            tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=f"round-{round_number}", tags=tags)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def find_round(
        self, parent_run_id: str | None, round_number: int, params: Mapping[str, Any]
    ) -> str | None:
        """The newest run of round ``round_number`` under ``parent_run_id`` (None: under no
        campaign) whose logged params agree with ``params`` (every key it has is logged with the
        same value: an attempt of the same work; a param is never overwritten). Any status."""
        filters = [f"tags.`{KIND_TAG}` = 'round'", f"tags.`{ROUND_TAG}` = '{round_number}'"]
        if parent_run_id:
            filters.append(f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
        runs = self.client.search_runs([self.experiment_id], filter_string=" and ".join(filters),
                                       max_results=100, order_by=["attributes.start_time DESC"])
        wanted = {key: _param_text(value) for key, value in params.items()}
        for run in runs:
            if run.data.tags.get(PARENT_TAG) != (parent_run_id or None):
                continue
            logged = run.data.params
            if all(logged.get(key, text) == text for key, text in wanted.items()):
                return run.info.run_id
        return None

    def _reopen_round(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Make an earlier attempt's round run this attempt's: RUNNING, without the failure's
        marks (``labelwise.error``, champion ``kept (round failed)``), with every param."""
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        if ERROR_TAG in run.data.tags:
            self.client.delete_tag(run_id, ERROR_TAG)
        if run.data.tags.get(CHAMPION_TAG) == ROUND_FAILED:
            self.client.delete_tag(run_id, CHAMPION_TAG)
        self.log_params(run_id, {k: v for k, v in params.items() if k not in run.data.params})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(run_id, key, _param_text(value))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], step: int) -> None:
        """Log ``metrics`` at ``step`` (None values skipped). A metric that already has this
        value at this step (an earlier attempt logged it) is not logged twice."""
        present = self.client.get_run(run_id).data.metrics
        for key, value in metrics.items():
            if value is None:
                continue
            if key in present and any(m.step == step and m.value == float(value)
                                      for m in self.client.get_metric_history(run_id, key)):
                continue
            self.client.log_metric(run_id, key, float(value), step=step)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def describe_round(self, run_id: str, champion: str | None = None) -> str:
        """Write a round run's description from what it logged; ``champion`` (e.g. ``moved to
        v3 (…)``) also goes to the tag ``labelwise.champion``; without it the tag (or
        ``pending``) is used. Returns the description."""
        run = self.client.get_run(run_id)
        if champion is not None:
            self.client.set_tag(run_id, CHAMPION_TAG, champion)
        else:
            champion = run.data.tags.get(CHAMPION_TAG, PENDING)
        parent = run.data.tags.get(PARENT_TAG)
        campaign = self.client.get_run(parent).info.run_name if parent else None
        text = round_description(int(run.data.tags.get(ROUND_TAG, -1)), run.data.params.get("strategy"),
                                 run.data.metrics, champion, campaign, run.data.tags.get(VERSION_TAG),
                                 self.scheme)
        self.client.set_tag(run_id, NOTE_TAG, _clip(text))
        return text

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
        """End a run (``error``: recorded in the tag ``labelwise.error``). A round run gets its
        description first, and the campaign that only its rounds held open ends with the last
        of them (:meth:`release_campaign`)."""
        run = self.client.get_run(run_id)
        if error:
            self.client.set_tag(run_id, ERROR_TAG, _clip(error))
        is_round = run.data.tags.get(KIND_TAG) == "round"
        if is_round:
            if CHAMPION_TAG not in run.data.tags:
                champion = PENDING if status == "FINISHED" else ROUND_FAILED
                self.client.set_tag(run_id, CHAMPION_TAG, champion)
            self.describe_round(run_id)
        self.client.set_terminated(run_id, status=status)
        parent = run.data.tags.get(PARENT_TAG)
        if is_round and parent:
            self.release_campaign(parent)

    def campaign_rounds(self, campaign_run_id: str) -> list[dict[str, Any]]:
        """The round runs under a campaign run, in round order (as :meth:`round_metrics`, with
        their tags)."""
        runs = self.client.search_runs(
            [self.experiment_id], max_results=1000,
            filter_string=f"tags.`{KIND_TAG}` = 'round' and tags.`{PARENT_TAG}` = '{campaign_run_id}'")
        return sorted((self._round_row(r, tags=True) for r in runs), key=lambda r: (r["round"], r["run_id"]))

    def release_campaign(self, campaign_run_id: str) -> bool:
        """End a RUNNING campaign its rounds hold (not a loop's) once none of its rounds is
        RUNNING; returns whether it ended. Campaigns from before ``labelwise.held_by`` count as
        held by their rounds (rounds opened them lazily)."""
        run = self.client.get_run(campaign_run_id)
        if run.info.status != "RUNNING" or run.data.tags.get(HELD_BY_TAG, HELD_BY_ROUNDS) != HELD_BY_ROUNDS:
            return False
        rounds = self.campaign_rounds(campaign_run_id)
        if any(r["status"] == "RUNNING" for r in rounds):
            return False
        self._describe_campaign(run, "FINISHED", rounds, None)
        self.client.set_terminated(campaign_run_id, status="FINISHED")
        return True

    def end_campaign(self, campaign_run_id: str, error: str | None = None) -> str:
        """End a campaign run: FINISHED, or FAILED with ``error`` in the tag ``labelwise.error``
        and in its description (which lists its rounds). Returns the status."""
        status = "FAILED" if error else "FINISHED"
        run = self.client.get_run(campaign_run_id)
        if error:
            self.client.set_tag(campaign_run_id, ERROR_TAG, _clip(error))
        self._describe_campaign(run, status, self.campaign_rounds(campaign_run_id), error)
        self.client.set_terminated(campaign_run_id, status=status)
        return status

    def _describe_campaign(self, run: Run, status: str, rounds: Sequence[Mapping[str, Any]],
                           error: str | None) -> None:
        text = campaign_description(run.info.run_name or run.info.run_id, self.project, status, rounds, error,
                                    self.rounds_view_path(), self.scheme)
        self.client.set_tag(run.info.run_id, NOTE_TAG, _clip(text))

    @staticmethod
    def _round_row(run: Run, tags: bool = False) -> dict[str, Any]:
        row = {
            "run_id": run.info.run_id,
            "round": int(run.data.tags.get(ROUND_TAG, -1)),
            "status": run.info.status,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
        }
        if tags:
            row["tags"] = dict(run.data.tags)
        return row

    def round_metrics(self) -> list[dict[str, Any]]:
        """Every round run of this project: run id, round number, status, params and metrics."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'round'", max_results=1000
        )
        return sorted((self._round_row(r) for r in runs), key=lambda r: (r["round"], r["run_id"]))

    # Registry ---------------------------------------------------------------------------
    def register_weights(self, run_id: str, weights: Path) -> str:
        """Log ``weights`` under the run's ``weights/`` and register them; returns the version.

        The version gets the tags ``round``, ``mAP50``, ``mAP50-95`` (from the run) and
        ``promotion = pending``, and a description (:func:`version_description`); the run gets
        the tag ``labelwise.registered_version``. When the run already registered its round's
        version (:meth:`find_version`: an earlier attempt died after registering) that version
        is returned and given what it lacks (tags, description); nothing is registered twice.
        """
        run = self.client.get_run(run_id)
        number = int(run.data.tags.get(ROUND_TAG, -1))
        metrics = run.data.metrics
        tags = {"round": str(number),
                **{n: _fmt(metrics.get(n), 4) for n in self.scheme.headline if n not in _SHORT},
                "promotion": PENDING}
        description = version_description(number, metrics, run_id, "not decided yet", self.scheme)
        version = self.find_version(run_id, number)
        if version is None:
            self.client.log_artifact(run_id, str(weights), "weights")
            self._ensure_registered_model()
            mv = self.client.create_model_version(
                self.model_name, f"{run.info.artifact_uri}/weights", run_id=run_id, tags=tags,
                description=description)
            version = str(mv.version)
        else:
            mv = self.client.get_model_version(self.model_name, version)
            for key, value in tags.items():
                if key not in mv.tags:
                    self.client.set_model_version_tag(self.model_name, version, key, value)
            if not mv.description:
                self.client.update_model_version(self.model_name, version, description=description)
        self.client.set_tag(run_id, VERSION_TAG, version)
        return version

    def find_version(self, run_id: str, round_number: int) -> str | None:
        """The registered version of round ``round_number`` from the run ``run_id`` (tag
        ``round`` and the run id), else None; the oldest if there were ever several."""
        found = self.client.search_model_versions(
            f"name = '{self.model_name}' and run_id = '{run_id}'")
        numbers = sorted(int(mv.version) for mv in found
                         if mv.tags.get("round") == str(round_number))
        return str(numbers[0]) if numbers else None

    def _ensure_registered_model(self) -> None:
        """The project's registered model (created when missing; a concurrent creation is fine)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
            return
        except MlflowException:
            pass
        try:
            self.client.create_registered_model(
                self.model_name, description=f"Detectors of project {self.project}, one version "
                                             f"per learn round; alias `{CHAMPION}`: the deployed one.")
        except MlflowException:
            self.client.get_registered_model(self.model_name)  # created meanwhile, else raise

    def champion(self) -> ChampionInfo | None:
        try:
            mv = self.client.get_model_version_by_alias(self.model_name, CHAMPION)
        except Exception:  # noqa: BLE001 - no model or no alias yet
            return None
        metric = None
        if mv.run_id:
            metric = self.client.get_run(mv.run_id).data.metrics.get(self.scheme.primary)
        return ChampionInfo(self.model_name, str(mv.version), mv.run_id, metric)

    def promote(self, version: str, candidate_metric: float, tolerance: float) -> tuple[PromotionDecision, bool]:
        """Move ``champion`` to ``version`` if the rule allows; returns (decision, moved).

        The decision is written before the alias moves: the version's tag ``promotion``
        (``promoted because …`` / ``not promoted because …``) and description, and its round
        run's tag ``labelwise.champion`` (``moved to v<n> (…)`` / ``kept v<m> (…)``) and
        description. Idempotent: when the alias already points at ``version`` nothing moves
        or is rewritten.
        """
        current = self.champion()
        if current is not None and current.version == str(version):
            return PromotionDecision(True, "already champion", candidate_metric, current.metric), False
        decision = decide_promotion(candidate_metric, current.metric if current else None, tolerance,
                                    self.scheme.primary)
        self._record_promotion(str(version), decision, current)
        if decision.promote:
            self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))
        return decision, decision.promote

    def _record_promotion(
        self, version: str, decision: PromotionDecision, current: ChampionInfo | None
    ) -> None:
        explanation = decision.explanation
        if current is not None:
            explanation += f" (champion was v{current.version})"
        self.client.set_model_version_tag(self.model_name, version, "promotion", explanation)
        mv = self.client.get_model_version(self.model_name, version)
        if not mv.run_id:
            self.client.update_model_version(self.model_name, version, description=explanation)
            return
        run = self.client.get_run(mv.run_id)
        number = int(run.data.tags.get(ROUND_TAG, mv.tags.get("round", -1)))
        self.client.update_model_version(
            self.model_name, version,
            description=version_description(number, run.data.metrics, mv.run_id, explanation, self.scheme))
        # The rule always promotes when there is no champion, so "kept" has a current one.
        kept = f"v{current.version}" if current is not None else "the champion"
        champion = (f"moved to v{version} ({explanation})" if decision.promote
                    else f"kept {kept} ({explanation})")
        if run.data.tags.get(KIND_TAG) == "round":
            self.describe_round(mv.run_id, champion)
        else:
            self.client.set_tag(mv.run_id, CHAMPION_TAG, champion)

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
