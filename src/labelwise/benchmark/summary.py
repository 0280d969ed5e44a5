"""Summary maths: mean learning curves, labels needed to reach random's final mAP50, normalised
area under the learning curve, and the table (printed and markdown).

Definitions (all on the MEAN curve over seeds of one protocol x strategy):

* ``labels_to_reach(xs, ys, target)``: the first x at which the piecewise-linear curve through
  (xs, ys) reaches ``target``, interpolating linearly between the two rounds that straddle it;
  None ("not reached") when no round reaches it.
* target = random's final mean mAP50. Random's own labels = ``labels_to_reach`` on random's curve
  (its final x unless it got there earlier), so the same rule is applied to both.
* ``label_ratio`` = strategy labels / random labels (lower is better; 1/3 = a 3x saving) and
  ``speedup`` = its inverse. Computed with x = labelled images and with x = labelled boxes.
* When random's final mean mAP50 is 0 there is nothing to reach: the row says ``n/a``.
* ``boxes/pick``: mean boxes per image a strategy picked after round 0 (box-dense picks buy more
  labels per image, which is why the box columns matter).
* ``normalised_auc``: trapezoid area under the mean curve divided by its x span: the mean
  mAP50 over the labelling budget, on [0, 1]. With x = images all strategies share the span; with
  x = boxes each strategy's own span is used.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labelwise.benchmark.config import BASELINE


def labels_to_reach(xs: Sequence[float], ys: Sequence[float], target: float) -> float | None:
    """First x where the linear interpolation of (xs, ys) reaches ``target``; None if never.

    ``xs`` must be increasing.
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"xs and ys must be (R,) of equal length >= 1; got {x.shape} and {y.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"xs must be strictly increasing; got {x.tolist()}")
    if y[0] >= target:
        return float(x[0])
    for i in range(1, x.size):
        if y[i] >= target:
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + frac * (x[i] - x[i - 1]))
    return None


def normalised_auc(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid area under (xs, ys) divided by the x span (a single point: its y)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"xs and ys must be (R,) of equal length >= 1; got {x.shape} and {y.shape}")
    if x.size == 1:
        return float(y[0])
    span = float(x[-1] - x[0])
    if span <= 0:
        raise ValueError(f"xs must span a positive range; got {x.tolist()}")
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / span)


@dataclass(frozen=True)
class Curve:
    """Mean over seeds, per round. Arrays are (R,) in round order."""

    protocol: str
    strategy: str
    seeds: int
    images: np.ndarray
    boxes: np.ndarray
    map50: np.ndarray
    map50_std: np.ndarray
    map50_95: np.ndarray
    rare_boxes: np.ndarray
    near_duplicates_total: np.ndarray


