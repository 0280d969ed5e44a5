"""Summary maths: mean learning curves, labels needed to reach a target metric in three units,
normalised area under the learning curve, the ceiling's share, and the tables.

The curve metric is the task's (:class:`~labelwise.benchmark.tasks.CurveMetric`): mAP50 for
detection (named below), mask mAP50 for segmentation, top-1 accuracy for classification; every
definition reads the same with it in place of mAP50.

Definitions (all on the MEAN curve over seeds of one protocol x strategy):

* Units of cost (the x of a learning curve): ``images`` labelled, ``boxes`` labelled and
  ``edits``: the reviewer edits those labels took against their pre-annotations (added, deleted,
  relabelled and moved boxes; ``random_sprint`` has no pre-annotations, so its edits = boxes).
* ``labels_to_reach(xs, ys, target)``: the first x at which the piecewise-linear curve through
  (xs, ys) reaches ``target``, interpolating linearly between the two rounds that straddle it;
  None ("not reached") when no round reaches it.
* Targets: random's final mean mAP50, and 90 % of the ceiling (the mean over seeds of the same
  recipe trained on the whole pool; :mod:`labelwise.benchmark.ceiling`). The baseline's own
  labels to a target use the same rule.
* ``ratio`` = strategy labels / random's labels (lower is better; 1/3 = a 3x saving) and
  ``speedup`` = its inverse; in edits also against ``random_sprint`` (the promise's baseline:
  random images labelled by hand).
* When random's final mean mAP50 is 0 there is nothing to reach: the row says ``n/a``.
* ``gap closed`` = (final - round 0) / (ceiling - round 0) mAP50.
* ``boxes/pick``, ``edits/pick``: per image a strategy picked after round 0 (round 0 is the
  shared random set).
* ``normalised_auc``: trapezoid area under the mean curve divided by its x span: the mean
  mAP50 over the labelling budget, on [0, 1], in each unit.
* ``near-dup picks``: n/a when the data has no near-duplicate clusters (no manifest).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from labelwise.benchmark.config import BASELINE, SPRINT
from labelwise.benchmark.tasks import BOX_CURVE, CurveMetric

UNITS = ("images", "boxes", "edits")
CEILING_SHARE = 0.9


def labels_to_reach(xs: ArrayLike, ys: ArrayLike, target: float) -> float | None:
    """First x where the linear interpolation of (xs, ys) reaches ``target``; None if never.

    ``xs`` must be non-decreasing (a round that cost no edits repeats its x).
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"xs and ys must be (R,) of equal length >= 1; got {x.shape} and {y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError(f"xs must be non-decreasing; got {x.tolist()}")
    if not math.isfinite(target) or np.isnan(x).any():
        return None
    if y[0] >= target:
        return float(x[0])
    for i in range(1, x.size):
        if y[i] >= target:
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + frac * (x[i] - x[i - 1]))
    return None


