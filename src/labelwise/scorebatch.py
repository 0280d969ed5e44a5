"""Score-batch: the queue of images most worth labelling, from stored predictions.

Reads predictions and embeddings from the catalog (it never runs a model), scores every
unlabelled image, lets the strategy select, and returns a queue sorted ascending by
``uncertainty_score`` with a thumbnail per item; each item's ``rank`` keeps the selector's order
(1 = its first pick).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from labelwise.catalog import Catalog, CatalogError, ImageRecord, ProjectRecord, RoundConflict
from labelwise.catalog.proposals import STALE_PROPOSAL_AGE, SettledRounds
from labelwise.columnar import ScoreTable
from labelwise.config import Settings
from labelwise.domain import ImageScore, ImageStatus, QueueItem, ScoreBatch, class_box_counts
from labelwise.images import make_thumbnail
from labelwise.reasons import PickReason, explain_queue
from labelwise.round_story import tied_count
from labelwise.rounds.opening import open_selection_round
from labelwise.rounds.params import SelectionRecord
from labelwise.scoring import ScoringRule, score_packed, score_table
from labelwise.selection import LazyRows, Rows
from labelwise.strategies import (
    AppliedKnobs,
    Selection,
    SelectionRequest,
    Strategy,
    choose,
    get_strategy,
    score_value,
)
from labelwise.task_types import TaskType

SELECT_ATTEMPTS = 25  # selections of one recording score-batch racing concurrent rounds


class NoPredictionsError(CatalogError):
    """Scoring was asked for before any model predicted the project's images."""


