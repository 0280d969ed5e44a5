"""Columnar forms of the data model for whole pools: many images' detections and scores as a
few numpy arrays instead of one object per image.

A pool of a million images does not fit one :class:`~labelwise.domain.Detections` and one
:class:`~labelwise.domain.ImageScore` per image (each score carries a (C,) tuple of Python
floats). :class:`PackedDetections` holds a chunk of images' boxes back to back, validated once
per chunk; :class:`ScoreTable` holds every image's scores as columns and is still a
``Sequence[ImageScore]`` (an item is built on demand), so code written for a list of scores
reads a table unchanged while strategies use its columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from labelwise.domain import Detections, ImageScore, validate_probs

SCORE_COLUMNS: tuple[str, ...] = ("lowest_confidence", "margin_sampling", "entropy")
"""The per-strategy image scores, in the column order of :attr:`ScoreTable.by_name`."""
COMBINED = "combined"
"""The key of :attr:`ScoreTable.combined` (the image's ``uncertainty_score``)."""


@dataclass(frozen=True, eq=False)
class PackedDetections:
    """Several images' detections back to back (image ``i``'s boxes are the rows
    ``offsets[i]:offsets[i + 1]``).

    Attributes:
        image_ids: (N,) the images, in order.
        counts: (N,) int64 boxes per image; B = counts.sum().
        confidence: (B,) float32 box confidences in [0, 1].
        class_id: (B,) int64 class indices in [0, C).
        probs: (B, C) float32 class distributions, rows summing to 1.
        mask_stability: (B,) float32 each box's mask stability in [0, 1], NaN for a box whose
            image has none (:attr:`Detections.mask_stability`); None when no image has one.

    Raises:
        ValueError: shapes that disagree, or invalid probabilities or class ids (the message
            names the image).
    """

    image_ids: tuple[str, ...]
    counts: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    probs: np.ndarray
    mask_stability: np.ndarray | None = None

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        probs = np.asarray(self.probs, dtype=np.float32)
        n, b = len(self.image_ids), int(counts.sum())
        if counts.shape != (n,) or (counts < 0).any():
            raise ValueError(f"counts must be ({n},) non-negative box counts, one per image; got "
                             f"shape {counts.shape}")
        if conf.shape != (b,) or cls.shape != (b,):
            raise ValueError(f"confidence and class_id must be ({b},) for {b} boxes (the sum of "
                             f"counts); got {conf.shape} and {cls.shape}")
        if probs.ndim != 2 or probs.shape[0] != b:
            raise ValueError(f"probs must be ({b}, C) for {b} boxes; got shape {probs.shape}")
        try:
            validate_probs(probs)
        except ValueError as exc:
            raise ValueError(f"{exc} (image {self._image_of_bad_row(counts, probs)!r})") from None
        if b and (cls.min() < 0 or cls.max() >= probs.shape[1]):
            raise ValueError(f"class_id must lie in [0, {probs.shape[1] - 1}]; got range "
                             f"[{cls.min()}, {cls.max()}]")
        if b and ((conf < 0).any() or (conf > 1).any() or not np.isfinite(conf).all()):
            raise ValueError(f"confidence must lie in [0, 1]; got min {conf.min()}, max {conf.max()}")
        if self.mask_stability is not None:
            stability = np.asarray(self.mask_stability, dtype=np.float32).reshape(-1)
            known = stability[np.isfinite(stability)]
            if stability.shape != (b,) or np.isinf(stability).any() or (known < 0).any() or (known > 1).any():
                raise ValueError(f"mask_stability must be ({b},) values in [0, 1] or NaN; got shape "
                                 f"{stability.shape}" + (f", range [{known.min()}, {known.max()}]"
                                                         if known.size else ""))
            object.__setattr__(self, "mask_stability", stability)
        object.__setattr__(self, "image_ids", tuple(self.image_ids))
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "probs", probs)

    def _image_of_bad_row(self, counts: np.ndarray, probs: np.ndarray) -> str:
        bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1)
        bad |= np.abs(probs.astype(np.float64).sum(axis=1) - 1.0) > 1e-3
        if not bad.any() or len(self.image_ids) == 0:
            return "?"
        image = int(np.searchsorted(np.cumsum(counts), int(bad.argmax()), side="right"))
        return self.image_ids[min(image, len(self.image_ids) - 1)]

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def offsets(self) -> np.ndarray:
        """(N + 1,) int64 start of each image's rows, then B."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def box_image(self) -> np.ndarray:
        """(B,) int64 index of the image each box belongs to (non-decreasing)."""
        return np.repeat(np.arange(len(self.image_ids), dtype=np.int64), self.counts)

    @classmethod
    def of(cls, items: Sequence[tuple[str, Detections]], num_classes: int | None = None) -> "PackedDetections":
        """Pack ``(image_id, detections)`` pairs; ``num_classes`` is needed only when empty."""
        if not items:
            c = 1 if num_classes is None else num_classes
            return cls((), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, c), np.float32))
        classes = {d.num_classes for _, d in items}
        if len(classes) != 1:
            raise ValueError(f"every image's detections must have one class count; got {sorted(classes)}")
        stability = None
        if any(d.mask_stability is not None for _, d in items):
            stability = np.concatenate([
                d.mask_stability if d.mask_stability is not None else np.full(len(d), np.nan, np.float32)
                for _, d in items])
        return cls(
            tuple(i for i, _ in items),
            np.asarray([len(d) for _, d in items], np.int64),
            np.concatenate([d.confidence for _, d in items]),
            np.concatenate([d.class_id for _, d in items]),
            np.concatenate([d.probs for _, d in items]),
            stability,
        )


@dataclass(frozen=True, eq=False)
class ScoreTable(Sequence[ImageScore]):
    """Every image's :class:`~labelwise.domain.ImageScore` as columns; ``table[i]`` builds one.

    Attributes:
        image_ids: (N,) the images.
        combined: (N,) float64 ``uncertainty_score`` on [0, 1], lower = more uncertain.
        by_name: (N, 3) float64 the per-strategy scores in :data:`SCORE_COLUMNS` order.
        boxes_considered: (N,) int64 boxes at or above the confidence floor.
        predicted_class: (N,) int64, -1 = none.
        class_mass: (N, C) float64 expected boxes per class; C = 0 when unknown.
        expected_edits: (N,) float64.
    """

    image_ids: tuple[str, ...]
    combined: np.ndarray
    by_name: np.ndarray
    boxes_considered: np.ndarray
    predicted_class: np.ndarray
    class_mass: np.ndarray
    expected_edits: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        columns = {
            "combined": (np.asarray(self.combined, np.float64), (n,)),
            "by_name": (np.asarray(self.by_name, np.float64), (n, len(SCORE_COLUMNS))),
            "boxes_considered": (np.asarray(self.boxes_considered, np.int64), (n,)),
            "predicted_class": (np.asarray(self.predicted_class, np.int64), (n,)),
            "expected_edits": (np.asarray(self.expected_edits, np.float64), (n,)),
        }
        for name, (array, shape) in columns.items():
            if array.shape != shape:
                raise ValueError(f"{name} must be {shape} for {n} images; got shape {array.shape}")
            object.__setattr__(self, name, array)
        mass = np.asarray(self.class_mass, np.float64)
        if mass.ndim != 2 or mass.shape[0] != n:
            raise ValueError(f"class_mass must be ({n}, C); got shape {mass.shape}")
        object.__setattr__(self, "class_mass", mass)
        object.__setattr__(self, "image_ids", tuple(self.image_ids))

    def __len__(self) -> int:
        return len(self.image_ids)

    @overload
    def __getitem__(self, index: int) -> ImageScore: ...

    @overload
    def __getitem__(self, index: slice) -> "ScoreTable": ...

    def __getitem__(self, index: int | slice) -> "ImageScore | ScoreTable":
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        i = range(len(self))[index]  # IndexError like a list's
        return ImageScore(
            image_id=self.image_ids[i],
            uncertainty_score=float(self.combined[i]),
            scores={name: float(self.by_name[i, j]) for j, name in enumerate(SCORE_COLUMNS)},
            boxes_considered=int(self.boxes_considered[i]),
            predicted_class=int(self.predicted_class[i]),
            class_mass=tuple(float(v) for v in self.class_mass[i]),
            expected_edits=float(self.expected_edits[i]),
        )

    def __iter__(self) -> Iterator[ImageScore]:
        return (self[i] for i in range(len(self)))

    def column(self, key: str) -> np.ndarray:
        """(N,) float64 the scores under ``key``: one of :data:`SCORE_COLUMNS` or :data:`COMBINED`."""
        if key == COMBINED:
            return self.combined
        if key not in SCORE_COLUMNS:
            raise KeyError(f"unknown score {key!r}; expected one of {[COMBINED, *SCORE_COLUMNS]}")
        return self.by_name[:, SCORE_COLUMNS.index(key)]

    def take(self, indices: np.ndarray | Sequence[int]) -> "ScoreTable":
        """The rows ``indices`` ((K,) ints or an (N,) bool mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        return ScoreTable(tuple(self.image_ids[i] for i in idx), self.combined[idx],
                          self.by_name[idx], self.boxes_considered[idx], self.predicted_class[idx],
                          self.class_mass[idx], self.expected_edits[idx])

    def rows(self) -> Iterator[tuple[str, float, dict[str, float]]]:
        """``(image_id, uncertainty_score, scores by name)`` per image, without building
        ImageScore objects (what a round stores per candidate)."""
        names = SCORE_COLUMNS
        for image_id, combined, values in zip(self.image_ids, self.combined.tolist(),
                                              self.by_name.tolist()):
            yield image_id, combined, dict(zip(names, values))

    @classmethod
    def of(cls, scores: Iterable[ImageScore]) -> "ScoreTable":
        """A table of ImageScore objects (a table is returned as it is).

        Raises:
            ValueError: a score lacks one of :data:`SCORE_COLUMNS`, or ``class_mass`` lengths
                differ (all known, or all unknown).
        """
        if isinstance(scores, ScoreTable):
            return scores
        items = list(scores)
        sizes = {len(s.class_mass) for s in items}
        if len(sizes) > 1:
            raise ValueError(f"every score's class_mass must have one length (or none); got "
                             f"lengths {sorted(sizes)}")
        width = sizes.pop() if sizes else 0
        try:
            by_name = [[float(s.scores[name]) for name in SCORE_COLUMNS] for s in items]
        except KeyError as exc:
            raise ValueError(f"image scores must hold {list(SCORE_COLUMNS)}; one lacks {exc}") from None
        return cls(
            tuple(s.image_id for s in items),
            np.asarray([s.uncertainty_score for s in items], np.float64),
            np.asarray(by_name, np.float64).reshape(len(items), len(SCORE_COLUMNS)),
            np.asarray([s.boxes_considered for s in items], np.int64),
            np.asarray([s.predicted_class for s in items], np.int64),
            np.asarray([s.class_mass for s in items], np.float64).reshape(len(items), width),
            np.asarray([s.expected_edits for s in items], np.float64),
        )

    @classmethod
    def concat(cls, tables: Sequence["ScoreTable"]) -> "ScoreTable":
        """One table of several, rows in order (class_mass widths must agree)."""
        if not tables:
            return cls.of([])
        widths = {t.class_mass.shape[1] for t in tables if len(t)}
        if len(widths) > 1:
            raise ValueError(f"tables must share one class_mass width; got {sorted(widths)}")
        width = widths.pop() if widths else tables[0].class_mass.shape[1]
        return cls(
            tuple(i for t in tables for i in t.image_ids),
            np.concatenate([t.combined for t in tables]),
            np.concatenate([t.by_name for t in tables]),
            np.concatenate([t.boxes_considered for t in tables]),
            np.concatenate([t.predicted_class for t in tables]),
            np.concatenate([t.class_mass.reshape(len(t), width) for t in tables]),
            np.concatenate([t.expected_edits for t in tables]),
        )

    @classmethod
    def unscored(cls, image_ids: Sequence[str]) -> "ScoreTable":
        """Images no model predicted: 0 everywhere, no box, no class (``scoring.unscored``)."""
        n = len(image_ids)
        return cls(tuple(image_ids), np.zeros(n), np.zeros((n, len(SCORE_COLUMNS))),
                   np.zeros(n, np.int64), np.full(n, -1, np.int64), np.zeros((n, 0)), np.zeros(n))

    def as_mapping(self) -> Mapping[str, int]:
        """``{image_id: row}``."""
        return {image_id: i for i, image_id in enumerate(self.image_ids)}
