"""Typed data model shared by every layer.

Arrays are numpy, validated on construction, and the error messages state expected vs actual
(``probs must be (N, C) with rows summing to 1; got shape (3,)``). Adapters convert their
library's types into these at the boundary: nothing here knows ultralytics, Label Studio or MLflow.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PROB_SUM_TOLERANCE = 1e-3


class ImageStatus(str, enum.Enum):
    """Where an image is in the labelling life cycle."""

    UNLABELLED = "unlabelled"
    QUEUED = "queued"
    LABELLED = "labelled"
    REJECTED = "rejected"


def class_box_counts(labels: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """(C,) int64 boxes per class over several (N, 5) YOLO label arrays (class id first)."""
    counts = np.zeros(num_classes, np.int64)
    for boxes in labels:
        if len(boxes):
            ids = np.asarray(boxes)[:, 0].astype(int)
            counts += np.bincount(ids, minlength=num_classes)[:num_classes]
    return counts


def validate_probs(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    """Check a class-probability matrix and return it as float64.

    Args:
        probs: (N, C) array, every entry finite and in [0, 1], every row summing to 1 within
            ``PROB_SUM_TOLERANCE``. N may be 0; C must be at least 1.

    Raises:
        ValueError: naming the expected form and what was given.
    """
    arr = np.asarray(probs)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, C) with rows summing to 1; got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one class column; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).argmax())
        raise ValueError(f"{name} must be finite; got NaN/inf in row {bad}: {arr[bad].tolist()}")
    if arr.size and ((arr < 0).any() or (arr > 1).any()):
        raise ValueError(
            f"{name} entries must lie in [0, 1]; got min {arr.min():.6g}, max {arr.max():.6g}"
        )
    if arr.shape[0]:
        sums = arr.sum(axis=1)
        off = np.abs(sums - 1.0) > PROB_SUM_TOLERANCE
        if off.any():
            row = int(off.argmax())
            raise ValueError(
                f"{name} rows must sum to 1 (tolerance {PROB_SUM_TOLERANCE}); "
                f"row {row} sums to {sums[row]:.6g}"
            )
    return arr


@dataclass(frozen=True)
class Detections:
    """Boxes one detector found in one image.

    Attributes:
        xyxy: (N, 4) float32, corner coordinates in pixels of the original image.
        confidence: (N,) float32 in [0, 1], the detector's box confidence.
        class_id: (N,) int64, index into the project's class names.
        probs: (N, C) float32, the full class distribution of each box, rows summing to 1.
            Its arg-max is ``class_id``; ``confidence`` is the head's raw max class score
            (before normalisation), so ``probs.max(1)`` need not equal ``confidence``.
        mask_stability: (N,) float32 in [0, 1], how settled each instance's mask is (a
            segmentation model's; :func:`labelwise.segment_inference.mask_stability`: 1 = the outline
            stays where it is however the mask threshold moves, lower = a soft, uncertain
            outline), or None for models without masks.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    probs: np.ndarray
    mask_stability: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be (N, 4); got shape {xyxy.shape}")
        n = xyxy.shape[0]
        conf = np.asarray(self.confidence, dtype=np.float32)
        cls = np.asarray(self.class_id, dtype=np.int64)
        if conf.shape != (n,):
            raise ValueError(f"confidence must be ({n},) to match xyxy; got shape {conf.shape}")
        if cls.shape != (n,):
            raise ValueError(f"class_id must be ({n},) to match xyxy; got shape {cls.shape}")
        probs = np.asarray(self.probs)
        if probs.ndim != 2 or probs.shape[0] != n:
            raise ValueError(f"probs must be ({n}, C) to match xyxy; got shape {probs.shape}")
        probs = validate_probs(probs).astype(np.float32)
        if n and (cls.min() < 0 or cls.max() >= probs.shape[1]):
            raise ValueError(
                f"class_id must lie in [0, {probs.shape[1] - 1}]; got range "
                f"[{cls.min()}, {cls.max()}]"
            )
        if self.mask_stability is not None:
            stability = np.asarray(self.mask_stability, dtype=np.float32)
            if stability.shape != (n,):
                raise ValueError(f"mask_stability must be ({n},) to match xyxy; got shape {stability.shape}")
            if n and (not np.isfinite(stability).all() or stability.min() < 0 or stability.max() > 1):
                raise ValueError(f"mask_stability must lie in [0, 1]; got min {stability.min()}, "
                                 f"max {stability.max()}")
            object.__setattr__(self, "mask_stability", stability)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "probs", probs)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    @classmethod
    def empty(cls, num_classes: int) -> "Detections":
        """No boxes, for a detector with ``num_classes`` classes."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
            probs=np.zeros((0, num_classes), np.float32),
        )

    def above(self, floor: float) -> "Detections":
        """The boxes whose confidence reaches ``floor``."""
        return self.take(self.confidence >= floor)

    def take(self, rows: np.ndarray) -> "Detections":
        """The rows ``rows`` selects: an (N,) bool mask or integer indices, in their order."""
        stability = None if self.mask_stability is None else self.mask_stability[rows]
        return Detections(self.xyxy[rows], self.confidence[rows], self.class_id[rows], self.probs[rows],
                          stability)


@dataclass(frozen=True)
class ImagePrediction:
    """One detector's output for one catalogued image."""

    image_id: str
    model_version: str
    width: int
    height: int
    detections: Detections


