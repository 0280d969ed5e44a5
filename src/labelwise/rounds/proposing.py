"""The propose use case: resolve the model -> auto-label the pool -> score-batch -> queue.

:func:`propose_round` is the one recipe of the propose half of a round, for every caller: the
``labelwise propose`` command, a notebook and the ``propose-round`` Prefect flow. It ends when
the batch is in Label Studio: the round is recorded ``proposed`` by score-batch (its images
held against other rounds), its queue written to disk (JSON and a contact sheet), imported into
Label Studio (``proposed -> queued``) and its figures noted with the round.

Auto-labelling the pool is the one step that fans out: the use case gets a :data:`PoolLabeller`
(``model ref -> one report per shard``). :func:`label_pool_in_process` labels the shards one
after the other; the flow passes one that maps the shards over Prefect's task runner (threads,
a local Dask cluster or a team's Dask scheduler). Every other step is a library call run through
a :class:`~labelwise.rounds.steps.StepRunner`, as in :mod:`labelwise.rounds.learning`.

A failed step leaves what is stored consistent: before score-batch nothing is recorded but
predictions (auto-label is resumable); after it, the round stays ``proposed`` with its images
unqueued until the queue step succeeds (:func:`labelwise.review.queue_batch` is idempotent, so
the step is retried and a later ``labelwise queue`` finishes it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from labelwise.config import Settings
from labelwise.rounds.params import RoundNote
from labelwise.rounds.steps import StepRunner, run_directly

if TYPE_CHECKING:
    from labelwise.domain import ScoreBatch
    from labelwise.learn import StartingModel

log = logging.getLogger(__name__)

PROPOSE_STEPS = ("resolve-model", "auto-label", "score-batch", "write-batch-artifacts",
                 "queue-for-review", "record-round-figures")
"""The steps of :func:`propose_round`, in order (the names the runner gets; ``auto-label`` runs
once per shard)."""

RETRYABLE_STEPS = frozenset({"resolve-model", "write-batch-artifacts", "queue-for-review",
                             "record-round-figures"})
"""Steps safe to repeat after a failure that talk to a service or the disk: the queue reuses the
tasks an earlier attempt created, files and notes are overwritten with the same values.
Score-batch is not (a retry would record a second round); auto-label is compute, and resumable
by a rerun rather than retried."""

COLD_START = "cold_start"
"""The strategy of a project's first round when no trained model exists (diversity only)."""

PoolLabeller = Callable[[str], list[dict[str, Any]]]
"""Auto-labels the project's pool with a model ref; returns one report per shard
(:meth:`labelwise.autolabel.AutoLabelReport.as_dict`), at least one."""


@dataclass(frozen=True)
class ProposeRequest:
    """What to propose; None = the config's value.

    Attributes:
        project: the catalog project.
        strategy: the selection strategy (None: the config's, or :data:`COLD_START` when the
            project has no trained model yet).
        limit: images to queue.
        diversity_weight: in [0, 1], for strategies that honour it.
        model: an explicit ``.pt``/yaml, or a ``models:/...@champion`` ref (None: the champion,
            else the configured model).
        group: the upload group the queued tasks join (its own Label Studio tab); None: none.
        seed: the selection's random seed.
    """

    project: str
    strategy: str | None = None
    limit: int | None = None
    diversity_weight: float | None = None
    model: str | None = None
    group: str | None = "active-learning"
    seed: int = 0


