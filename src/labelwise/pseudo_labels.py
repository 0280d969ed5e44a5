"""Pseudo-labels: the current model's confident boxes on unlabelled pool images, as extra
training labels for a semi-supervised round. Pure numpy, no I/O.

The rule (:class:`PseudoLabelRule`), applied per unlabelled image to the detections auto-label
stored for it:

* a box is **kept** when its confidence reaches ``threshold``;
* the image is **dropped as uncertain** when any box lies in the uncertain band
  ``[band_floor, threshold)``: a box the model half-believes in is an object it may have missed
  or misplaced, and a missed object in a pseudo-label teaches the model that it is background;
* the image is **dropped as empty** when no box is kept (an image the model sees nothing in is
  not evidence of an empty image);
* at most ``cap`` pseudo images per reviewed image are used, the most confident images first
  (by their least confident kept box, ties by image id), so training time stays bounded: with
  ``cap = 1`` a round trains on at most twice its reviewed images.

Pseudo-labels never enter the catalog as labels and are never sent to Label Studio; an image
with a reviewed label is never pseudo-labelled (callers pass those ids as ``exclude``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from labelwise.domain import Detections
from labelwise.labelstudio.boxes import detections_to_yolo


@dataclass(frozen=True)
class PseudoLabelRule:
    """How confident predictions become pseudo-labels (see the module docstring).

    Attributes:
        threshold: a box is kept at or above this confidence, in (0, 1].
        band_floor: boxes in [band_floor, threshold) make the image uncertain (dropped), in
            [0, threshold]; ``band_floor == threshold`` disables the check.
        cap: most pseudo images per reviewed image (>= 0; 0 = no pseudo-labels).
    """

    threshold: float = 0.5
    band_floor: float = 0.25
    cap: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"pseudo-label threshold must lie in (0, 1]; got {self.threshold}")
        if not 0.0 <= self.band_floor <= self.threshold:
            raise ValueError(
                f"pseudo-label band_floor must lie in [0, threshold {self.threshold}]; got {self.band_floor}"
            )
        if not self.cap >= 0.0:
            raise ValueError(f"pseudo-label cap must be >= 0 images per reviewed image; got {self.cap}")

    def as_params(self) -> dict[str, float]:
        return {"pseudo/threshold": self.threshold, "pseudo/band_floor": self.band_floor,
                "pseudo/cap": self.cap}


@dataclass(frozen=True)
class PseudoLabel:
    """One pseudo-labelled image: (N, 5) YOLO rows ``cls, cx, cy, w, h`` and its least
    confident kept box (the image's rank for the cap)."""

    image_id: str
    boxes: np.ndarray
    confidence: float


@dataclass(frozen=True)
class PseudoLabelSet:
    """The pseudo-labels of one round and what the rule did with every candidate.

    ``candidates`` = unlabelled images with predictions, ``dropped_uncertain`` /
    ``dropped_empty`` / ``capped`` = how many the rule left out and why; ``labels`` are in
    rank order.
    """

    labels: tuple[PseudoLabel, ...]
    candidates: int
    dropped_uncertain: int
    dropped_empty: int
    capped: int

    @property
    def images(self) -> int:
        return len(self.labels)

    @property
    def boxes(self) -> int:
        return int(sum(len(p.boxes) for p in self.labels))

    def as_metrics(self) -> dict[str, float]:
        """What a round records: ``pseudo/images``, ``pseudo/boxes`` and the drop counts."""
        return {"pseudo/images": self.images, "pseudo/boxes": self.boxes,
                "pseudo/candidates": self.candidates, "pseudo/dropped_uncertain": self.dropped_uncertain,
                "pseudo/dropped_empty": self.dropped_empty, "pseudo/capped": self.capped}


def pseudo_label_image(dets: Detections, rule: PseudoLabelRule) -> Detections | None:
    """The kept boxes of one image, or None when the rule drops it (uncertain or empty)."""
    conf = np.asarray(dets.confidence, np.float64)
    if np.any((conf >= rule.band_floor) & (conf < rule.threshold)):
        return None
    kept = dets.above(rule.threshold)
    return kept if len(kept) else None


def select_pseudo_labels(
    predictions: Mapping[str, Detections],
    sizes: Mapping[str, tuple[int, int]],
    exclude: Collection[str],
    reviewed_images: int,
    rule: PseudoLabelRule,
) -> PseudoLabelSet:
    """Pseudo-labels for a round that trains on ``reviewed_images`` reviewed images.

    Args:
        predictions: image id -> the current model's detections (pixel xyxy).
        sizes: image id -> (width, height) in pixels, for every id in ``predictions``.
        exclude: ids that have (or are waiting for) a reviewed label: never pseudo-labelled.
        reviewed_images: the cap is ``floor(rule.cap * reviewed_images)`` pseudo images.
    """
    if reviewed_images < 0:
        raise ValueError(f"reviewed_images must be >= 0; got {reviewed_images}")
    excluded = set(exclude)
    candidates = sorted(i for i in predictions if i not in excluded)
    kept: list[PseudoLabel] = []
    uncertain = empty = 0
    for image_id in candidates:
        dets = predictions[image_id]
        boxes = pseudo_label_image(dets, rule)
        if boxes is None:
            if np.any(np.asarray(dets.confidence) >= rule.band_floor):
                uncertain += 1
            else:
                empty += 1
            continue
        if image_id not in sizes:
            raise ValueError(f"sizes lacks image {image_id!r}; expected (width, height) for every prediction")
        width, height = sizes[image_id]
        kept.append(PseudoLabel(image_id, detections_to_yolo(boxes, width, height),
                                float(np.min(boxes.confidence))))
    kept.sort(key=lambda p: (-p.confidence, p.image_id))
    limit = int(np.floor(rule.cap * reviewed_images + 1e-9))
    return PseudoLabelSet(tuple(kept[:limit]), len(candidates), uncertain, empty, max(0, len(kept) - limit))
