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

Masks: a segmentation model's boxes carry a mask stability ``m`` in [0, 1]
(:attr:`~labelwise.domain.Detections.mask_stability`: 1 = a settled outline, lower = a soft
one). With ``mask_weight = w > 0`` every box score ``s`` of such a box becomes
``(1 - w) * s + w * m`` (:func:`mask_aware`) before aggregation, so an instance whose class is
clear but whose outline is not still makes its image uncertain. Boxes without a stability
(detection, classification) keep ``s``; ``w = 0`` (the default) leaves every score as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from labelwise import segments
from labelwise.columnar import PackedDetections, ScoreTable
from labelwise.domain import Detections, ImageScore, validate_probs

ScoreName = Literal["lowest_confidence", "margin_sampling", "entropy"]
Aggregation = Literal["min", "mean", "topk_mean", "sum"]
SCORE_NAMES: tuple[ScoreName, ...] = ("lowest_confidence", "margin_sampling", "entropy")
AGGREGATIONS: tuple[Aggregation, ...] = ("min", "mean", "topk_mean", "sum")


def lowest_confidence(probs: np.ndarray) -> np.ndarray:
    """Top class probability per box: (N, C) -> (N,), on [1/C, 1]."""
    return _lowest_confidence(validate_probs(probs))


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 class probability per box: (N, C) -> (N,), on [0, 1]."""
    return _margin(validate_probs(probs))


def entropy(probs: np.ndarray) -> np.ndarray:
    """One minus normalised Shannon entropy per box: (N, C) -> (N,), on [0, 1].

    ``1 - H(p) / ln(C)`` with natural logarithms and ``0 * ln 0 = 0``; a one-hot row scores 1,
    the uniform row 0.
    """
    return _entropy(validate_probs(probs))


def _lowest_confidence(p: np.ndarray) -> np.ndarray:
    return p.max(axis=1) if p.shape[0] else np.zeros(0)


def _margin(p: np.ndarray) -> np.ndarray:
    if p.shape[0] == 0:
        return np.zeros(0)
    if p.shape[1] == 1:
        return np.ones(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.clip(top2[:, 1] - top2[:, 0], 0.0, 1.0)


def _entropy(p: np.ndarray) -> np.ndarray:
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
_BOX_SCORES_VALIDATED: dict[ScoreName, Callable[[np.ndarray], np.ndarray]] = {
    "lowest_confidence": _lowest_confidence,
    "margin_sampling": _margin,
    "entropy": _entropy,
}
"""The same scores on (N, C) float64 probabilities already validated (one check per chunk)."""


def mask_aware(box_scores: np.ndarray, stability: np.ndarray | None, mask_weight: float) -> np.ndarray:
    """Box scores with their mask stability blended in: (B,) scores on [0, 1] and (B,) stabilities
    on [0, 1] (NaN = the box has no mask) -> (B,) ``(1 - w) * s + w * m`` where ``m`` is known,
    ``s`` elsewhere. ``stability`` None or ``mask_weight`` 0 returns ``box_scores`` unchanged."""
    if not 0.0 <= mask_weight <= 1.0:
        raise ValueError(f"mask_weight must lie in [0, 1]; got {mask_weight}")
    scores = np.asarray(box_scores, np.float64)
    if stability is None or mask_weight == 0.0:
        return scores
    m = np.asarray(stability, np.float64)
    if m.shape != scores.shape:
        raise ValueError(f"stability must be {scores.shape} like the box scores; got {m.shape}")
    return np.where(np.isnan(m), scores, (1.0 - mask_weight) * scores + mask_weight * np.nan_to_num(m))


def aggregate(box_scores: np.ndarray, how: Aggregation = "min", top_k: int = 3) -> float:
    """Aggregate (N,) box scores on [0, 1] into one image score on [0, 1]; N >= 1.

    See the module docstring for the meaning of each rule (one image of
    :func:`labelwise.segments.aggregate`, which scores a whole chunk at once).
    """
    s = np.asarray(box_scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] == 0:
        raise ValueError(f"box_scores must be (N,) with N >= 1; got shape {s.shape}")
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {list(AGGREGATIONS)}; got {how!r}")
    return float(segments.aggregate(s, np.zeros(s.shape[0], np.int64), 1, how, top_k)[0])


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
    mask_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {list(AGGREGATIONS)}; got {self.aggregation!r}"
            )
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {self.top_k}")
        for name in ("confidence_floor", "no_box_score", "blind_band", "mask_weight"):
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
            "mask_weight": self.mask_weight,
        }


def class_mass(detections: Detections) -> np.ndarray:
    """(C,) float64 expected boxes per class: sum over every box of confidence x its class
    distribution row (C = ``detections.num_classes``; zeros without boxes). No confidence
    floor (see :func:`score_packed`)."""
    probs = np.asarray(detections.probs, np.float64)
    conf = np.asarray(detections.confidence, np.float64)
    return segments.sums(probs * conf[:, None], np.zeros(len(detections), np.int64), 1)[0]


def expected_edits(detections: Detections, floor: float) -> float:
    """Reviewer edits one image's pre-annotations are expected to need, from its detections.

    A box at or above ``floor`` is sent to the reviewer and is wrong (deleted, relabelled or
    moved) with probability ``1 - confidence``; a box below the floor is not sent and is a
    real object the reviewer must draw with probability ``confidence``. So
    ``sum_{c >= floor} (1 - c) + sum_{c < floor} c`` over the (N,) box confidences.
    """
    conf = np.asarray(detections.confidence, np.float64)
    return float(_expected_edits(conf, np.zeros(conf.shape[0], np.int64), 1, floor)[0])


def _expected_edits(conf: np.ndarray, seg: np.ndarray, n: int, floor: float) -> np.ndarray:
    """(N,) :func:`expected_edits` per image of (B,) float64 confidences grouped by ``seg``."""
    sent = conf >= floor
    return (segments.sums(1.0 - conf[sent], seg[sent], n)
            + segments.sums(conf[~sent], seg[~sent], n))


def _combine_columns(by_name: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """(N, 3) image scores in :data:`SCORE_NAMES` order -> (N,) :func:`combine` per row."""
    out = np.zeros(by_name.shape[0], np.float64)
    for j, name in enumerate(SCORE_NAMES):
        if weights[name] > 0:
            out = out + weights[name] * by_name[:, j]
    return out


def score_packed(packed: PackedDetections, rule: ScoringRule) -> ScoreTable:
    """Score N images' detections at once under ``rule`` (the rule of the module docstring).

    ``predicted_class`` is the class of the least certain considered box by the combined box
    score; ``class_mass`` the (N, C) sum over every box of confidence x class distribution (no
    floor: a weak model's evidence for a rare class often sits below any floor, and the
    confidence weight keeps faint boxes faint); ``expected_edits`` by :func:`expected_edits`.
    A blind image (no box at or above the floor) is scored inside the blind band and keeps
    ``boxes_considered = 0``. Each image's scores depend on its own boxes only.
    """
    n, seg = len(packed), packed.box_image
    probs = packed.probs.astype(np.float64)
    conf = packed.confidence.astype(np.float64)
    box = {name: mask_aware(fn(probs), packed.mask_stability, rule.mask_weight)
           for name, fn in _BOX_SCORES_VALIDATED.items()}
    considered = packed.confidence >= rule.confidence_floor  # float32, as Detections.above
    seg_c = seg[considered]
    boxes_considered = segments.counts(seg_c, n)
    by_name = np.column_stack([
        segments.aggregate(box[name][considered], seg_c, n, rule.aggregation, rule.top_k)
        for name in SCORE_NAMES]).reshape(n, len(SCORE_NAMES))
    combined = _combine_columns(by_name, rule.weights)
    box_combined = sum(rule.weights[name] * box[name] for name in SCORE_NAMES)
    worst = segments.first_of_sorted(np.asarray(box_combined)[considered], seg_c, n)
    predicted = np.full(n, -1, np.int64)
    hit = worst >= 0
    predicted[hit] = packed.class_id[considered][worst[hit]]
    _score_blind(packed, rule, box, conf, seg, boxes_considered == 0, by_name, combined, predicted)
    return ScoreTable(packed.image_ids, combined, by_name, boxes_considered, predicted,
                      segments.sums(probs * conf[:, None], seg, n),
                      _expected_edits(conf, seg, n, rule.confidence_floor))


def _score_blind(
    packed: PackedDetections, rule: ScoringRule, box: Mapping[ScoreName, np.ndarray], conf: np.ndarray,
    seg: np.ndarray, blind: np.ndarray, by_name: np.ndarray, combined: np.ndarray,
    predicted: np.ndarray,
) -> None:
    """Fill the (N,) ``blind`` rows of ``by_name``, ``combined`` and ``predicted`` in place.

    Per blind image: ``faint`` = its detections by confidence descending, the top ``top_k``;
    evidence ``e = 1 - exp(-m)`` with ``m`` the summed confidence of all its detections; per
    score name ``no_box_score + blind_band * (0.5 * (1 - e) + 0.5 * aggregate(faint))``,
    clipped to the band; the class of the most confident detection. Without any detection:
    the band's top and class -1. With ``blind_band == 0``: ``no_box_score`` and -1 (a tie).
    """
    n = len(packed)
    low, band = rule.no_box_score, rule.blind_band
    if band == 0.0:
        by_name[blind], combined[blind], predicted[blind] = low, low, -1
        return
    total = segments.counts(seg, n)
    none = blind & (total == 0)
    by_name[none], combined[none], predicted[none] = low + band, low + band, -1
    faint_images = blind & (total > 0)
    if not faint_images.any():
        return
    keep = faint_images[seg] & segments.lowest_k(-conf, seg, n, rule.top_k)
    evidence = 1.0 - np.exp(-segments.sums(conf, seg, n))
    for j, name in enumerate(SCORE_NAMES):
        faint = segments.aggregate(box[name][keep], seg[keep], n, rule.aggregation, rule.top_k)
        value = low + band * (0.5 * (1.0 - evidence) + 0.5 * faint)
        by_name[faint_images, j] = np.clip(value[faint_images], low, low + band)
    combined[faint_images] = np.clip(_combine_columns(by_name[faint_images], rule.weights),
                                     low, low + band)
    first = segments.first_of_sorted(-conf, seg, n)
    predicted[faint_images] = packed.class_id[first[faint_images]]


def score_table(items: Sequence[tuple[str, Detections]], rule: ScoringRule) -> ScoreTable:
    """Score many images' detections; rows follow ``items`` (see :func:`score_packed`)."""
    if not items:
        return ScoreTable.of([])
    return score_packed(PackedDetections.of(items), rule)


def score_image(image_id: str, detections: Detections, rule: ScoringRule) -> ImageScore:
    """Score one image's detections under ``rule`` (one row of :func:`score_packed`)."""
    return score_packed(PackedDetections.of([(image_id, detections)]), rule)[0]


def unscored(image_id: str) -> ImageScore:
    """The score of an image no model has predicted: 0 everywhere, no box, no class (what
    strategies that select without predictions, such as ``random`` and ``cold_start``, get)."""
    return ImageScore(image_id, 0.0, {name: 0.0 for name in SCORE_NAMES}, 0, -1)


def score_images(
    items: Sequence[tuple[str, Detections]], rule: ScoringRule
) -> list[ImageScore]:
    """Score many images; order follows ``items``."""
    return list(score_table(items, rule))
