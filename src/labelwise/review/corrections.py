"""Reviewer-correction metrics: how much a reviewer changed the boxes the model pre-annotated.

For one image, the boxes SENT (the task's prediction) are matched to the boxes of the FINAL
annotation, class-agnostically, greedily by IoU: all (predicted, final) pairs with
IoU >= ``iou_threshold`` are taken in order of decreasing IoU (ties: lower predicted index, then
lower final index), each box used at most once. Then

* ``kept``: matched pairs (a matched pair whose class changed is ALSO counted in ``relabelled``);
* ``added``: final boxes left unmatched (the reviewer drew them);
* ``removed``: predicted boxes left unmatched (the reviewer deleted or moved them far);
* ``relabelled``: matched pairs whose class differs;
* ``mean_iou_kept``: mean IoU of the matched pairs (None when there are none): 1 means the
  reviewer accepted the boxes untouched, lower means they were adjusted.

So ``boxes_predicted == kept + removed`` and ``boxes_final == kept + added``. Boxes are (N, 4)
``x1, y1, x2, y2`` arrays in any one unit (IoU does not depend on it, nor on scaling x and y
separately, so normalised and pixel corners give the same numbers). Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_THRESHOLD = 0.5
MOVED_IOU = 0.75
PREFIX = "corrections/"


def _boxes(boxes: Any, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be (N, 4) x1, y1, x2, y2; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got NaN/inf")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name} must have x2 >= x1 and y2 >= y1; got inverted corners")
    return arr


def _classes(classes: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(classes, dtype=np.int64).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be ({n},) to match its boxes; got shape {arr.shape}")
    return arr


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """Pairwise IoU.

    Args:
        a: (N, 4) xyxy boxes.
        b: (M, 4) xyxy boxes.

    Returns:
        (N, M) float64 in [0, 1]; a pair of zero-area boxes has IoU 0.
    """
    a, b = _boxes(a, "a"), _boxes(b, "b")
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float64)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def greedy_match(
    predicted: Any, final: Any, iou_threshold: float = IOU_THRESHOLD
) -> list[tuple[int, int, float]]:
    """Class-agnostic greedy one-to-one matching by decreasing IoU.

    Returns:
        ``(predicted index, final index, iou)`` triples, in the order they were matched.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in (0, 1]; got {iou_threshold}")
    iou = iou_matrix(predicted, final)
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= iou_threshold)
    order = np.lexsort((cols, rows, -iou[rows, cols]))  # IoU desc, then i, then j
    used_p: set[int] = set()
    used_f: set[int] = set()
    pairs: list[tuple[int, int, float]] = []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if i in used_p or j in used_f:
            continue
        used_p.add(i)
        used_f.add(j)
        pairs.append((i, j, float(iou[i, j])))
    return pairs


@dataclass(frozen=True)
class ImageCorrections:
    """What the reviewer changed in one image (see the module docstring)."""

    boxes_predicted: int
    boxes_final: int
    kept: int
    added: int
    removed: int
    relabelled: int
    iou_sum_kept: float

    @property
    def mean_iou_kept(self) -> float | None:
        return self.iou_sum_kept / self.kept if self.kept else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "boxes_predicted": self.boxes_predicted,
            "boxes_final": self.boxes_final,
            "kept": self.kept,
            "added": self.added,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "mean_iou_kept": None if self.mean_iou_kept is None else round(self.mean_iou_kept, 6),
        }


def compare_boxes(
    predicted_xyxy: Any,
    predicted_cls: Any,
    final_xyxy: Any,
    final_cls: Any,
    iou_threshold: float = IOU_THRESHOLD,
) -> ImageCorrections:
    """Corrections of one image.

    Args:
        predicted_xyxy: (N, 4) boxes sent to the reviewer; predicted_cls: (N,) class ids.
        final_xyxy: (M, 4) boxes of the final annotation; final_cls: (M,) class ids.
        iou_threshold: a pair with IoU at/above this counts as the same box.
    """
    p = _boxes(predicted_xyxy, "predicted_xyxy")
    f = _boxes(final_xyxy, "final_xyxy")
    pc = _classes(predicted_cls, len(p), "predicted_cls")
    fc = _classes(final_cls, len(f), "final_cls")
    pairs = greedy_match(p, f, iou_threshold)
    kept = len(pairs)
    return ImageCorrections(
        boxes_predicted=len(p),
        boxes_final=len(f),
        kept=kept,
        added=len(f) - kept,
        removed=len(p) - kept,
        relabelled=sum(int(pc[i] != fc[j]) for i, j, _ in pairs),
        iou_sum_kept=float(sum(v for _, _, v in pairs)),
    )


