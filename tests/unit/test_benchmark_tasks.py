"""The strategy benchmark on every task type: the per-task steps, the segmentation oracle, the
classification folder, and a tiny end-to-end run of a classification and a segmentation
benchmark with the real adapters (one round, one seed, warm base and ceiling)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labelwise.benchmark.config import BenchmarkConfig, preset
from labelwise.benchmark.oracle import SegmentOracle
from labelwise.benchmark.outputs import read_csv
from labelwise.benchmark.tasks import BOX_CURVE, MASK_CURVE, TOP1_CURVE, benchmark_task
from labelwise.masks import ImageSegments, Polygon, SegmentInstance, segment_rows, write_segment_labels
from labelwise.task_types import TaskType


@pytest.mark.parametrize(("task", "curve", "model", "prefix"), [
    ("detect", BOX_CURVE, "yolov8n.yaml", "ap50"),
    ("segment", MASK_CURVE, "yolov8n-seg.yaml", "mask_ap50"),
    ("classify", TOP1_CURVE, "yolov8n-cls.yaml", "recall"),
])
def test_each_task_names_its_curve_model_and_per_class_metric(tmp_path, task, curve, model, prefix):
    steps = benchmark_task(task)
    assert steps.task_type is TaskType(task)
    assert (steps.curve, steps.default_model, steps.per_class_prefix) == (curve, model, prefix)
    cfg = BenchmarkConfig(out=tmp_path, task=task, protocols=("scratch",))
    assert cfg.model == model and cfg.task == task


def test_an_unknown_task_is_refused_naming_the_task_types(tmp_path):
    with pytest.raises(ValueError, match=r"unknown task type 'boxes'.*detect.*classify.*segment"):
        BenchmarkConfig(out=tmp_path, task="boxes")


def test_pseudo_label_twins_are_refused_outside_detection(tmp_path):
    with pytest.raises(ValueError, match="detection only.*'segment'"):
        BenchmarkConfig(out=tmp_path, task="segment", pseudo_strategies=("random",))
    # The pool preset's detection twins are left out of another task's run, not refused.
    assert preset("pool", tmp_path, task="classify").pseudo_strategies == ()
    assert preset("pool", tmp_path).pseudo_strategies


@pytest.mark.parametrize(("task", "weight", "changes"), [
    ("segment", 0.0, False),  # masks left out of scores: the trajectories measured before the knob
    ("segment", 0.5, True),
    ("detect", 0.5, False),  # no masks: the knob cannot shape a detection trajectory
    ("classify", 0.5, False),
])
def test_the_mask_weight_is_in_a_trajectorys_fingerprint_only_where_it_shapes_it(
    tmp_path, task, weight, changes,
):
    from labelwise.benchmark.plan import Job
    from labelwise.benchmark.trajectory import trajectory_fingerprint

    job = Job("warm", "rare_class_diverse", 0, (1, 2), "base.pt", str(tmp_path / "job"))
    plain = BenchmarkConfig(out=tmp_path, task=task, protocols=("warm",))
    weighted = plain.replace(mask_weight=weight)
    assert weighted.product_settings().scoring.mask_weight == weight
    assert (trajectory_fingerprint(plain, job) != trajectory_fingerprint(weighted, job)) is changes


def test_a_detection_trajectorys_fingerprint_is_the_one_cached_runs_were_stored_under(tmp_path):
    """Detection's cached trajectories stay valid: new knobs that cannot shape a detection
    trajectory (mask_weight, the task-dependent pre-annotation default) leave its fingerprint as
    it was before them (the value computed at the commit before they were added)."""
    from labelwise.benchmark.plan import Job
    from labelwise.benchmark.trajectory import trajectory_fingerprint

    cfg = BenchmarkConfig(out=tmp_path / "fpcheck", task="detect", protocols=("warm",))
    job = Job("warm", "rare_class_diverse", 0, (1, 2, 3), "/tmp/fpcheck/cache/base.pt", "/tmp/fpcheck/jobs/x")
    assert trajectory_fingerprint(cfg, job) == "355fbbceb055"


def test_classification_preannotations_always_carry_the_top_class(tmp_path):
    st = BenchmarkConfig(out=tmp_path).product_settings()
    assert benchmark_task("classify").preannotation_floor(st) == 0.0
    assert benchmark_task("segment").preannotation_floor(st) == st.labelstudio.preannotation_floor("segment") == 0.4


def _square(x: float, y: float, side: float) -> Polygon:
    return Polygon(np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float64))


def test_segment_oracle_reveals_the_outlines_and_their_boxes(tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    segments = ImageSegments(100, 50, (SegmentInstance(3, _square(10, 10, 20)), SegmentInstance(7, _square(60, 5, 30))))
    write_segment_labels(truth / "a.txt", segments)
    oracle = SegmentOracle(truth, 10, {"a": (100, 50), "b": (64, 64)})
    rows = oracle.reveal("a")
    np.testing.assert_allclose(rows, segment_rows(segments), atol=1e-6)
    assert rows[:, 0].tolist() == [3, 7]
    assert len(oracle.outlines("a")) == 2 and oracle.outlines("a").width == 100
    assert oracle.reveal("b").shape == (0, 5) and len(oracle.outlines("b")) == 0  # no file: no instance
    assert oracle.report().files == 1 and oracle.report().boxes == 2


def test_segment_oracle_refuses_a_class_outside_the_names(tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    write_segment_labels(truth / "a.txt", ImageSegments(40, 40, (SegmentInstance(12, _square(1, 1, 9)),)))
    with pytest.raises(ValueError, match=r"a\.txt: class ids \[12\] are not in 0\.\.9"):
        SegmentOracle(truth, 10, {"a": (40, 40)}).reveal("a")


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_target_and_source_sets_of_a_task_never_share_a_digit_sample(tmp_path, task):
    cfg = BenchmarkConfig(out=tmp_path, task=task, pool_images=20, val_images=10, test_images=10,
                          base_pool_images=20, initial=4, per_round=4, rounds=1)
    steps = benchmark_task(task)
    target = json.loads(steps.generate_target(cfg, tmp_path / "t").manifest.read_text())
    source = json.loads(steps.generate_source(cfg, tmp_path / "s").manifest.read_text())

    def samples(manifest):
        if task == "classify":
            return {e["sample"] for e in manifest["images"]}
        return {d["sample"] for e in manifest["images"] for d in e.get("digits", e.get("instances", []))}

    assert samples(target) and samples(source)
    assert samples(target).isdisjoint(samples(source))
    assert {s % 2 for s in samples(target)} == {0} and {s % 2 for s in samples(source)} == {1}


def _tiny(tmp_path, task: str) -> BenchmarkConfig:
    return BenchmarkConfig(
        out=tmp_path / f"bench-{task}", task=task, strategies=("random", "entropy"), seeds=1,
        protocols=("warm",), rounds=1, initial=6, per_round=4, imgsz=64 if task == "segment" else 32,
        epochs=1, min_image_passes=0, pool_images=20, val_images=10, test_images=10, workers=2,
        base_epochs=1, base_pool_images=20,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("task", "metric", "others"), [
    ("classify", "top1", ("map50", "mask_map50")),
    ("segment", "mask_map50", ("top1",)),
])
def test_tiny_benchmark_of_another_task_writes_its_metric(tmp_path, task, metric, others):
    from labelwise.benchmark.runner import run_benchmark

    cfg = _tiny(tmp_path, task)
    result = run_benchmark(cfg, log=lambda _: None)
    assert result.failed == {}
    rows = read_csv(result.csv)
    # (random, entropy, random_sprint) x round 0 and 1
    assert len(rows) == 3 * 2
    for row in rows:
        assert 0.0 <= row[metric] <= 1.0
        assert all(math.isnan(row[o]) for o in others)
    by = {(r["strategy"], r["round"]): r for r in rows}
    assert by[("random", 1)]["labelled_images"] == by[("entropy", 1)]["labelled_images"] == 10
    assert by[("random", 0)]["labelled_boxes"] == by[("entropy", 0)]["labelled_boxes"]  # the same initial set
    if task == "classify":  # one label per image; an edit is a changed class, at most one per image
        assert all(r["labelled_boxes"] == r["labelled_images"] for r in rows)
        assert all(r["edits"] == r["edits_relabelled"] <= r["labelled_images"] for r in rows if r["strategy"] != "random_sprint")
        assert by[("random", 0)]["preannotated_boxes"] == 6  # the base's top class for every image
    summary = json.loads(result.summary_json.read_text())
    assert {s["metric"] for s in summary} == {metric}
    assert all(s["ceiling"] is not None for s in summary)
    ceilings = json.loads((cfg.out / "ceilings.json").read_text())
    assert [c["metric"] for c in ceilings] == [metric] and ceilings[0]["images"] == 20
    md = result.summary_md.read_text()
    assert f"({cfg.preset} preset, {task})" in md and f"final {benchmark_task(task).curve.label}" in md
