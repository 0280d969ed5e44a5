"""Score-batch: the queue of images most worth labelling, from stored predictions.

Reads predictions and embeddings from the catalog (it never runs a model), scores every
unlabelled image, lets the strategy select, and returns a queue sorted ascending by
``uncertainty_score`` with a thumbnail per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelwise.catalog import Catalog, CatalogError, ProjectRecord
from labelwise.config import Settings
from labelwise.domain import ImageScore, ImageStatus, QueueItem, ScoreBatch, class_box_counts
from labelwise.images import make_thumbnail
from labelwise.scoring import SCORE_NAMES, ScoringRule, score_image
from labelwise.strategies import SelectionRequest, Strategy, get_strategy, score_value, select


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


def scoring_rule(settings: Settings) -> ScoringRule:
    sc = settings.scoring
    return ScoringRule(
        aggregation=sc.aggregation,
        top_k=sc.top_k,
        confidence_floor=sc.confidence_floor,
        no_box_score=sc.no_box_score,
        weights=dict(sc.weights),
        blind_band=sc.blind_band,
    )


def _embedding_matrix(
    catalog: Catalog, project: ProjectRecord, embedder: str, ids: list[str], strategy: Strategy
) -> np.ndarray:
    found = catalog.embeddings(project, embedder, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise CatalogError(
            f"strategy {strategy.name!r} needs embeddings from {embedder!r} for every candidate; "
            f"{len(missing)} of {len(ids)} have none (run auto-label again to compute them)"
        )
    return np.stack([found[i] for i in ids]) if ids else np.zeros((0, 1), np.float32)


def select_queue(
    strategy: Strategy,
    scores: Sequence[ImageScore],
    limit: int,
    rng: np.random.Generator,
    *,
    diversity_weight: float,
    candidate_factor: int,
    class_balance: bool,
    embeddings: np.ndarray | None = None,
    labelled_embeddings: np.ndarray | None = None,
    labelled_class_counts: np.ndarray | None = None,
) -> list[int]:
    """The pure part of score-batch: which candidates the strategy queues, in queue order.

    Args:
        scores: one ImageScore per candidate; ``embeddings`` (N, d) rows align with it.
        labelled_embeddings: (L, d) of the images already selected or labelled, or None.
        labelled_class_counts: (C,) labelled boxes per class.

    Returns:
        At most ``limit`` indices into ``scores``, sorted ascending by the strategy's score
        (ties by image id): the order of the queue and of ``uncertainty_score``.
    """
    if not scores:
        return []
    picked = select(strategy, SelectionRequest(
        scores=scores, limit=limit, rng=rng, embeddings=embeddings,
        labelled_embeddings=labelled_embeddings, diversity_weight=diversity_weight,
        candidate_factor=candidate_factor, class_balance=class_balance,
        labelled_class_counts=labelled_class_counts,
    ))
    return sorted((int(i) for i in picked),
                  key=lambda i: (score_value(scores[i], strategy.score_key), scores[i].image_id))


def build_score_batch(
    catalog: Catalog, settings: Settings, request: ScoreBatchRequest, record: bool = True
) -> ScoreBatch:
    """Score the project's unlabelled images and select a queue.

    Images already queued or labelled are never candidates; together they are the "already
    selected and labelled" set diversity is measured against. With ``record`` the round's scores
    and selection are stored in the catalog (a new round number each call).
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
    unlabelled = catalog.images(project, ImageStatus.UNLABELLED)
    rule = scoring_rule(settings)
    if model_version is not None:
        predictions = catalog.predictions(project, model_version)
        candidates = [img for img in unlabelled if img.image_id in predictions]
        scores = [score_image(img.image_id, predictions[img.image_id], rule) for img in candidates]
    else:
        candidates = list(unlabelled)
        zero = {name: 0.0 for name in SCORE_NAMES}
        scores = [ImageScore(img.image_id, 0.0, dict(zero), 0, -1) for img in candidates]
    ids = [img.image_id for img in candidates]
    embedder = request.embedder or catalog.latest_embedder(project)
    needs_embeddings = strategy.needs_embeddings
    embeddings = labelled = None
    if needs_embeddings:
        if embedder is None:
            raise CatalogError(
                f"strategy {strategy.name!r} needs image embeddings and project {project.name!r} "
                "has none; run auto-label with an embedder, or choose a ranking strategy"
            )
        embeddings = _embedding_matrix(catalog, project, embedder, ids, strategy)
        done = [img.image_id for img in catalog.images(project, [ImageStatus.LABELLED, ImageStatus.QUEUED])]
        found = catalog.embeddings(project, embedder, done)
        labelled = np.stack(list(found.values())) if found else None
    order = select_queue(
        strategy, scores, request.limit, np.random.default_rng(request.seed),
        diversity_weight=request.diversity_weight, candidate_factor=request.candidate_factor,
        class_balance=request.class_balance, embeddings=embeddings, labelled_embeddings=labelled,
        labelled_class_counts=class_box_counts(catalog.labels(project).values(), len(project.class_names)),
    )
    chosen = [(candidates[i], scores[i]) for i in order]
    thumbs = settings.thumbnails_dir
    queue = [
        QueueItem(
            image_id=img.image_id,
            uncertainty_score=score_value(sc, strategy.score_key),
            scores=dict(sc.scores),
            thumbnail=str(make_thumbnail(img.path, thumbs, img.image_id, request.thumbnail_size)),
        )
        for img, sc in chosen
    ]
    params: dict[str, object] = {
        "limit": request.limit,
        "diversity_weight": request.diversity_weight,
        "seed": request.seed,
        "class_balance": request.class_balance,
        "candidate_factor": request.candidate_factor,
        "embedder": embedder if needs_embeddings else None,
        "candidates": len(candidates),
        "unlabelled_without_prediction": len(unlabelled) - len(candidates),
        "scoring": rule.as_params(),
    }
    if record:
        number = catalog.next_round_number(project)
        catalog.record_round(project, number, strategy.name, model_version, params, scores,
                             [item.image_id for item in queue])
        params["round"] = number
    return ScoreBatch(str(project.name), strategy.name, model_version, queue, params)


def thumbnail_path(settings: Settings, image_id: str, size: int = 128) -> Path:
    return settings.thumbnails_dir / f"{image_id}_{size}.jpg"


def write_batch_artifacts(
    settings: Settings, catalog: Catalog, batch: ScoreBatch | dict, out_dir: Path | None = None
) -> dict[str, str]:
    """The queue as JSON and a contact sheet PNG of the queued images with predicted boxes."""
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
        sheet = contact_sheet(items, project.class_names, out / f"round-{number}-queue.png",
                              confidence_floor=settings.scoring.confidence_floor)
        paths["contact_sheet"] = str(sheet)
    return paths
