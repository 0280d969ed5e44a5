"""End to end: a tiny benchmark (3 strategies x 1 seed x 2 rounds, 16 images, imgsz 64, 1 epoch)."""

from __future__ import annotations

import json

import pytest

from labelwise.benchmark.config import BenchmarkConfig
from labelwise.benchmark.outputs import csv_columns, read_csv


@pytest.mark.slow
def test_tiny_benchmark_writes_consistent_outputs(tmp_path):
    from labelwise.benchmark.runner import run_benchmark

    cfg = BenchmarkConfig(
        out=tmp_path / "bench", strategies=("random", "diverse_uncertainty", "rare_class_diverse"), seeds=1,
        protocols=("scratch",), rounds=1, initial=8, per_round=4, imgsz=64, epochs=1,
        min_image_passes=0, pool_images=16, val_images=4, test_images=6, workers=2,
    )
    result = run_benchmark(cfg, log=lambda _: None)
    assert result.failed == {}
    rows = read_csv(result.csv)
    assert list(rows[0]) == csv_columns(tuple(str(i) for i in range(10)))
    assert len(rows) == 3 * 2  # strategies x rounds (round 0 + 1)
    by = {(r["strategy"], r["round"]): r for r in rows}
    assert by[("random", 0)]["labelled_images"] == by[("diverse_uncertainty", 0)]["labelled_images"] == 8
    assert by[("random", 0)]["labelled_boxes"] == by[("diverse_uncertainty", 0)]["labelled_boxes"]  # same set
    assert by[("random", 1)]["labelled_images"] == 12 and by[("random", 1)]["new_images"] == 4
    for r in rows:
        assert 0.0 <= r["map50"] <= 1.0 and r["rare_boxes"] <= r["labelled_boxes"]
    # the labelled sets of round 0 are the same images for both strategies
    results = [json.loads(p.read_text()) for p in (cfg.out / "jobs").glob("*/result.json")]
    assert len(results) == 3 and all(r["labelled"][:8] == results[0]["labelled"][:8] for r in results)
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.plots) and len(result.plots) == 2
    assert "| scratch | random |" in result.summary_md.read_text()
    assert {r.strategy for r in result.summary} == {"random", "diverse_uncertainty", "rare_class_diverse"}
    assert by[("rare_class_diverse", 1)]["labelled_images"] == 12  # picked with the labelled class counts
    from mlflow import MlflowClient

    client = MlflowClient(result.mlflow_uri)
    exp = client.get_experiment_by_name("labelwise-benchmark/custom")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3
    history = client.get_metric_history(runs[0].info.run_id, "map50")
    assert sorted(m.step for m in history) == [0, 1]
