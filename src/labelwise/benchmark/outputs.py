"""Benchmark outputs: the CSV (one row per protocol x strategy x seed x round), learning-curve
PNGs per protocol, the summary files and MLflow runs (one per protocol x strategy x seed)."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.benchmark.summary import SummaryRow, markdown_table, mean_curves
from labelwise.benchmark.tasks import BOX_CURVE, METRIC_COLUMNS, CurveMetric

CORE_COLUMNS = (
    "preset", "protocol", "strategy", "seed", "round", "labelled_images", "labelled_boxes",
    "new_images", "new_boxes", "edits", "new_edits", "preannotated_boxes", "edits_added",
    "edits_deleted", "edits_relabelled", "edits_moved", "pseudo_images", "pseudo_boxes", "pseudo_errors",
    *METRIC_COLUMNS, "rare_boxes",
    "rare_boxes_gained", "near_duplicates", "near_duplicates_total", "epochs", "train_seconds",
    "eval_seconds", "select_seconds",
)
CSV_NAME = "results.csv"


PER_CLASS_PREFIXES = ("ap50", "mask_ap50", "recall")
"""Per-class metric families (box AP50; segmentation's mask AP50; classification's recall)."""


def csv_columns(class_names: Sequence[str], rows: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Core columns, then the per-class metrics the rows carry (``ap50/<class>`` always,
    ``mask_ap50/<class>`` and ``recall/<class>`` when present), then ``boxes/<class>``."""
    prefixes = [p for p in PER_CLASS_PREFIXES
                if p == "ap50" or any(f"{p}/{class_names[0]}" in r for r in rows[:1])] if class_names else []
    return [*CORE_COLUMNS, *(f"{p}/{n}" for p in prefixes for n in class_names),
            *(f"boxes/{n}" for n in class_names)]


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], preset: str) -> Path:
    """Rows sorted by protocol, strategy, seed, round; a missing metric is empty."""
    columns = csv_columns(class_names, rows)
    ordered = sorted(rows, key=lambda r: (r["protocol"], r["strategy"], int(r["seed"]), int(r["round"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in ordered:
            out = {**row, "preset": preset}
            for key, value in out.items():
                if isinstance(value, float) and math.isnan(value):
                    out[key] = ""
            writer.writerow(out)
    return path


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of :func:`write_csv` with numbers parsed (empty cells -> NaN)."""
    out = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key in ("preset", "protocol", "strategy"):
                    parsed[key] = value
                elif value == "":
                    parsed[key] = float("nan")
                else:
                    number = float(value)
                    fractional = key.startswith(("map", "ap50", "mask_", "prec", "rec", "top"))
                    parsed[key] = int(number) if number.is_integer() and not fractional else number
            out.append(parsed)
    return out


def plot_curves(rows: Sequence[Mapping[str, Any]], out_dir: Path, x: str = "images",
                prefix: str = "learning-curve", ceilings: Mapping[str, float] | None = None,
                metric: CurveMetric = BOX_CURVE) -> list[Path]:
    """One PNG per protocol: mean ``metric`` ± std band per strategy against labelled images,
    boxes or reviewer edits (``x``); the protocol's ceiling (mean over seeds) as a dashed line."""
    from labelwise.reports import learning_curve

    curves = mean_curves(rows, metric)
    paths = []
    for protocol in sorted({p for p, _ in curves}):
        lines, bands = {}, {}
        for (p, strategy), c in sorted(curves.items()):
            xs = c.x[x]
            if p != protocol or np.isnan(xs).any():
                continue
            lines[f"{strategy} (n={c.seeds})"] = list(zip(xs.tolist(), c.y.tolist()))
            bands[f"{strategy} (n={c.seeds})"] = c.y_std.tolist()
        if not lines:
            continue
        suffix = "" if x == "images" else f"-{x}"
        path = out_dir / f"{prefix}-{protocol}{suffix}.png"
        ceiling = (ceilings or {}).get(protocol)
        hlines = {f"ceiling (whole pool) {ceiling:.3f}": ceiling} if ceiling is not None else None
        label = "reviewer edits" if x == "edits" else f"labelled {x}"
        learning_curve(lines, path, xlabel=label, ylabel=f"{metric.label} (test)", bands=bands,
                       title=f"{protocol} protocol: mean ± std over seeds", hlines=hlines)
        paths.append(path)
    return paths


def write_summary(out_dir: Path, rows: Sequence[SummaryRow], header: str,
                  metric: CurveMetric = BOX_CURVE) -> tuple[Path, Path]:
    """summary.md (header + markdown table) and summary.json."""
    md = out_dir / "summary.md"
    md.write_text(header + "\n\n" + markdown_table(rows, metric), encoding="utf-8")
    js = out_dir / "summary.json"
    js.write_text(json.dumps([r.as_dict() for r in rows], indent=1), encoding="utf-8")
    return md, js


class MlflowLog:
    """One MLflow run per trajectory in ``out/mlflow.db`` (experiment ``labelwise-benchmark/<preset>``).

    Metrics are logged with step = round. Uses the client with explicit run ids only.
    """

    def __init__(self, out_dir: Path, preset: str, params: Mapping[str, Any]) -> None:
        from mlflow import MlflowClient

        db = (Path(out_dir) / "mlflow.db").resolve()
        uri = f"sqlite:///{db}"
        self.client = MlflowClient(tracking_uri=uri)
        name = f"labelwise-benchmark/{preset}"
        exp = self.client.get_experiment_by_name(name)
        self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            name, artifact_location=(Path(out_dir) / "mlartifacts").resolve().as_uri())
        self.params = {k: str(v)[:500] for k, v in params.items()}
        self.tracking_uri = uri

    def log_trajectory(self, key: str, rows: Sequence[Mapping[str, Any]]) -> str:
        first = rows[0]
        tags = {"labelwise.kind": "benchmark", "protocol": str(first["protocol"]),
                "strategy": str(first["strategy"]), "seed": str(first["seed"])}
        run = self.client.create_run(self.experiment_id, run_name=key, tags=tags)
        run_id = run.info.run_id
        for k, v in {**self.params, "protocol": first["protocol"], "strategy": first["strategy"],
                     "seed": first["seed"]}.items():
            self.client.log_param(run_id, k, str(v))
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for row in rows:
            step = int(row["round"])
            for k, v in row.items():
                if k in ("protocol", "strategy", "seed", "round") or not isinstance(v, (int, float)):
                    continue
                if isinstance(v, float) and math.isnan(v):
                    continue
                metrics.append(Metric(k, float(v), now, step))
        for start in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[start:start + 900])
        self.client.set_terminated(run_id, "FINISHED")
        return run_id
