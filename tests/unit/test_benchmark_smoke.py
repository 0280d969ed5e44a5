"""End to end: a tiny benchmark (3 strategies x 2 protocols x 1 seed x 2 rounds, 16 images, imgsz 64,
1 epoch), with the warm base, the ceilings, reviewer edits and random_sprint."""

from __future__ import annotations

import json
import math

import pytest

from labelwise.benchmark.config import BenchmarkConfig
from labelwise.benchmark.oracle import Oracle
from labelwise.benchmark.outputs import csv_columns, read_csv
from labelwise.domain import class_box_counts


@pytest.mark.slow
def test_tiny_benchmark_writes_consistent_outputs(tmp_path):
    from labelwise.benchmark.runner import run_benchmark

    cfg = BenchmarkConfig(
        out=tmp_path / "bench", strategies=("random", "diverse_uncertainty", "rare_class_diverse"), seeds=1,
        protocols=("scratch", "warm"), rounds=1, initial=8, per_round=4, imgsz=64, epochs=1,
        pseudo_protocols=("scratch", "warm"),
        min_image_passes=0, pool_images=16, val_images=4, test_images=6, workers=2,
        base_epochs=1, base_pool_images=8, pseudo_strategies=("random",),
    )
    result = run_benchmark(cfg, log=lambda _: None)
    assert result.failed == {}
    rows = read_csv(result.csv)
    assert list(rows[0]) == csv_columns(tuple(str(i) for i in range(10)))
    # (3 strategies + random_sprint + random+pseudo) x 2 protocols x 2 rounds (round 0 + 1)
    assert len(rows) == 5 * 2 * 2
    by = {(r["protocol"], r["strategy"], r["round"]): r for r in rows}
    for protocol in ("scratch", "warm"):
        rnd, div = by[(protocol, "random", 0)], by[(protocol, "diverse_uncertainty", 0)]
        assert rnd["labelled_images"] == div["labelled_images"] == 8
        assert rnd["labelled_boxes"] == div["labelled_boxes"]  # same set
        assert by[(protocol, "random", 1)]["labelled_images"] == 12 and by[(protocol, "random", 1)]["new_images"] == 4
        assert by[(protocol, "rare_class_diverse", 1)]["labelled_images"] == 12
        for r in range(2):
            sprint, random_row = by[(protocol, "random_sprint", r)], by[(protocol, "random", r)]
            # random_sprint shares random's images and trainings, and draws every box by hand
            assert sprint["map50"] == random_row["map50"] and sprint["labelled_boxes"] == random_row["labelled_boxes"]
            assert sprint["edits"] == sprint["edits_added"] == sprint["labelled_boxes"]
            assert sprint["preannotated_boxes"] == 0
    # from scratch round 0 has no model to pre-annotate: every box is drawn
    assert by[("scratch", "random", 0)]["edits"] == by[("scratch", "random", 0)]["labelled_boxes"]
    for r in rows:
        assert 0.0 <= r["map50"] <= 1.0 and r["rare_boxes"] <= r["labelled_boxes"]
        kinds = sum(r[f"edits_{k}"] for k in ("added", "deleted", "relabelled", "moved"))
        assert r["edits"] == kinds and r["edits_added"] <= r["labelled_boxes"]
    # the labelled sets of round 0 are the same images for every strategy and protocol
    results = [json.loads(p.read_text()) for p in (cfg.out / "jobs").glob("*/result.json")]
    assert len(results) == 8 and all(r["labelled"][:8] == results[0]["labelled"][:8] for r in results)
    # rare_class_diverse with labelled class counts: round 1 adds 4 images it had not labelled
    # (12 distinct), and each row's boxes per class (the counts its selection was given) are the
    # ground truth's boxes per class of exactly the images labelled by then.
    names = [str(i) for i in range(10)]
    oracle = Oracle(cfg.out / "data" / "target" / "pool_truth" / "labels", len(names))
    rare = [r for r in results if r["job"]["strategy"] == "rare_class_diverse"]
    assert sorted(r["job"]["protocol"] for r in rare) == ["scratch", "warm"]
    for res in rare:
        assert len(res["labelled"]) == len(set(res["labelled"])) == 12
        for r, size in ((0, 8), (1, 12)):
            row = by[(res["job"]["protocol"], "rare_class_diverse", r)]
            truth = class_box_counts([oracle.reveal(stem) for stem in res["labelled"][:size]], len(names))
            assert [row[f"boxes/{n}"] for n in names] == truth.tolist()
            assert row["labelled_boxes"] == int(truth.sum()) > 0
    assert len(result.plots) == 6 and all(p.is_file() and p.stat().st_size > 0 for p in result.plots)
    assert {p.name for p in result.plots} >= {"learning-curve-warm-edits.png", "learning-curve-scratch-boxes.png"}
    ceilings = json.loads((cfg.out / "ceilings.json").read_text())
    assert sorted(c["protocol"] for c in ceilings) == ["scratch", "warm"]
    assert all(c["images"] == 16 and 0.0 <= c["value"] <= 1.0 and c["metric"] == "map50" for c in ceilings)
    md = result.summary_md.read_text()
    assert "| scratch | random |" in md and "| warm | random_sprint |" in md and "Cost in edits" in md
    assert {r.strategy for r in result.summary} == {"random", "random_sprint", "diverse_uncertainty",
                                                     "rare_class_diverse", "random+pseudo"}
    for protocol in ("scratch", "warm"):  # the semi-supervised twin records what it trained on
        twin = [by[(protocol, "random+pseudo", r)] for r in range(2)]
        assert all(t["pseudo_images"] <= t["labelled_images"] for t in twin)  # cap 1 per reviewed image
        assert all(t["pseudo_errors"] >= 0 and t["pseudo_boxes"] >= 0 for t in twin)
        assert [t["labelled_images"] for t in twin] == [8, 12]
    assert by[("scratch", "random+pseudo", 0)]["pseudo_images"] == 0  # no model before round 0
    assert math.isnan(by[("warm", "random", 0)]["pseudo_images"])  # supervised rows: no such count
    assert all(r.ceiling is not None for r in result.summary)
    from mlflow import MlflowClient

    client = MlflowClient(result.mlflow_uri)
    exp = client.get_experiment_by_name("labelwise-benchmark/custom")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 10  # 8 trajectories + 2 random_sprint
    history = client.get_metric_history(runs[0].info.run_id, "map50")
    assert sorted(m.step for m in history) == [0, 1]