@dataclass(frozen=True)
class ScoreBatchRequest:
    """Arguments of one score-batch; validated on construction."""

    project: str
    strategy: str
    limit: int
    diversity_weight: float
    seed: int = 0
    model_version: str | None = None
    embedder: str | None = None
    class_balance: bool = False
    candidate_factor: int = 10
    thumbnail_size: int = 128

    def __post_init__(self) -> None:
        get_strategy(self.strategy)
        if self.limit < 1:
            raise ValueError(f"limit must be an integer >= 1; got {self.limit}")
        if not 0.0 <= self.diversity_weight <= 1.0:
            raise ValueError(f"diversity_weight must lie in [0, 1]; got {self.diversity_weight}")

    @classmethod
    def from_settings(cls, settings: Settings, project: str, **overrides: object) -> "ScoreBatchRequest":
        sel = settings.selection
        values: dict[str, object] = {
            "project": project,
            "strategy": sel.strategy,
            "limit": sel.limit,
            "diversity_weight": sel.diversity_weight,
            "seed": sel.seed,
            "class_balance": sel.class_balance,
            "candidate_factor": sel.candidate_factor,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def scoring_rule(settings: Settings, task_type: TaskType = TaskType.DETECT) -> ScoringRule:
    """The image-scoring rule of a project of ``task_type`` under ``settings.scoring``.

    A classification has one whole-image row per image (:mod:`labelwise.task_types`), so its
    rule has no confidence floor: every image is scored by its one distribution, and the
    aggregation over one row is that row's score. Only a segmentation's rule blends mask
    stabilities in (``scoring.mask_weight``).
    """
    sc = settings.scoring
    return ScoringRule(
        aggregation=sc.aggregation,
        top_k=sc.top_k,
        confidence_floor=0.0 if task_type is TaskType.CLASSIFY else sc.confidence_floor,
        no_box_score=sc.no_box_score,
        weights=dict(sc.weights),
        blind_band=sc.blind_band,
        mask_weight=sc.mask_weight if task_type is TaskType.SEGMENT else 0.0,
    )


def pool_scores(
    catalog: Catalog, project: ProjectRecord, model_version: str, rule: ScoringRule
) -> ScoreTable:
    """Every unlabelled image's scores from ``model_version``'s stored predictions (ordered by
    image id), read and scored chunk by chunk: memory is the table plus one chunk."""
    chunks = catalog.packed_predictions(project, model_version, ImageStatus.UNLABELLED)
    return ScoreTable.concat([score_packed(chunk, rule) for chunk in chunks])


def _current_scores(
    catalog: Catalog, project: ProjectRecord, model_version: str, rule: ScoringRule,
    table: ScoreTable, unlabelled: Sequence[str],
) -> ScoreTable:
    """``table`` brought up to date with the unlabelled ids now: rows of images no longer
    unlabelled dropped, images unlabelled since scored and merged in (order by image id)."""
    now = set(unlabelled)
    kept = table.take(np.fromiter((i in now for i in table.image_ids), bool, len(table)))
    new = sorted(now.difference(kept.image_ids))
    found = catalog.predictions(project, model_version, new) if new else {}
    if not found:
        return kept
    merged = ScoreTable.concat([kept, score_table(sorted(found.items()), rule)])
    return merged.take(np.argsort(np.asarray(merged.image_ids, dtype=object), kind="stable"))


def candidate_embeddings(
    catalog: Catalog, project: ProjectRecord, embedder: str, ids: Sequence[str], strategy: Strategy
) -> LazyRows:
    """The (N, d) embeddings of the N candidates ``ids``, read only for the rows a selector
    considers (its candidate pool, then the picks).

    Raises:
        CatalogError: ``embedder`` stored nothing in this project; or (when rows are read) a
            considered candidate has no embedding.
    """
    dim = catalog.embedding_dim(project, embedder)
    if dim is None:
        raise CatalogError(
            f"strategy {strategy.name!r} needs embeddings from {embedder!r}; project "
            f"{project.name!r} has none from it (run auto-label with that embedder)")

    def fetch(rows: np.ndarray) -> np.ndarray:
        wanted = [ids[int(i)] for i in rows]
        found = catalog.embeddings(project, embedder, wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise CatalogError(
                f"strategy {strategy.name!r} needs embeddings from {embedder!r} for every "
                f"candidate it considers; {len(missing)} of {len(wanted)} considered have none "
                f"(e.g. {missing[:3]}; run auto-label again to compute them)")
        return (np.stack([found[i] for i in wanted]) if wanted
                else np.zeros((0, dim), np.float32))

    return LazyRows(len(ids), dim, fetch)


@dataclass(frozen=True)
class QueueSelection:
    """What :func:`select_queue` returns: the queue order, the selector's order, applied knobs.

    Attributes:
        picks: indices into the candidates' ``scores`` in the selector's order (first pick first).
        order: the same indices in queue order: ascending by the strategy's score (ties by image
            id), the order of the queue and of ``uncertainty_score``.
        applied: the diversity weight and class balance the strategy actually applied
            (``Selection.applied``; see :mod:`labelwise.strategies` for the rule per strategy).
    """

    picks: tuple[int, ...]
    order: tuple[int, ...]
    applied: AppliedKnobs

    def __post_init__(self) -> None:
        if sorted(self.picks) != sorted(self.order) or len(set(self.picks)) != len(self.picks):
            raise ValueError(f"order must be the distinct picks reordered; got picks {self.picks}, "
                             f"order {self.order}")

    @property
    def ranks(self) -> tuple[int, ...]:
        """(len(order),) the selector's rank of each queue entry: 1 = its first pick; a
        permutation of 1..k aligned with ``order``."""
        rank_of = {index: r for r, index in enumerate(self.picks, 1)}
        return tuple(rank_of[i] for i in self.order)


def queue_entry(
    image: ImageRecord,
    uncertainty_score: float,
    scores: Mapping[str, float],
    thumbnails_dir: Path,
    thumbnail_size: int,
    *,
    reason: PickReason | None = None,
    rank: int | None = None,
) -> QueueItem:
    """One queue entry with its thumbnail written (long side ``thumbnail_size`` px, under
    ``thumbnails_dir``): how every round source builds the items it queues.

    Args:
        uncertainty_score: the value the queue is sorted by, in [0, 1] (lower = more uncertain).
        scores: every score of the image by name.
        reason: why it was picked (None: "uncertain", with no sentence).
        rank: its place in the selector's order (None: no selector picked it).

    Raises:
        ImageReadError, ThumbnailWriteError: the thumbnail could not be made.
    """
    thumb = make_thumbnail(image.path, thumbnails_dir, image.image_id, thumbnail_size)
    return QueueItem(
        image_id=image.image_id,
        uncertainty_score=float(uncertainty_score),
        scores={str(k): float(v) for k, v in scores.items()},
        thumbnail=str(thumb),
        reason=reason.code if reason is not None else "uncertain",
        reason_text=reason.text if reason is not None else "",
        rank=rank,
    )


def select_queue(
    strategy: Strategy,
    scores: Sequence[ImageScore],
    limit: int,
    rng: np.random.Generator,
    *,
    diversity_weight: float,
    candidate_factor: int,
    class_balance: bool,
    embeddings: Rows | None = None,
    labelled_embeddings: np.ndarray | None = None,
    labelled_class_counts: np.ndarray | None = None,
) -> QueueSelection:
    """The pure part of score-batch: which candidates the strategy queues, in which orders, and
    the knob values it applied.

    ``diversity_weight`` and ``class_balance`` are the request; a strategy honours them or sets
    its own (``Strategy.honours``), and ``QueueSelection.applied`` says which values were used
    (score-batch records those, see :class:`~labelwise.rounds.params.SelectionRecord`).

    Args:
        scores: one ImageScore per candidate; ``embeddings`` (N, d) rows align with it.
        labelled_embeddings: (L, d) of the images already selected or labelled, or None.
        labelled_class_counts: (C,) labelled boxes per class.

    Returns:
        At most ``limit`` indices into ``scores``: ``order`` sorted ascending by the strategy's
        score (ties by image id), the order of the queue and of ``uncertainty_score``;
        ``picks`` in the selector's order; ``ranks`` the selector's rank of each ``order`` entry.
    """
    request = SelectionRequest(
        scores=scores, limit=limit, rng=rng, embeddings=embeddings,
        labelled_embeddings=labelled_embeddings, diversity_weight=diversity_weight,
        candidate_factor=candidate_factor, class_balance=class_balance,
        labelled_class_counts=labelled_class_counts,
    )
    chosen: Selection = choose(strategy, request)
    picks = tuple(int(i) for i in chosen.indices)
    order = tuple(sorted(picks, key=lambda i: (score_value(scores[i], strategy.score_key),
                                               scores[i].image_id)))
    return QueueSelection(picks, order, chosen.applied)


def build_score_batch(
    catalog: Catalog, settings: Settings, request: ScoreBatchRequest, record: bool = True
) -> ScoreBatch:
    """Score the project's unlabelled images and select a queue.

    The queue is sorted ascending by ``uncertainty_score``; each item's ``rank`` is its place in
    the selector's order (1 = first pick). ``params.diversity_weight`` / ``params.class_balance``
    are the values the strategy APPLIED; when the request asked for other values (a strategy
    that sets a knob itself, see :mod:`labelwise.strategies`) they are in
    ``params.requested_diversity_weight`` / ``params.requested_class_balance``
    (:meth:`~labelwise.rounds.params.SelectionRecord.of_request`).

    Images already queued or labelled are never candidates, nor are images selected in another
    round that is still open (``proposed`` and not stale: the rule is in
    :mod:`labelwise.catalog.rounds`), so two selections at once never pick the same image;
    together they are the "already selected and labelled" set diversity is measured against.
    ``params.held_back`` counts the candidates open rounds hold.

    With ``record`` the round's scores and selection are stored as a new round
    (``catalog.create_round``: its own number even when other processes record at the same
    instant). Stale proposals left by killed or failed queues are settled first and reported in
    ``params.closed_stale_rounds`` / ``params.resumed_stale_rounds``. When another round takes
    some of the selected images between selection and recording, the queue is selected again
    without them (at most :data:`SELECT_ATTEMPTS` times).

    Raises:
        NoPredictionsError: a strategy that needs predictions and none are stored.
        CatalogError: a strategy that needs embeddings the candidates lack.
        RoundConflict: ``record`` and every candidate is held by open rounds (the message names
            them), or the selection kept losing its images to concurrent rounds.
        ImageReadError, ThumbnailWriteError: a thumbnail could not be made (nothing recorded).
    """
    project = catalog.project(request.project)
    strategy = get_strategy(request.strategy)
    model_version = request.model_version or catalog.latest_model_version(project)
    if model_version is None and strategy.needs_predictions:
        raise NoPredictionsError(
            f"project {project.name!r} has no predictions yet; run `labelwise auto-label "
            f"--project {project.name} --model <weights.pt|model.yaml>` first, or use "
            "--strategy cold_start"
        )
    rule = scoring_rule(settings, project.task_type)
    embedder = request.embedder or catalog.latest_embedder(project)
    needs_embeddings = strategy.needs_embeddings
    if needs_embeddings and embedder is None:
        raise CatalogError(
            f"strategy {strategy.name!r} needs image embeddings and project {project.name!r} "
            "has none; run auto-label with an embedder, or choose a ranking strategy"
        )
    settled = catalog.settle_stale_rounds(project) if record else SettledRounds()
    table: ScoreTable | None = None  # the scorable images' scores, read once, then kept current

    for attempt in range(1, SELECT_ATTEMPTS + 1):
        held = catalog.held_images(project)
        unlabelled = catalog.image_ids(project, ImageStatus.UNLABELLED)
        if model_version is None:
            table = ScoreTable.unscored(unlabelled)
        elif table is None:
            table = pool_scores(catalog, project, model_version, rule)
        else:
            table = _current_scores(catalog, project, model_version, rule, table, unlabelled)
        scores = table.take(np.fromiter((i not in held for i in table.image_ids), bool, len(table)))
        ids = scores.image_ids
        embeddings: LazyRows | None = None
        labelled = None
        if needs_embeddings:
            assert embedder is not None
            embeddings = candidate_embeddings(catalog, project, embedder, ids, strategy)
            done = catalog.image_ids(project, [ImageStatus.LABELLED, ImageStatus.QUEUED])
            found = catalog.embeddings(project, embedder, done + sorted(held))
            labelled = np.stack(list(found.values())) if found else None
        labelled_counts = class_box_counts(catalog.labels(project).values(), len(project.class_names))
        selected = select_queue(
            strategy, scores, request.limit, np.random.default_rng(request.seed),
            diversity_weight=request.diversity_weight, candidate_factor=request.candidate_factor,
            class_balance=request.class_balance, embeddings=embeddings, labelled_embeddings=labelled,
            labelled_class_counts=labelled_counts,
        )
        order = list(selected.order)
        held_back = len(table) - len(scores)
        if record and not order and held_back:
            raise RoundConflict(_all_held_message(catalog, project, held, held_back), held,
                                sorted(set(held.values())))
        picked_ids = [ids[i] for i in order]
        chosen = list(zip(catalog.require_images(project, picked_ids), [scores[i] for i in order]))
        picked_predictions = (catalog.predictions(project, model_version, picked_ids)
                              if model_version is not None else {})
        mass = scores.class_mass
        reasons = explain_queue(
            strategy, [sc for _, sc in chosen],
            [picked_predictions.get(i) if model_version is not None else None for i in picked_ids],
            rule.confidence_floor, project.class_names,
            picked_embeddings=embeddings[np.asarray(order)] if embeddings is not None and order else None,
            labelled_embeddings=labelled, labelled_counts=labelled_counts,
            candidate_mass=mass if strategy.weighs_rarity and len(scores) and mass.shape[1] else None,
            task_type=project.task_type,
        )
        thumbs = settings.thumbnails_dir
        queue = [
            queue_entry(img, score_value(sc, strategy.score_key), sc.scores, thumbs,
                        request.thumbnail_size, reason=why, rank=rank)
            for (img, sc), why, rank in zip(chosen, reasons, selected.ranks, strict=True)
        ]
        selection = SelectionRecord.of_request(
            limit=request.limit, seed=request.seed, candidate_factor=request.candidate_factor,
            requested_weight=request.diversity_weight, requested_balance=request.class_balance,
            applied_weight=selected.applied.diversity_weight, applied_balance=selected.applied.class_balance,
            embedder=embedder if needs_embeddings else None,
            candidates=len(scores),
            tied_candidates=tied_count(scores.column(strategy.score_key).tolist()),
            unlabelled_without_prediction=len(unlabelled) - len(table),
            held_back=held_back,
            scoring=rule.as_params(),
        )
        if not record:
            return ScoreBatch(str(project.name), strategy.name, model_version, queue,
                              selection.as_json(settled=False))
        selection = selection.with_settled(settled.closed, settled.resumed)
        params = selection.as_json()
        try:
            number = open_selection_round(catalog, project, strategy.name, model_version, selection,
                                          scores, [item.image_id for item in queue])
        except RoundConflict as exc:
            if attempt == SELECT_ATTEMPTS:
                raise RoundConflict(
                    f"{exc} (gave up after {SELECT_ATTEMPTS} selections, each losing images to "
                    "concurrent rounds)", exc.held, exc.open_rounds) from None
            again = catalog.settle_stale_rounds(project)  # a holder may have died meanwhile
            settled.closed += again.closed
            settled.resumed += again.resumed
            continue
        params["round"] = number
        return ScoreBatch(str(project.name), strategy.name, model_version, queue, params)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _all_held_message(
    catalog: Catalog, project: ProjectRecord, held: dict[str, int], held_back: int
) -> str:
    """One line: nothing is left to select because open rounds hold every candidate."""
    now = datetime.now(timezone.utc)
    numbers = sorted(set(held.values()))
    holders = ([p.describe(now) for p in catalog.proposals(project) if p.number in numbers]
               or [f"round {n}" for n in numbers])
    return (
        f"project {project.name!r}: no image left to select for a new round: all {held_back} "
        f"unlabelled image(s) with predictions are selected in open {', '.join(holders)}; "
        "expected at least one candidate no open round holds (wait until it is queued; a "
        f"proposal whose process is gone, or older than {STALE_PROPOSAL_AGE}, is closed by the "
        "next recording score-batch)"
    )


def thumbnail_path(settings: Settings, image_id: str, size: int = 128) -> Path:
    return settings.thumbnails_dir / f"{image_id}_{size}.jpg"


def write_batch_artifacts(
    settings: Settings, catalog: Catalog, batch: ScoreBatch | dict, out_dir: Path | None = None
) -> dict[str, str]:
    """The queue as JSON and a contact sheet PNG of the queued images: the boxes reviewers get
    as pre-annotations (``labelstudio.preannotation_conf``), each image's score and why it was
    picked."""
    import json

    from labelwise.reports import contact_sheet

    data = batch.as_json() if isinstance(batch, ScoreBatch) else dict(batch)
    project = catalog.project(str(data["project_id"]))
    number = (data.get("params") or {}).get("round", "x")  # type: ignore[union-attr]
    out = out_dir or settings.state_dir / "reports" / project.name
    out.mkdir(parents=True, exist_ok=True)
    queue_json = out / f"round-{number}-queue.json"
    queue_json.write_text(json.dumps(data, indent=2))
    paths = {"queue": str(queue_json)}
    queue = list(data["queue"])  # type: ignore[arg-type]
    if queue:
        ids = [str(item["image_id"]) for item in queue]
        records = catalog.require_images(project, ids)
        preds = catalog.predictions(project, str(data["model_version"]), ids) if data.get("model_version") else {}
        items = [(r.image_id, r.path, float(item["uncertainty_score"]), preds.get(r.image_id))
                 for r, item in zip(records, queue)]
        outlines = (catalog.prediction_segments(project, str(data["model_version"]), ids)
                    if data.get("model_version") and project.task_type is TaskType.SEGMENT else None)
        sheet = contact_sheet(items, project.class_names, out / f"round-{number}-queue.png",
                              confidence_floor=settings.labelstudio.preannotation_floor(project.task_type.value),
                              captions=[str(item.get("reason_text") or "") for item in queue],
                              outlines=outlines)
        paths["contact_sheet"] = str(sheet)
    return paths