def yolo_rows_to_xyxy(rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) YOLO rows ``cls, cx, cy, w, h`` to ((N, 4) normalised xyxy, (N,) int classes)."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    half = arr[:, 3:5] / 2.0
    xyxy = np.concatenate([arr[:, 1:3] - half, arr[:, 1:3] + half], axis=1)
    return xyxy, arr[:, 0].astype(np.int64)


def compare_yolo(
    predicted: Any, final: Any, iou_threshold: float = IOU_THRESHOLD
) -> ImageCorrections:
    """:func:`compare_boxes` for two (N, 5) YOLO row arrays of the same image."""
    p_xyxy, p_cls = yolo_rows_to_xyxy(predicted)
    f_xyxy, f_cls = yolo_rows_to_xyxy(final)
    return compare_boxes(p_xyxy, p_cls, f_xyxy, f_cls, iou_threshold)


@dataclass(frozen=True)
class ReviewerEdits:
    """The edits a reviewer makes to turn one image's pre-annotations into its true boxes.

    ``added``: true boxes with no matching pre-annotation (drawn from nothing); ``deleted``:
    pre-annotations matching no true box (false positives removed); ``relabelled``: matched
    pairs whose class differs; ``moved``: matched pairs with IoU below ``MOVED_IOU`` (dragged
    into place). A matched box can be both relabelled and moved (two edits). Matching is
    :func:`greedy_match`, the review metrics' own.
    """

    added: int
    deleted: int
    relabelled: int
    moved: int

    @property
    def total(self) -> int:
        return self.added + self.deleted + self.relabelled + self.moved


def reviewer_edits(
    predicted: Any, final: Any, iou_threshold: float = IOU_THRESHOLD, moved_iou: float = MOVED_IOU
) -> ReviewerEdits:
    """:class:`ReviewerEdits` between two (N, 5) / (M, 5) YOLO row arrays of one image.

    With no pre-annotations every final box is ``added`` (drawing every box by hand).
    """
    if not iou_threshold <= moved_iou <= 1.0:
        raise ValueError(f"moved_iou must lie in [iou_threshold {iou_threshold}, 1]; got {moved_iou}")
    p_xyxy, p_cls = yolo_rows_to_xyxy(predicted)
    f_xyxy, f_cls = yolo_rows_to_xyxy(final)
    pairs = greedy_match(_boxes(p_xyxy, "predicted"), _boxes(f_xyxy, "final"), iou_threshold)
    return ReviewerEdits(
        added=len(f_xyxy) - len(pairs),
        deleted=len(p_xyxy) - len(pairs),
        relabelled=sum(int(p_cls[i] != f_cls[j]) for i, j, _ in pairs),
        moved=sum(int(iou < moved_iou) for _, _, iou in pairs),
    )


def summarize(images: Iterable[ImageCorrections]) -> dict[str, float | int | None]:
    """Totals over images plus per-image averages, keyed ``corrections/<name>``.

    Returns:
        ``corrections/images``; totals ``boxes_predicted, boxes_final, kept, added, removed,
        relabelled``; ``mean_iou_kept`` pooled over every matched pair (None without any);
        ``<name>_per_image`` = total / images for the six counts (None without images).
    """
    items = list(images)
    counts = ("boxes_predicted", "boxes_final", "kept", "added", "removed", "relabelled")
    totals = {name: sum(getattr(c, name) for c in items) for name in counts}
    kept = totals["kept"]
    out: dict[str, float | int | None] = {f"{PREFIX}images": len(items)}
    out.update({f"{PREFIX}{name}": value for name, value in totals.items()})
    out[f"{PREFIX}mean_iou_kept"] = (
        round(sum(c.iou_sum_kept for c in items) / kept, 6) if kept else None
    )
    for name in counts:
        out[f"{PREFIX}{name}_per_image"] = (
            round(totals[name] / len(items), 6) if items else None
        )
    return out
