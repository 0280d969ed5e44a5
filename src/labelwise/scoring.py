"""Uncertainty scores: pure numpy, every score on [0, 1], lower = more uncertain.

Per box, from a class-probability matrix ``probs`` of shape (N, C):

* :func:`lowest_confidence` = max_c p_c (the top class probability);
* :func:`margin` = p_(1) - p_(2) (top-1 minus top-2 probability; 1 when C == 1);
* :func:`entropy` = 1 - H(p) / ln(C) with natural logs and 0 * ln 0 = 0 (1 when C == 1).

Per image, box scores are aggregated over the boxes whose confidence reaches a floor
(:func:`aggregate`): the prediction threshold is kept low so near-threshold candidates are scored,
but most of those candidates are background and would otherwise decide the minimum.

* ``min`` (default): the least certain box decides (a single confusing object makes the image
  worth labelling).
* ``mean``: the average box; images with many easy boxes are pulled up.
* ``topk_mean``: mean of the k least certain boxes (k = ``top_k``), between min and mean.
* ``sum``: sum of the per-box uncertainties (1 - score), as in PPAL, mapped back to [0, 1] by
  ``1 / (1 + sum)`` so it stays "lower = more uncertain": many uncertain boxes add up.

An image with no box at or above the floor ("blind") is scored inside the band
``[no_box_score, no_box_score + blind_band]`` (defaults 0 and 0.1: below every image whose
boxes score higher, since a detector that believes in nothing on a pool image has either missed
the objects or met a scene it does not know). Within the band the blind images are ranked by
their faint (below-floor) detections rather than tied (:func:`blind_scores`):

* ``faint`` = the image's detections by confidence descending, the top ``top_k`` kept;
* evidence ``e = 1 - exp(-m)`` on [0, 1), ``m`` = the summed confidence of *all* detections;
* per score name, ``s = aggregate(box score of faint.probs, aggregation, top_k)`` on [0, 1];
* blind score = ``no_box_score + blind_band * (0.5 * (1 - e) + 0.5 * s)``, so more faint
  evidence and more confusing faint boxes score lower (picked first); the image's
  ``uncertainty_score`` is :func:`combine` of those per-name values;
* an image with no detection at all gets ``no_box_score + blind_band`` for every score (nothing
  to go on: ranked after the blind images with faint evidence).

``blind_band = 0`` gives every blind image exactly ``no_box_score`` and ``predicted_class = -1``
(the old tie). Blind images keep ``boxes_considered = 0``; otherwise their ``predicted_class`` is
the class of the most confident faint box (-1 without detections). The rule, band included, is
recorded with every result.

The image's ``uncertainty_score`` is the weighted combination of the three image scores
(:func:`combine`), weights normalised to sum to 1, equal by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from labelwise.domain import Detections, ImageScore, validate_probs

ScoreName = Literal["lowest_confidence", "margin_sampling", "entropy"]
Aggregation = Literal["min", "mean", "topk_mean", "sum"]
SCORE_NAMES: tuple[ScoreName, ...] = ("lowest_confidence", "margin_sampling", "entropy")
AGGREGATIONS: tuple[Aggregation, ...] = ("min", "mean", "topk_mean", "sum")


def lowest_confidence(probs: np.ndarray) -> np.ndarray:
    """Top class probability per box: (N, C) -> (N,), on [1/C, 1]."""
    p = validate_probs(probs)
    return p.max(axis=1) if p.shape[0] else np.zeros(0)


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 class probability per box: (N, C) -> (N,), on [0, 1]."""
    p = validate_probs(probs)
    if p.shape[0] == 0:
        return np.zeros(0)
    if p.shape[1] == 1:
        return np.ones(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.clip(top2[:, 1] - top2[:, 0], 0.0, 1.0)


def entropy(probs: np.ndarray) -> np.ndarray:
    """One minus normalised Shannon entropy per box: (N, C) -> (N,), on [0, 1].

    ``1 - H(p) / ln(C)`` with natural logarithms and ``0 * ln 0 = 0``; a one-hot row scores 1,
    the uniform row 0.
    """
    p = validate_probs(probs)
    if p.shape[0] == 0:
        return np.zeros(0)
    c = p.shape[1]
    if c == 1:
        return np.ones(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = -plogp.sum(axis=1)
    return np.clip(1.0 - h / np.log(c), 0.0, 1.0)


BOX_SCORES: dict[ScoreName, Callable[[np.ndarray], np.ndarray]] = {
    "lowest_confidence": lowest_confidence,
    "margin_sampling": margin,
    "entropy": entropy,
}


def aggregate(box_scores: np.ndarray, how: Aggregation = "min", top_k: int = 3) -> float:
    """Aggregate (N,) box scores on [0, 1] into one image score on [0, 1]; N >= 1.

    See the module docstring for the meaning of each rule.
    """
    s = np.asarray(box_scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] == 0:
        raise ValueError(f"box_scores must be (N,) with N >= 1; got shape {s.shape}")
    if how == "min":
        return float(s.min())
    if how == "mean":
        return float(s.mean())
    if how == "topk_mean":
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        k = min(top_k, s.shape[0])
        return float(np.sort(s)[:k].mean())
    if how == "sum":
        return float(1.0 / (1.0 + (1.0 - s).sum()))
    raise ValueError(f"aggregation must be one of {list(AGGREGATIONS)}; got {how!r}")


def normalise_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Weights over the three scores, normalised to sum to 1 (equal when None)."""
    if weights is None:
        return {name: 1.0 / len(SCORE_NAMES) for name in SCORE_NAMES}
    unknown = set(weights) - set(SCORE_NAMES)
    if unknown:
        raise ValueError(f"unknown score weight(s) {sorted(unknown)}; expected {list(SCORE_NAMES)}")
    w = {name: float(weights.get(name, 0.0)) for name in SCORE_NAMES}
    if any(not np.isfinite(v) or v < 0 for v in w.values()) or sum(w.values()) <= 0:
        raise ValueError(f"weights must be finite, >= 0, with a positive sum; got {dict(weights)}")
    total = sum(w.values())
    return {name: v / total for name, v in w.items()}


def combine(scores: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """Weighted combination of the three image scores, on [0, 1]."""
    w = normalise_weights(weights)
    missing = [name for name in SCORE_NAMES if w[name] > 0 and name not in scores]
    if missing:
        raise ValueError(f"scores lack {missing}; expected keys {list(SCORE_NAMES)}")
    return float(sum(w[name] * float(scores[name]) for name in SCORE_NAMES if w[name] > 0))


@dataclass(frozen=True)
class ScoringRule:
    """How boxes become an image score; recorded with every score batch."""

    aggregation: Aggregation = "min"
    top_k: int = 3
    confidence_floor: float = 0.25
    no_box_score: float = 0.0
    weights: dict[str, float] = field(default_factory=lambda: dict(normalise_weights(None)))
    blind_band: float = 0.1

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {list(AGGREGATIONS)}; got {self.aggregation!r}"
            )
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {self.top_k}")
        for name in ("confidence_floor", "no_box_score", "blind_band"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {value}")
        if self.no_box_score + self.blind_band > 1.0 + 1e-12:
            raise ValueError(
                "no_box_score + blind_band must be <= 1; got "
                f"{self.no_box_score} + {self.blind_band} = {self.no_box_score + self.blind_band}"
            )
        object.__setattr__(self, "weights", dict(normalise_weights(self.weights)))

    def as_params(self) -> dict[str, object]:
        return {
            "aggregation": self.aggregation,
            "top_k": self.top_k,
            "confidence_floor": self.confidence_floor,
            "no_box_score": self.no_box_score,
            "blind_band": self.blind_band,
            "weights": {k: round(v, 6) for k, v in self.weights.items()},
        }


def class_mass(detections: Detections) -> np.ndarray:
    """(C,) float64 expected boxes per class: sum over every box of confidence x its class
    distribution row (C = ``detections.num_classes``; zeros without boxes).

    No confidence floor: a weak model's evidence for a rare class often sits below any floor,
    and the confidence weight already keeps faint boxes faint.
    """
    if len(detections) == 0:
        return np.zeros(detections.num_classes, np.float64)
    probs = np.asarray(detections.probs, np.float64)
    return (probs * np.asarray(detections.confidence, np.float64)[:, None]).sum(axis=0)


def blind_scores(
    detections: Detections, rule: ScoringRule
) -> tuple[dict[str, float], float, int]:
    """Scores of a blind image (no box at or above ``rule.confidence_floor``).

    ``detections`` holds N >= 0 boxes, all below the floor. Returns ``(scores, combined,
    predicted_class)``: one value per score name and their :func:`combine`, each on
    ``[no_box_score, no_box_score + blind_band]``, and the class of the most confident box (-1
    when N == 0, and with ``blind_band == 0``, which reproduces the old tie exactly). See the
    module docstring for the rule.
    """
    low, band = rule.no_box_score, rule.blind_band
    if band == 0.0:  # the tie, exactly as before the band existed
        return {name: low for name in SCORE_NAMES}, low, -1
    if len(detections) == 0:
        top = low + band
        return {name: top for name in SCORE_NAMES}, top, -1
    conf = np.asarray(detections.confidence, np.float64)
    order = np.argsort(-conf, kind="stable")[: rule.top_k]
    faint_probs = np.asarray(detections.probs, np.float64)[order]
    evidence = 1.0 - float(np.exp(-conf.sum()))

    def in_band(value: float) -> float:
        return float(min(low + band, max(low, value)))

    scores: dict[str, float] = {
        name: in_band(
            low + band * (0.5 * (1.0 - evidence)
                          + 0.5 * aggregate(fn(faint_probs), rule.aggregation, rule.top_k))
        )
        for name, fn in BOX_SCORES.items()
    }
    return scores, in_band(combine(scores, rule.weights)), int(detections.class_id[order[0]])


def expected_edits(detections: Detections, floor: float) -> float:
    """Reviewer edits one image's pre-annotations are expected to need, from its detections.

    A box at or above ``floor`` is sent to the reviewer and is wrong (deleted, relabelled or
    moved) with probability ``1 - confidence``; a box below the floor is not sent and is a
    real object the reviewer must draw with probability ``confidence``. So
    ``sum_{c >= floor} (1 - c) + sum_{c < floor} c`` over the (N,) box confidences.
    """
    conf = np.asarray(detections.confidence, np.float64)
    sent = conf >= floor
    return float((1.0 - conf[sent]).sum() + conf[~sent].sum())


def score_image(image_id: str, detections: Detections, rule: ScoringRule) -> ImageScore:
    """Score one image's detections under ``rule``.

    ``predicted_class`` is the class of the least certain considered box by the combined score;
    ``class_mass`` is :func:`class_mass` of all the detections. A blind image (no box at or above
    the floor) is scored by :func:`blind_scores` and keeps ``boxes_considered = 0``.
    """
    considered = detections.above(rule.confidence_floor)
    mass = tuple(float(v) for v in class_mass(detections))
    if len(considered) == 0:
        scores, combined, predicted = blind_scores(detections, rule)
        return ImageScore(image_id, combined, dict(scores), 0, predicted, mass,
                          expected_edits(detections, rule.confidence_floor))
    per_box = {name: fn(considered.probs) for name, fn in BOX_SCORES.items()}
    scores = {name: aggregate(values, rule.aggregation, rule.top_k) for name, values in per_box.items()}
    combined_boxes = sum(rule.weights[name] * per_box[name] for name in SCORE_NAMES)
    worst = int(np.argmin(combined_boxes))
    return ImageScore(
        image_id=image_id,
        uncertainty_score=combine(scores, rule.weights),
        scores=scores,
        boxes_considered=len(considered),
        predicted_class=int(considered.class_id[worst]),
        class_mass=mass,
        expected_edits=expected_edits(detections, rule.confidence_floor),
    )


def unscored(image_id: str) -> ImageScore:
    """The score of an image no model has predicted: 0 everywhere, no box, no class (what
    strategies that select without predictions, such as ``random`` and ``cold_start``, get)."""
    return ImageScore(image_id, 0.0, {name: 0.0 for name in SCORE_NAMES}, 0, -1)


def score_images(
    items: Sequence[tuple[str, Detections]], rule: ScoringRule
) -> list[ImageScore]:
    """Score many images; order follows ``items``."""
    return [score_image(image_id, dets, rule) for image_id, dets in items]
