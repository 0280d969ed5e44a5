"""Why an image was picked: one machine-readable code and one sentence per queue item.

Pure: from what score-batch already holds (the image's score and boxes, its embedding distance
to the labelled set, the class rarity the strategy weighed) to a :class:`PickReason`. The same
reason goes into the score-batch JSON, the Label Studio task, the contact sheet and the HTTP API.

Codes, the primary one first in ``PickReason.codes``:

============================  ==========================================================
``random``                    the random baseline drew it
``cold_start``                no trained model yet: picked to cover the pool
``rare_class``                a rarity-weighing strategy expects a box of a class the
                              labelled set lacks
``no_box``                    no box reaches the scoring floor: the model may be missing
                              objects
``ambiguous_class``           boxes whose top two classes are nearly tied (margin)
``low_confidence``            boxes the model is unsure exist (low confidence)
``uncertain``                 none of the above stands out; the combined score ranked it
``far_from_labelled``         (secondary) far from every labelled or queued image in
                              embedding space
============================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelwise.domain import Detections, ImageScore
from labelwise.selection import min_distance, rarity_weights
from labelwise.strategies import Strategy, rarity_basis
from labelwise.task_types import TaskType

AMBIGUOUS_MARGIN = 0.1
"""A box whose top-1 minus top-2 class probability is below this is called ambiguous."""
LOW_CONFIDENCE = 0.5
"""A considered box under this confidence is called low-confidence."""
FAR_DISTANCE = 0.3
"""An embedding distance (halved Euclidean between unit vectors, on [0, 1]) at or above this
to the nearest labelled image is called far."""
RARE_MASS = 0.1
"""Least expected boxes of a class for it to be named as the rare class an image may hold."""

REASON_CODES: tuple[str, ...] = (
    "random", "cold_start", "rare_class", "no_box", "ambiguous_class", "low_confidence",
    "uncertain", "far_from_labelled",
)


@dataclass(frozen=True)
class PickReason:
    """Why one image is in the queue.

    Attributes:
        code: the primary reason, one of :data:`REASON_CODES`.
        text: one human sentence (parts joined by "; "), e.g. "no box above 0.25 — the model
            may be missing objects; far from every labelled image (distance 0.62)".
        codes: every reason that applies, ``code`` first.
    """

    code: str
    text: str
    codes: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [c for c in self.codes if c not in REASON_CODES]
        if unknown or not self.codes or self.codes[0] != self.code:
            raise ValueError(
                f"codes must start with code {self.code!r} and use only {list(REASON_CODES)}; "
                f"got {list(self.codes)}"
            )


@dataclass(frozen=True)
class PickContext:
    """What explains every pick of one batch.

    Attributes:
        strategy: the strategy's name (``random`` and ``cold_start`` explain themselves).
        confidence_floor: the scoring floor (boxes under it were not aggregated).
        class_names: the project's class names, indexed by class id.
        rarity: (C,) class weights with mean 1 (:func:`labelwise.selection.rarity_weights`)
            when the strategy weighs rarity, else None.
        labelled_counts: (C,) labelled boxes per class the rarity was computed from, or None.
        task_type: the project's; a classification's one whole-image row is spoken of as the
            image's class, never as a box.
    """

    strategy: str
    confidence_floor: float
    class_names: Sequence[str]
    rarity: np.ndarray | None = None
    labelled_counts: np.ndarray | None = None
    task_type: TaskType = TaskType.DETECT


def _name(context: PickContext, class_id: int) -> str:
    names = context.class_names
    return str(names[class_id]) if 0 <= class_id < len(names) else str(class_id)


def _margins(probs: np.ndarray) -> np.ndarray:
    """(N,) top-1 minus top-2 class probability of (N, C) rows (1 for one class)."""
    if probs.shape[1] < 2:
        return np.ones(probs.shape[0], np.float64)
    top2 = np.sort(probs, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).astype(np.float64)


def _uncertainty_part(
    score: ImageScore, dets: Detections | None, context: PickContext
) -> tuple[str, str]:
    floor = context.confidence_floor
    if dets is None:
        return "uncertain", f"uncertainty score {score.uncertainty_score:.3f}"
    if context.task_type is TaskType.CLASSIFY and len(dets) == 1:
        return _class_part(score, dets, context)
    considered = dets.above(floor)
    if len(considered) == 0:
        text = f"no box above {floor:g} — the model may be missing objects"
        if len(dets):
            best = int(np.argmax(dets.confidence))
            text += (f" (its best guess: class {_name(context, int(dets.class_id[best]))} at "
                     f"{float(dets.confidence[best]):.2f})")
        return "no_box", text
    margins = _margins(considered.probs)
    ambiguous = np.flatnonzero(margins < AMBIGUOUS_MARGIN)
    if ambiguous.size:
        order = np.argsort(considered.probs[ambiguous], axis=1)[:, -2:]
        classes = sorted({int(c) for c in order.ravel()})
        names = ", ".join(_name(context, c) for c in classes)
        boxes = "box" if ambiguous.size == 1 else "boxes"
        return "ambiguous_class", (f"{ambiguous.size} {boxes} with class margin < "
                                   f"{AMBIGUOUS_MARGIN:g} (classes {names})")
    low = np.flatnonzero(considered.confidence < LOW_CONFIDENCE)
    if low.size:
        worst = low[int(np.argmin(considered.confidence[low]))]
        boxes = "box" if low.size == 1 else "boxes"
        return "low_confidence", (
            f"{low.size} {boxes} under {LOW_CONFIDENCE:g} confidence (lowest "
            f"{float(considered.confidence[worst]):.2f}, class "
            f"{_name(context, int(considered.class_id[worst]))})")
    return "uncertain", (f"uncertainty score {score.uncertainty_score:.3f} (lowest confidence "
                         f"{float(considered.confidence.min()):.2f}, smallest class margin "
                         f"{float(margins.min()):.2f})")


def _class_part(score: ImageScore, dets: Detections, context: PickContext) -> tuple[str, str]:
    """The reason of a classified image (its one distribution)."""
    probs = dets.probs[0].astype(np.float64)
    top2 = np.argsort(probs)[-2:][::-1]
    margin = float(_margins(probs[None, :])[0])
    if margin < AMBIGUOUS_MARGIN and probs.size > 1:
        return "ambiguous_class", (f"class {_name(context, int(top2[0]))} or {_name(context, int(top2[1]))}: "
                                   f"margin {margin:.2f} < {AMBIGUOUS_MARGIN:g}")
    top = float(probs[top2[0]])
    if top < LOW_CONFIDENCE:
        return "low_confidence", (f"top class {_name(context, int(top2[0]))} at {top:.2f} "
                                  f"(under {LOW_CONFIDENCE:g})")
    return "uncertain", (f"uncertainty score {score.uncertainty_score:.3f} (top class "
                         f"{_name(context, int(top2[0]))} at {top:.2f}, margin {margin:.2f})")


def _rare_part(score: ImageScore, context: PickContext) -> str | None:
    if context.rarity is None or not score.class_mass:
        return None
    mass = np.asarray(score.class_mass, dtype=np.float64)
    rarity = np.asarray(context.rarity, dtype=np.float64)
    if mass.shape != rarity.shape:
        raise ValueError(f"class_mass has shape {mass.shape}; expected {rarity.shape} like rarity")
    weighted = mass * rarity
    best = int(np.argmax(weighted))
    if mass[best] < RARE_MASS or rarity[best] <= 1.0:  # no expected box of a rarer-than-mean class
        return None
    unit = "images" if context.task_type is TaskType.CLASSIFY else "boxes"
    text = f"rare class {_name(context, best)} expected ({mass[best]:.1f} {unit}"
    if context.labelled_counts is not None:
        text += f"; {float(np.asarray(context.labelled_counts)[best]):g} labelled"
    return text + ")"


def explain_pick(
    score: ImageScore,
    detections: Detections | None,
    context: PickContext,
    distance: float | None = None,
) -> PickReason:
    """The reason ``score``'s image is in the queue.

    Args:
        score: the image's score (its ``class_mass`` names the rare class it may hold).
        detections: every stored box of the image (also those under the floor), or None when
            the strategy selected without predictions.
        context: the batch's strategy, floor, class names and rarity.
        distance: embedding distance on [0, 1] to the nearest labelled or queued image, or None
            when the strategy used no embeddings or nothing is labelled or queued yet.
    """
    codes: list[str] = []
    parts: list[str] = []
    far = distance is not None and distance >= FAR_DISTANCE
    where = (f"distance {distance:.2f} to the nearest labelled or queued image"
             if distance is not None else "")
    if context.strategy == "random":
        return PickReason("random", "drawn at random (the random baseline)", ("random",))
    if context.strategy == "cold_start":
        text = "no trained model yet — picked to cover the pool"
        return PickReason("cold_start", text + (f" ({where})" if where else ""), ("cold_start",))
    rare = _rare_part(score, context)
    if rare is not None:
        codes.append("rare_class")
        parts.append(rare)
    code, text = _uncertainty_part(score, detections, context)
    codes.append(code)
    parts.append(text)
    if far:
        codes.append("far_from_labelled")
        parts.append(f"far from every labelled or queued image (distance {distance:.2f})")
    return PickReason(codes[0], "; ".join(parts), tuple(codes))


def explain_queue(
    strategy: Strategy,
    picked: Sequence[ImageScore],
    detections: Sequence[Detections | None],
    confidence_floor: float,
    class_names: Sequence[str],
    *,
    picked_embeddings: np.ndarray | None = None,
    labelled_embeddings: np.ndarray | None = None,
    labelled_counts: np.ndarray | None = None,
    candidate_mass: np.ndarray | None = None,
    task_type: TaskType = TaskType.DETECT,
) -> list[PickReason]:
    """One :class:`PickReason` per picked image, in ``picked`` order.

    Args:
        picked: the queue's image scores; ``detections`` and ``picked_embeddings`` (K, d) rows
            align with it.
        labelled_embeddings: (L, d) embeddings of the labelled and queued images, or None.
        labelled_counts: (C,) labelled boxes per class.
        candidate_mass: (N, C) ``class_mass`` of every candidate (the pool's expected boxes are
            the rarity basis while nothing is labelled), needed when the strategy weighs rarity.
    """
    if len(detections) != len(picked):
        raise ValueError(f"detections must align with picked ({len(picked)}); got {len(detections)}")
    rarity = counts = None
    if strategy.weighs_rarity and candidate_mass is not None and candidate_mass.size:
        counts = rarity_basis(labelled_counts, np.asarray(candidate_mass, dtype=np.float64))
        rarity = rarity_weights(counts)
    context = PickContext(strategy.name, confidence_floor, tuple(class_names), rarity,
                          counts if labelled_counts is not None and float(np.sum(labelled_counts)) > 0
                          else None, task_type)
    distances: list[float | None] = [None] * len(picked)
    if (picked_embeddings is not None and labelled_embeddings is not None
            and len(labelled_embeddings) and len(picked)):
        distances = [float(d) for d in min_distance(np.asarray(picked_embeddings, np.float32),
                                                    labelled_embeddings)]
    return [explain_pick(s, d, context, dist) for s, d, dist in zip(picked, detections, distances)]