@dataclass(frozen=True)
class ProposeOutcome:
    """What one :func:`propose_round` call did.

    Attributes:
        round: the recorded round's number.
        base: the model the pool was auto-labelled with.
        labelled: one auto-label report per shard.
        batch: the recorded score batch (its queue, strategy, applied knobs).
        artifacts: the batch's files on disk (``queue`` JSON, ``contact_sheet`` PNG).
        queued: :func:`labelwise.review.queue_batch`'s reply (Label Studio project and tasks).
    """

    round: int
    base: StartingModel
    labelled: tuple[dict[str, Any], ...]
    batch: ScoreBatch
    artifacts: dict[str, str]
    queued: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The summary flows and the command return."""
        return {"round": self.round, "strategy": self.batch.strategy,
                "model_version": self.batch.model_version, "queued": len(self.batch.queue),
                "labelstudio": self.queued}


def choose_strategy(requested: str | None, base: StartingModel) -> str | None:
    """The requested strategy; with none requested and no trained model yet (the configured
    model is a yaml build), :data:`COLD_START`."""
    if requested is None and base.source == "configured" and base.ref.endswith((".yaml", ".yml")):
        return COLD_START
    return requested


# -- steps: one library call each --------------------------------------------------------------
def resolve_model(settings: Settings, project: str, explicit: str | None) -> StartingModel:
    from labelwise.learn import resolve_base_model

    return resolve_base_model(settings, project, explicit)


def pool_shards(settings: Settings, project: str, shard_size: int) -> list[list[str]]:
    """Ids of ALL the project's images, in catalog order, cut into shards of ``shard_size``
    (``[[]]`` for an empty project): unlabelled images get predictions, and every image gets an
    embedding from the current model (diversity is measured against queued and labelled images
    too); auto-label skips what is already done."""
    from labelwise.runtime import open_catalog

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    catalog = open_catalog(settings)
    ids = [img.image_id for img in catalog.images(catalog.project(project))]
    return [ids[i : i + shard_size] for i in range(0, len(ids), shard_size)] or [[]]


def auto_label_shard(settings: Settings, project: str, model: str, image_ids: list[str]) -> dict[str, Any]:
    """Predict and embed one shard with ``model`` (resumable: done images are skipped); an empty
    shard means the whole project."""
    from labelwise.autolabel import auto_label
    from labelwise.runtime import load_embedder, load_model, open_catalog

    catalog = open_catalog(settings)
    record = catalog.project(project)
    detector = load_model(settings, record, model)
    report = auto_label(catalog, record, detector, load_embedder(settings, detector),
                        settings.detector.batch, image_ids=image_ids or None,
                        write_batch=settings.detector.write_batch)
    return report.as_dict()


def label_pool_in_process(
    settings: Settings, project: str, shard_size: int = 256, *, run: StepRunner = run_directly,
    say: Callable[[str], None] = log.info,
) -> PoolLabeller:
    """A :data:`PoolLabeller` that auto-labels the shards one after the other in this process."""
    from labelwise.round_story import shard_line

    def label(model: str) -> list[dict[str, Any]]:
        reports = []
        for index, shard in enumerate(pool_shards(settings, project, shard_size)):
            report = run("auto-label", auto_label_shard, settings, project, model, shard)
            say(shard_line(report, index))
            reports.append(report)
        return reports

    return label


def score_batch(settings: Settings, project: str, strategy: str | None, limit: int | None,
                diversity_weight: float | None, model_version: str | None, seed: int) -> ScoreBatch:
    """Score the pool and record the round (``proposed``): :func:`~labelwise.scorebatch.build_score_batch`."""
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    request = ScoreBatchRequest.from_settings(settings, project, strategy=strategy, limit=limit,
                                              diversity_weight=diversity_weight,
                                              model_version=model_version, seed=seed)
    return build_score_batch(open_catalog(settings), settings, request, record=True)


def write_files(settings: Settings, batch: ScoreBatch) -> dict[str, str]:
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import write_batch_artifacts

    return write_batch_artifacts(settings, open_catalog(settings), batch)


def queue(settings: Settings, project: str, batch: ScoreBatch, group: str | None) -> dict[str, Any]:
    from labelwise.review import queue_batch
    from labelwise.runtime import open_catalog

    return queue_batch(settings, open_catalog(settings), project, batch, group)


def record_figures(settings: Settings, project: str, number: int, figures: dict[str, Any]) -> dict[str, Any]:
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings)
    return catalog.update_round_params(catalog.project(project), number, figures)


# -- the use case ------------------------------------------------------------------------------
def propose_round(
    settings: Settings,
    request: ProposeRequest,
    *,
    run: StepRunner = run_directly,
    label_pool: PoolLabeller | None = None,
    say: Callable[[str], None] = log.info,
    on_round: Callable[[int], object] | None = None,
) -> ProposeOutcome:
    """Propose the project's next round and queue it in Label Studio.

    Args:
        run: how each step runs (:func:`~labelwise.rounds.steps.run_directly`, or the flow's
            Prefect-task runner).
        label_pool: how the pool is auto-labelled (default: :func:`label_pool_in_process`, 256
            images a shard, through ``run``).
        say: where the one line per step goes (a logger's ``info``).
        on_round: called with the round's number as soon as score-batch recorded it (the flow
            renames its run after it).

    Returns:
        The outcome: the round, its batch, files and Label Studio reply.

    Raises:
        Whatever a step raised; see the module docstring for what is left stored.
    """
    from labelwise.round_story import (
        auto_label_line,
        batch_files_line,
        model_line,
        queue_line,
        score_batch_line,
    )

    project = request.project
    base: StartingModel = run("resolve-model", resolve_model, settings, project, request.model)
    say(model_line(asdict(base)))
    labeller = label_pool or label_pool_in_process(settings, project, run=run, say=say)
    labelled = labeller(base.ref)
    say(auto_label_line(labelled))
    batch: ScoreBatch = run("score-batch", score_batch, settings, project,
                            choose_strategy(request.strategy, base), request.limit,
                            request.diversity_weight, labelled[0]["model_version"], request.seed)
    say(score_batch_line(batch.as_json()))
    number = batch.round_number
    if number is None:  # build_score_batch(record=True) always records one
        raise RuntimeError(f"score-batch for project {project!r} returned a batch without a "
                           f"recorded round (params {batch.params})")
    if on_round is not None:
        on_round(number)
    files: dict[str, str] = run("write-batch-artifacts", write_files, settings, batch)
    say(batch_files_line(files))
    queued: dict[str, Any] = run("queue-for-review", queue, settings, project, batch, request.group)
    say(queue_line(queued))
    run("record-round-figures", record_figures, settings, project, number, {
        RoundNote.BASE_MODEL.value: base.ref,
        RoundNote.AUTO_LABEL_SECONDS.value: sum(float(r["seconds"]) for r in labelled),
        RoundNote.ARTIFACTS.value: files,
    })
    return ProposeOutcome(number, base, tuple(labelled), batch, files, queued)