def mean_curves(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Curve]:
    """(protocol, strategy) -> mean curve over seeds, using rounds every seed completed."""
    groups: dict[tuple[str, str], dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(str(row["protocol"]), str(row["strategy"]))][int(row["round"])].append(row)
    out = {}
    for key, by_round in groups.items():
        seeds = max(len(v) for v in by_round.values())
        rounds = sorted(r for r, v in by_round.items() if len(v) == seeds)

        def col(name: str, fn=np.mean) -> np.ndarray:
            return np.asarray([fn([float(row[name]) for row in by_round[r]]) for r in rounds])

        out[key] = Curve(key[0], key[1], seeds, col("labelled_images"), col("labelled_boxes"),
                         col("map50"), col("map50", np.std), col("map50_95"), col("rare_boxes"),
                         col("near_duplicates_total"))
    return out


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary table (None = not reached / not available)."""

    protocol: str
    strategy: str
    seeds: int
    final_map50: float
    final_map50_std: float
    final_map50_95: float
    target_map50: float
    images_to_target: float | None
    image_ratio: float | None
    image_speedup: float | None
    boxes_to_target: float | None
    box_ratio: float | None
    box_speedup: float | None
    nauc_images: float
    nauc_boxes: float
    rare_boxes: float
    near_duplicates: float
    boxes_per_pick: float = math.nan
    comparable: bool = True  # False when random's final mAP50 is 0 (nothing to reach)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def boxes_per_pick(rows: Sequence[Mapping[str, Any]], protocol: str, strategy: str) -> float:
    """Mean boxes per image the strategy picked (rounds >= 1; round 0 is the shared random set)."""
    picked = [(float(r["new_boxes"]), float(r["new_images"])) for r in rows
              if r["protocol"] == protocol and r["strategy"] == strategy and int(r["round"]) >= 1
              and "new_boxes" in r]
    images = sum(i for _, i in picked)
    return sum(b for b, _ in picked) / images if images else math.nan


def summarise(rows: Sequence[Mapping[str, Any]], baseline: str = BASELINE) -> list[SummaryRow]:
    """One :class:`SummaryRow` per protocol x strategy; protocols without the baseline get no ratios."""
    curves = mean_curves(rows)
    out = []
    for (protocol, strategy), c in sorted(curves.items()):
        base = curves.get((protocol, baseline))
        target = float(base.map50[-1]) if base is not None else math.nan
        base_img = labels_to_reach(base.images, base.map50, target) if base is not None else None
        base_box = labels_to_reach(base.boxes, base.map50, target) if base is not None else None
        comparable = base is not None and target > 0
        img = labels_to_reach(c.images, c.map50, target) if comparable else None
        box = labels_to_reach(c.boxes, c.map50, target) if comparable and np.all(np.diff(c.boxes) > 0) else None
        if not comparable:
            base_img = base_box = None
        out.append(SummaryRow(
            protocol, strategy, c.seeds, float(c.map50[-1]), float(c.map50_std[-1]), float(c.map50_95[-1]),
            target, img, _ratio(img, base_img), _ratio(base_img, img), box, _ratio(box, base_box),
            _ratio(base_box, box), normalised_auc(c.images, c.map50), normalised_auc(c.boxes, c.map50)
            if np.all(np.diff(c.boxes) > 0) else float(c.map50[0]),
            float(c.rare_boxes[-1]), float(c.near_duplicates_total[-1]),
            boxes_per_pick(rows, protocol, strategy), comparable,
        ))
    return out


def _fmt(value: float | None, spec: str = ".1f", missing: str = "not reached") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


HEADER = ("protocol", "strategy", "seeds", "final mAP50 (mean ± std)", "final mAP50-95",
          "images to random's final", "ratio (images)", "speed-up (images)",
          "boxes to random's final", "ratio (boxes)", "speed-up (boxes)",
          "nAUC (images)", "nAUC (boxes)", "rare boxes", "near-dup picks", "boxes/pick")


def table_cells(rows: Sequence[SummaryRow]) -> list[list[str]]:
    cells = []
    for r in rows:
        reach = "not reached" if r.comparable else "n/a"  # n/a: random's final mAP50 is 0
        cells.append([
            r.protocol, r.strategy, str(r.seeds), f"{r.final_map50:.3f} ± {r.final_map50_std:.3f}",
            f"{r.final_map50_95:.3f}", _fmt(r.images_to_target, missing=reach), _fmt(r.image_ratio, ".2f", "–"),
            _fmt(r.image_speedup, ".2f", "–") + ("x" if r.image_speedup else ""),
            _fmt(r.boxes_to_target, ".0f", reach), _fmt(r.box_ratio, ".2f", "–"),
            _fmt(r.box_speedup, ".2f", "–") + ("x" if r.box_speedup else ""),
            f"{r.nauc_images:.3f}", f"{r.nauc_boxes:.3f}", f"{r.rare_boxes:.1f}", f"{r.near_duplicates:.1f}", _fmt(r.boxes_per_pick, ".2f", "–"),
        ])
    return cells


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in table_cells(rows)]
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[SummaryRow]) -> str:
    cells = [list(HEADER)] + table_cells(rows)
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells) + "\n"
