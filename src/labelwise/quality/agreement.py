"""Reviewer agreement: two reviewers' labels of the same images.

Boxes are (N, 4) ``x1, y1, x2, y2`` float arrays in any one unit (pixels or normalised; IoU does
not depend on it), classes (N,) int ids >= 0. Pure numpy, no I/O.

* Box agreement of one image (:func:`box_agreement`): reviewer A's and B's boxes are matched one to
  one *within each class* by :func:`labelwise.review.corrections.greedy_match` (decreasing IoU,
  pairs at/above ``iou_threshold``, default 0.5). ``matched`` = matched pairs, ``only_a`` /
  ``only_b`` = each side's unmatched boxes, ``f1 = 2 * matched / (n_a + n_b)`` (precision and
  recall of A against B are ``matched / n_a`` and ``matched / n_b``, so this is their harmonic
  mean); two empty images agree perfectly, f1 = 1.0.
* Image-level class presence (:func:`presence_kappa`): each (image, class) pair is one binary
  item, "class present in the image" (at least one box of it), rated by both reviewers. Cohen's
  kappa pooled over all ``n_images * num_classes`` items: ``kappa = (p_o - p_e) / (1 - p_e)`` with
  ``p_o`` the share of items both rate alike and ``p_e = q_a q_b + (1 - q_a)(1 - q_b)``, ``q_a`` /
  ``q_b`` each reviewer's share of "present". Degenerate case: ``p_e == 1`` happens only when both
  reviewers give every item the same one rating (all present, or all absent), so ``p_o == 1`` too
  and the formula is 0 / 0; kappa is then reported as 1.0 (they agree on everything) with
  ``degenerate=True`` (sklearn's ``cohen_kappa_score`` gives NaN there).
* Merge rule (:func:`merge_reviews`): the pairs matched as in :func:`box_agreement` (both drew the
  box, same class) are kept, their corners averaged; every unmatched box of either reviewer is
  returned as needing a third look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelwise.quality.label_issues import _box_array, _box_tuple, _vector
from labelwise.review.corrections import greedy_match

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class BoxAgreement:
    """Box agreement of one image: ``matched + only_a == n_a`` and ``matched + only_b == n_b``."""

    matched: int
    only_a: int
    only_b: int
    f1: float


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa of image-level class presence (see the module docstring).

    Attributes:
        kappa: in ``[-1, 1]``; 1.0 when ``degenerate``.
        observed: ``p_o``, the share of (image, class) items rated alike.
        expected: ``p_e``, the agreement expected by chance from each reviewer's "present" share.
        items: ``n_images * num_classes``.
        degenerate: ``p_e == 1`` (both reviewers rated every item the same one way).
    """

    kappa: float
    observed: float
    expected: float
    items: int
    degenerate: bool


@dataclass(frozen=True)
class ReviewedBox:
    """One box. ``reviewer`` is ``"a"``, ``"b"`` or ``"ab"`` (merged: both drew it)."""

    reviewer: str
    class_id: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class MergeResult:
    """Merged labels of one image.

    Attributes:
        agreed: boxes both reviewers drew with the same class, corners averaged (``reviewer="ab"``),
            in A's box order.
        third_look: the unmatched boxes of A then of B (each in its input order), to be decided by a
            third reviewer.
    """

    agreed: tuple[ReviewedBox, ...]
    third_look: tuple[ReviewedBox, ...]

    @property
    def needs_third_look(self) -> bool:
        return bool(self.third_look)

    def agreed_xyxy(self) -> np.ndarray:
        """(K, 4) float64 boxes of :attr:`agreed`."""
        return np.asarray([b.box for b in self.agreed], dtype=np.float64).reshape(-1, 4)

    def agreed_classes(self) -> np.ndarray:
        """(K,) int64 classes of :attr:`agreed`."""
        return np.asarray([b.class_id for b in self.agreed], dtype=np.int64).reshape(-1)


def _labels(xyxy: Any, classes: Any, side: str) -> tuple[np.ndarray, np.ndarray]:
    boxes = _box_array(xyxy, f"{side}_xyxy")
    cls = _vector(classes, len(boxes), f"{side}_classes", f"{side}_xyxy", np.int64)
    if len(cls) and cls.min() < 0:
        raise ValueError(f"{side}_classes must be >= 0; got {int(cls.min())}")
    return boxes, cls