@dataclass(frozen=True)
class ImageScore:
    """Uncertainty of one image; every score on [0, 1], lower = more uncertain.

    Attributes:
        image_id: the catalog id.
        uncertainty_score: the score the image is ranked by (the weighted combination of
            ``scores`` unless a single-score strategy chose one of them).
        scores: per-strategy image scores: ``lowest_confidence``, ``margin_sampling``, ``entropy``.
        boxes_considered: boxes at or above the confidence floor that the aggregation used.
        predicted_class: class id of the least certain considered box, or -1 when none.
        class_mass: (C,) expected boxes per class, the sum over EVERY predicted box (also those
            under the confidence floor) of confidence x class distribution; () when unknown.
        expected_edits: reviewer edits the image's pre-annotations are expected to need
            (``scoring.expected_edits``); 0 when unknown.
    """

    image_id: str
    uncertainty_score: float
    scores: dict[str, float]
    boxes_considered: int
    predicted_class: int = -1
    class_mass: tuple[float, ...] = ()
    expected_edits: float = 0.0


@dataclass(frozen=True)
class QueueItem:
    """One entry of a score-batch queue."""

    image_id: str
    uncertainty_score: float
    scores: dict[str, float]
    thumbnail: str
    reason: str = "uncertain"
    """Machine-readable code of why it was picked (:data:`labelwise.reasons.REASON_CODES`)."""
    reason_text: str = ""
    """The same as one human sentence."""
    rank: int | None = None
    """Its place in the selector's pick order (1 = picked first); the queue itself is sorted by
    ``uncertainty_score``. None when the item was not made by a selector."""

    def __post_init__(self) -> None:
        if self.rank is not None and (isinstance(self.rank, bool) or int(self.rank) != self.rank
                                      or self.rank < 1):
            raise ValueError(f"rank must be an integer >= 1 or None; got {self.rank!r}")

    def as_json(self) -> dict[str, object]:
        return {
            "image_id": self.image_id,
            "uncertainty_score": round(float(self.uncertainty_score), 6),
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "thumbnail": self.thumbnail,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "rank": None if self.rank is None else int(self.rank),
        }


def _number(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a number; got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number; got {value!r}") from None


def queue_item_from_json(item: object, where: str = "item") -> QueueItem:
    """A :class:`QueueItem` from its ``as_json`` dict (missing optional keys default);
    ValueError naming ``where`` and the bad field otherwise."""
    if not isinstance(item, Mapping) or "image_id" not in item:
        raise ValueError(f"{where} must be a dict with an image_id; got {item!r}")
    scores = item.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise ValueError(f"{where}['scores'] must be a dict of numbers; got {scores!r}")
    rank = item.get("rank")
    return QueueItem(
        image_id=str(item["image_id"]),
        uncertainty_score=_number(item.get("uncertainty_score", 0.0), f"{where}['uncertainty_score']"),
        scores={str(k): _number(v, f"{where}['scores'][{k!r}]") for k, v in scores.items()},
        thumbnail=str(item.get("thumbnail") or ""),
        reason=str(item.get("reason") or "uncertain"),
        reason_text=str(item.get("reason_text") or ""),
        rank=None if rank is None else int(_number(rank, f"{where}['rank']")),
    )


@dataclass(frozen=True)
class ScoreBatch:
    """A queue sorted ascending by ``uncertainty_score`` (most uncertain first)."""

    project_id: str
    strategy: str
    model_version: str | None
    queue: list[QueueItem] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)

    @property
    def round_number(self) -> int | None:
        """``params.round``: the recorded round's number (None: not recorded)."""
        number = self.params.get("round")
        return number if isinstance(number, int) and not isinstance(number, bool) else None

    @classmethod
    def from_json(cls, data: object) -> "ScoreBatch":
        """Parse :meth:`as_json` output (what crosses a task or HTTP boundary) once.

        Raises:
            ValueError: not a dict, a queue that is not a list, an item without an image id or
                with a non-numeric score, or an image twice; each message names the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                "batch must be a score-batch dict (ScoreBatch.as_json()); "
                f"got {type(data).__name__}"
            )
        queue = data.get("queue")
        if not isinstance(queue, Sequence) or isinstance(queue, (str, bytes)):
            raise ValueError(f"batch['queue'] must be a list of items; got {type(queue).__name__}")
        items: list[QueueItem] = []
        seen: set[str] = set()
        for k, raw in enumerate(queue):
            item = queue_item_from_json(raw, f"batch['queue'][{k}]")
            if item.image_id in seen:
                raise ValueError(f"image {item.image_id!r} appears twice in the batch queue")
            seen.add(item.image_id)
            items.append(item)
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"batch['params'] must be a dict; got {type(params).__name__}")
        model_version = data.get("model_version")
        return cls(str(data.get("project_id") or ""), str(data.get("strategy") or ""),
                   None if model_version is None else str(model_version), items, dict(params))

    def as_json(self) -> dict[str, object]:
        return {
            "project_id": self.project_id,
            "strategy": self.strategy,
            "model_version": self.model_version,
            "params": self.params,
            "queue": [item.as_json() for item in self.queue],
        }