def normalised_auc(xs: ArrayLike, ys: ArrayLike) -> float:
    """Trapezoid area under (xs, ys) divided by the x span (no span: the first y)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"xs and ys must be (R,) of equal length >= 1; got {x.shape} and {y.shape}")
    if np.isnan(x).any():
        return math.nan
    span = float(x[-1] - x[0])
    if x.size == 1 or span <= 0:
        return float(y[0])
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / span)


@dataclass(frozen=True)
class Curve:
    """Mean over seeds, per round. Arrays are (R,) in round order; ``x[unit]`` per cost unit.

    ``y`` / ``y_std``: mean and std of the curve metric; ``secondary``: mean of its companion.
    """

    protocol: str
    strategy: str
    seeds: int
    x: dict[str, np.ndarray]
    y: np.ndarray
    y_std: np.ndarray
    secondary: np.ndarray
    rare_boxes: np.ndarray
    near_duplicates_total: np.ndarray

    @property
    def images(self) -> np.ndarray:
        return self.x["images"]

    @property
    def boxes(self) -> np.ndarray:
        return self.x["boxes"]


def _value(row: Mapping[str, Any], name: str) -> float:
    value = row.get(name)
    return math.nan if value is None or value == "" else float(value)


def mean_curves(rows: Sequence[Mapping[str, Any]], metric: CurveMetric = BOX_CURVE
                ) -> dict[tuple[str, str], Curve]:
    """(protocol, strategy) -> mean curve of ``metric`` over seeds, using rounds every seed
    completed."""
    groups: dict[tuple[str, str], dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(str(row["protocol"]), str(row["strategy"]))][int(row["round"])].append(row)
    out = {}
    for key, by_round in groups.items():
        seeds = max(len(v) for v in by_round.values())
        rounds = sorted(r for r, v in by_round.items() if len(v) == seeds)

        def col(name: str, fn=np.mean, by_round=by_round, rounds=rounds) -> np.ndarray:
            return np.asarray([fn([_value(row, name) for row in by_round[r]]) for r in rounds])

        x = {"images": col("labelled_images"), "boxes": col("labelled_boxes"), "edits": col("edits")}
        out[key] = Curve(key[0], key[1], seeds, x, col(metric.column), col(metric.column, np.std),
                         col(metric.secondary), col("rare_boxes"), col("near_duplicates_total"))
    return out


@dataclass(frozen=True)
class UnitSummary:
    """Cost of one strategy in one unit (None = not reached / not available)."""

    to_random_final: float | None
    ratio: float | None
    speedup: float | None
    to_ceiling: float | None
    ceiling_ratio: float | None
    ceiling_speedup: float | None
    nauc: float
    sprint_ratio: float | None = None
    sprint_ceiling_ratio: float | None = None


@dataclass(frozen=True)
class SummaryRow:
    """One strategy of one protocol; ``final``, ``target``, ``round0``, ``ceiling`` are values of
    the curve metric ``metric`` (a row column, e.g. ``map50``), ``final_secondary`` of its companion."""

    protocol: str
    strategy: str
    seeds: int
    final: float
    final_std: float
    final_secondary: float
    target: float
    round0: float
    ceiling: float | None
    gap_closed: float | None
    rare_boxes: float
    near_duplicates: float | None
    boxes_per_pick: float
    edits_per_pick: float
    units: dict[str, UnitSummary] = field(default_factory=dict)
    comparable: bool = True  # False when random's final value is 0 (nothing to reach)
    metric: str = "map50"

    def unit(self, name: str) -> UnitSummary:
        return self.units[name]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def per_pick(rows: Sequence[Mapping[str, Any]], protocol: str, strategy: str, column: str) -> float:
    """Mean ``column`` per image the strategy picked (rounds >= 1; round 0 is shared)."""
    picked = [(_value(r, column), float(r["new_images"])) for r in rows
              if r["protocol"] == protocol and r["strategy"] == strategy and int(r["round"]) >= 1
              and column in r]
    images = sum(i for _, i in picked)
    return sum(b for b, _ in picked) / images if images else math.nan


def boxes_per_pick(rows: Sequence[Mapping[str, Any]], protocol: str, strategy: str) -> float:
    return per_pick(rows, protocol, strategy, "new_boxes")


def _reach(c: Curve | None, unit: str, target: float | None) -> float | None:
    if c is None or target is None or not math.isfinite(target):
        return None
    return labels_to_reach(c.x[unit], c.y, target)


def summarise(
    rows: Sequence[Mapping[str, Any]],
    ceilings: Mapping[str, float] | None = None,
    clusters_known: bool = True,
    baseline: str = BASELINE,
    metric: CurveMetric = BOX_CURVE,
) -> list[SummaryRow]:
    """One :class:`SummaryRow` per protocol x strategy.

    Args:
        ceilings: protocol -> mean ceiling of ``metric`` over seeds (absent: no ceiling columns).
        clusters_known: False when the data has no near-duplicate clusters.
        metric: the curve metric (the task's).
    """
    curves = mean_curves(rows, metric)
    out = []
    for (protocol, strategy), c in sorted(curves.items()):
        base = curves.get((protocol, baseline))
        sprint = curves.get((protocol, SPRINT))
        target = float(base.y[-1]) if base is not None else math.nan
        comparable = base is not None and target > 0
        ceiling = (ceilings or {}).get(protocol)
        goal = CEILING_SHARE * ceiling if ceiling is not None else None
        units = {}
        for unit in UNITS:
            mine = _reach(c, unit, target) if comparable else None
            ref = _reach(base, unit, target) if comparable else None
            mine90, ref90 = _reach(c, unit, goal), _reach(base, unit, goal)
            sprint_ratio = sprint90 = None
            if unit == "edits" and sprint is not None:
                sprint_ratio = _ratio(mine, _reach(sprint, unit, target) if comparable else None)
                sprint90 = _ratio(mine90, _reach(sprint, unit, goal))
            units[unit] = UnitSummary(mine, _ratio(mine, ref), _ratio(ref, mine), mine90, _ratio(mine90, ref90),
                                      _ratio(ref90, mine90), normalised_auc(c.x[unit], c.y),
                                      sprint_ratio, sprint90)
        gap = None
        if ceiling is not None and ceiling - float(c.y[0]) > 1e-9:
            gap = (float(c.y[-1]) - float(c.y[0])) / (ceiling - float(c.y[0]))
        out.append(SummaryRow(
            protocol, strategy, c.seeds, float(c.y[-1]), float(c.y_std[-1]), float(c.secondary[-1]),
            target, float(c.y[0]), ceiling, gap, float(c.rare_boxes[-1]),
            float(c.near_duplicates_total[-1]) if clusters_known else None,
            boxes_per_pick(rows, protocol, strategy), per_pick(rows, protocol, strategy, "new_edits"),
            units, comparable, metric.column,
        ))
    return out


def _fmt(value: float | None, spec: str = ".1f", missing: str = "not reached") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _x(value: float | None) -> str:
    return _fmt(value, ".2f", "–") + ("x" if value is not None and not math.isnan(value) else "")


def overview_header(metric: CurveMetric = BOX_CURVE) -> tuple[str, ...]:
    """The overview table's columns, naming the task's curve metric."""
    return ("protocol", "strategy", "seeds", f"final {metric.label} (mean ± std)", f"final {metric.secondary_label}",
            f"round-0 {metric.label}", f"ceiling {metric.label}", "gap closed", "rare boxes", "near-dup picks",
            "boxes/pick", "edits/pick")


OVERVIEW = overview_header()


def overview_cells(rows: Sequence[SummaryRow]) -> list[list[str]]:
    return [[r.protocol, r.strategy, str(r.seeds), f"{r.final:.3f} ± {r.final_std:.3f}",
             f"{r.final_secondary:.3f}", f"{r.round0:.3f}", _fmt(r.ceiling, ".3f", "n/a"),
             _fmt(r.gap_closed, ".2f", "n/a"), f"{r.rare_boxes:.1f}",
             _fmt(r.near_duplicates, ".1f", "n/a"), _fmt(r.boxes_per_pick, ".2f", "–"),
             _fmt(r.edits_per_pick, ".2f", "–")] for r in rows]


def unit_header(unit: str) -> tuple[str, ...]:
    head: tuple[str, ...] = ("protocol", "strategy", f"{unit} to random's final", "ratio", "speed-up",
                             f"{unit} to 90% ceiling", "ratio", "speed-up", f"nAUC ({unit})")
    if unit == "edits":
        head += ("ratio vs random_sprint (random's final)", "ratio vs random_sprint (90% ceiling)")
    return head


def unit_cells(rows: Sequence[SummaryRow], unit: str) -> list[list[str]]:
    cells = []
    for r in rows:
        u = r.unit(unit)
        reach = "not reached" if r.comparable else "n/a"
        reach90 = "not reached" if r.ceiling is not None else "n/a"
        spec = ".1f" if unit == "images" else ".0f"
        row = [r.protocol, r.strategy, _fmt(u.to_random_final, spec, reach), _fmt(u.ratio, ".2f", "–"),
               _x(u.speedup), _fmt(u.to_ceiling, spec, reach90), _fmt(u.ceiling_ratio, ".2f", "–"),
               _x(u.ceiling_speedup), _fmt(u.nauc, ".3f", "n/a")]
        if unit == "edits":
            row += [_fmt(u.sprint_ratio, ".2f", "–"), _fmt(u.sprint_ceiling_ratio, ".2f", "–")]
        cells.append(row)
    return cells


def _markdown(header: Sequence[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def _text(header: Sequence[str], cells: list[list[str]]) -> str:
    table = [list(header)] + cells
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in table) + "\n"


def markdown_table(rows: Sequence[SummaryRow], metric: CurveMetric = BOX_CURVE) -> str:
    """The overview table, then one table per cost unit (images, boxes, reviewer edits)."""
    parts = [_markdown(overview_header(metric), overview_cells(rows))]
    for unit in UNITS:
        parts.append(f"\nCost in {unit}:\n\n" + _markdown(unit_header(unit), unit_cells(rows, unit)))
    return "".join(parts)


def text_table(rows: Sequence[SummaryRow], metric: CurveMetric = BOX_CURVE) -> str:
    parts = [_text(overview_header(metric), overview_cells(rows))]
    for unit in UNITS:
        parts.append(f"\ncost in {unit}:\n" + _text(unit_header(unit), unit_cells(rows, unit)))
    return "".join(parts)