def _match_same_class(
    a: np.ndarray, a_cls: np.ndarray, b: np.ndarray, b_cls: np.ndarray, iou_threshold: float
) -> list[tuple[int, int]]:
    """(A index, B index) pairs, matched greedily within each class (classes ascending)."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in (0, 1]; got {iou_threshold!r}")
    pairs: list[tuple[int, int]] = []
    for c in sorted(set(a_cls.tolist()) & set(b_cls.tolist())):
        ia = np.flatnonzero(a_cls == c)
        ib = np.flatnonzero(b_cls == c)
        for i, j, _ in greedy_match(a[ia], b[ib], iou_threshold):
            pairs.append((int(ia[i]), int(ib[j])))
    return pairs


def box_agreement(
    a_xyxy: Any, a_classes: Any, b_xyxy: Any, b_classes: Any, iou_threshold: float = IOU_THRESHOLD
) -> BoxAgreement:
    """Box F1 with class match between reviewer A's and B's labels of one image.

    Args:
        a_xyxy: (N, 4) A's boxes; a_classes: (N,) A's class ids.
        b_xyxy: (M, 4) B's boxes, same unit; b_classes: (M,) B's class ids.
        iou_threshold: a same-class pair at/above this IoU is the same box, in ``(0, 1]``.
    """
    a, a_cls = _labels(a_xyxy, a_classes, "a")
    b, b_cls = _labels(b_xyxy, b_classes, "b")
    matched = len(_match_same_class(a, a_cls, b, b_cls, iou_threshold))
    total = len(a) + len(b)
    f1 = 1.0 if total == 0 else 2.0 * matched / total
    return BoxAgreement(matched=matched, only_a=len(a) - matched, only_b=len(b) - matched, f1=f1)


def _presence(per_image: Sequence[Any], num_classes: int, side: str) -> np.ndarray:
    out = np.zeros((len(per_image), num_classes), dtype=bool)
    for k, classes in enumerate(per_image):
        cls = np.asarray(classes).reshape(-1)
        if cls.size == 0:
            continue
        if cls.dtype.kind not in "iu" and not np.all(cls == np.round(cls)):
            raise ValueError(f"{side}[{k}] must hold integer class ids; got {cls.tolist()}")
        cls = cls.astype(np.int64)
        if cls.min() < 0 or cls.max() >= num_classes:
            raise ValueError(f"{side}[{k}] class ids must lie in [0, {num_classes}); got {sorted(set(cls.tolist()))}")
        out[k, cls] = True
    return out


def presence_kappa(a_classes: Sequence[Any], b_classes: Sequence[Any], num_classes: int) -> KappaResult:
    """Cohen's kappa of image-level class presence between reviewers A and B.

    Args:
        a_classes: per image (same image order for both), A's (N_i,) class ids of that image's
            boxes (repeats allowed: presence only counts).
        b_classes: the same for B; as many images as ``a_classes``.
        num_classes: C >= 1; every class id must lie in ``[0, C)``.

    Raises:
        ValueError: no images, different image counts, num_classes < 1, or a class out of range.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if len(a_classes) != len(b_classes):
        raise ValueError(f"a_classes and b_classes must cover the same images: expected {len(a_classes)} "
                         f"images in b_classes, got {len(b_classes)}")
    if not len(a_classes):
        raise ValueError("presence_kappa needs at least one image; got 0")
    pa = _presence(a_classes, num_classes, "a_classes")
    pb = _presence(b_classes, num_classes, "b_classes")
    n = pa.size
    agree = int((pa == pb).sum())
    a1, b1 = int(pa.sum()), int(pb.sum())
    chance = a1 * b1 + (n - a1) * (n - b1)  # p_e * n**2, exact in integers
    observed = agree / n
    expected = chance / (n * n)
    if chance == n * n:
        return KappaResult(kappa=1.0, observed=observed, expected=1.0, items=n, degenerate=True)
    kappa = (observed - expected) / (1.0 - expected)
    return KappaResult(kappa=kappa, observed=observed, expected=expected, items=n, degenerate=False)


def merge_reviews(
    a_xyxy: Any, a_classes: Any, b_xyxy: Any, b_classes: Any, iou_threshold: float = IOU_THRESHOLD
) -> MergeResult:
    """Merge two reviewers' labels of one image: keep (averaged) what both drew, flag the rest.

    Args: as :func:`box_agreement`. ``len(result.agreed) == box_agreement(...).matched``.
    """
    a, a_cls = _labels(a_xyxy, a_classes, "a")
    b, b_cls = _labels(b_xyxy, b_classes, "b")
    pairs = _match_same_class(a, a_cls, b, b_cls, iou_threshold)
    agreed = [ReviewedBox("ab", int(a_cls[i]), _box_tuple((a[i] + b[j]) / 2.0)) for i, j in sorted(pairs)]
    used_a = {i for i, _ in pairs}
    used_b = {j for _, j in pairs}
    rest = [ReviewedBox("a", int(a_cls[i]), _box_tuple(a[i])) for i in range(len(a)) if i not in used_a]
    rest += [ReviewedBox("b", int(b_cls[j]), _box_tuple(b[j])) for j in range(len(b)) if j not in used_b]
    return MergeResult(agreed=tuple(agreed), third_look=tuple(rest))

