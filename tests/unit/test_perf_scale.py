"""``labelwise bench scale``: the synthetic builder, the growth maths and the command (no timing
is asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelwise.catalog import Catalog
from labelwise.cli.main import app
from labelwise.domain import ImageStatus
from labelwise.perf.scale import (
    EMBEDDER,
    MEASUREMENTS,
    MODEL_VERSION,
    PROJECT,
    Measurement,
    ScaleConfig,
    ScaleResult,
    build_catalog,
    catalog_url,
    extrapolate,
    growth_factors,
    synthetic_detections,
    targets,
    text_table,
)


def test_builder_writes_images_predictions_and_embeddings_readable_through_the_catalog(tmp_path: Path):
    cfg = ScaleConfig(sizes=(120,), out=tmp_path, autolabel_images=30, queue_images=10, limit=10,
                      chunk=50, dim=16, num_classes=80)
    figures = build_catalog(cfg, 120)
    assert figures["images"] == 150 and figures["files_written"] == 150
    catalog = Catalog.open(catalog_url(cfg.size_dir(120)))
    try:
        project = catalog.project(PROJECT)
        assert len(project.class_names) == 80
        images = catalog.images(project)
        assert len(images) == 150
        ids = json.loads((cfg.size_dir(120) / "ids.json").read_text())
        assert len(ids["pool"]) == 120 and len(ids["new"]) == 30
        preds = catalog.predictions(project, MODEL_VERSION)
        assert set(preds) == set(ids["pool"])
        for det in preds.values():
            assert det.probs.shape == (len(det), 80)
            if len(det):
                np.testing.assert_allclose(det.probs.sum(axis=1), 1.0, atol=1e-5)
                assert (det.class_id == det.probs.argmax(axis=1)).all()
        vecs = catalog.embeddings(project, EMBEDDER)
        assert set(vecs) == set(ids["pool"])
        assert all(v.shape == (16,) and v.dtype == np.float32 for v in vecs.values())
        np.testing.assert_allclose([np.linalg.norm(v) for v in vecs.values()], 1.0, atol=1e-5)
        labelled = {img.image_id for img in images if img.status is ImageStatus.LABELLED}
        assert labelled == set(ids["labelled"]) and len(labelled) == 1
        assert set(catalog.labels(project)) == labelled
    finally:
        catalog.close()
    # The files are reused by the next build, which starts from a fresh catalog.
    again = build_catalog(cfg, 120)
    assert again["files_written"] == 0 and again["images"] == 150


def test_synthetic_detections_are_seeded():
    a = synthetic_detections(np.random.default_rng(3), 20, 80, 5)
    b = synthetic_detections(np.random.default_rng(3), 20, 80, 5)
    assert [len(d) for d in a] == [len(d) for d in b]
    assert all(np.array_equal(x.xyxy, y.xyxy) for x, y in zip(a, b))
    assert all(0 <= len(d) <= 5 for d in a)


def _m(name: str, size: int, seconds: float, rss: float, base: float = 100.0) -> Measurement:
    return Measurement(name, size, seconds, rss, base)


def test_growth_factors_and_targets_on_a_hand_made_case():
    ms = [_m("score_batch", 10_000, 1.0, 200.0), _m("score_batch", 100_000, 10.0, 1100.0),
          _m("autolabel", 100_000, 2.0, 150.0), _m("autolabel", 10_000, 1.0, 120.0)]
    growth = {(g.name, g.from_size): g for g in growth_factors(ms)}
    assert set(growth) == {("score_batch", 10_000), ("autolabel", 10_000)}
    sb = growth[("score_batch", 10_000)]
    assert (sb.size_ratio, sb.time_ratio, sb.rss_ratio) == (10.0, 10.0, 5.5)
    assert sb.exponent == pytest.approx(1.0)
    al = growth[("autolabel", 10_000)]
    assert al.to_size == 100_000 and al.rss_ratio == pytest.approx(1.25)
    assert al.exponent == pytest.approx(math.log(2) / math.log(10))
    # Power law through the two largest sizes: 10x the pool -> 10x the time, and the RSS above
    # the baseline grows 10x as well (100 -> 1000 MiB above a 100 MiB baseline).
    ext = extrapolate(ms, "score_batch", 1_000_000)
    assert ext == {"seconds": pytest.approx(100.0), "peak_rss_mb": pytest.approx(100.0 + 10_000.0),
                   "extrapolated": True}
    t = targets(ms)
    assert t["score_batch_1m"]["seconds_met"] is False and t["score_batch_1m"]["rss_met"] is False
    assert t["autolabel_rss_flat"] == {"from_size": 10_000, "to_size": 100_000, "rss_ratio": 1.25,
                                       "target_ratio_at_most": 1.25, "met": True}
    measured = extrapolate(ms + [_m("score_batch", 1_000_000, 30.0, 3000.0)], "score_batch", 1_000_000)
    assert measured == {"seconds": 30.0, "peak_rss_mb": 3000.0, "extrapolated": False}
    assert extrapolate(ms[:1], "score_batch", 1_000_000) is None


def test_result_dict_and_table():
    cfg = ScaleConfig(sizes=(100, 1000), limit=10, queue_images=10)
    ms = tuple(_m(name, size, 0.1 * size / 100, 100.0 + size / 100) for size in cfg.sizes for name in MEASUREMENTS)
    result = ScaleResult(cfg, ms)
    data = result.as_dict()
    assert [row["size"] for row in data["sizes"]] == [100, 1000]
    assert set(data["sizes"][0]) == {"size", *MEASUREMENTS}
    assert len(data["growth"]) == len(MEASUREMENTS)
    assert all(g["time_ratio"] == pytest.approx(10.0) for g in data["growth"])
    table = text_table(result)
    assert "score_batch" in table and "target score-batch @1M (extrapolated)" in table


@pytest.mark.parametrize("kwargs", [{"sizes": ()}, {"sizes": (1000, 100)}, {"sizes": (50,)},
                                    {"labelled_share": 1.0}, {"chunk": 0}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ScaleConfig(**kwargs)


def test_cli_runs_end_to_end_on_a_tiny_pool(tmp_path: Path):
    result = CliRunner().invoke(app, ["bench", "scale", "--sizes", "200", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(data) == {"config", "sizes", "growth", "targets"}
    row = data["sizes"][0]
    assert row["size"] == 200
    for name in MEASUREMENTS:
        assert {"seconds", "peak_rss_mb", "baseline_rss_mb", "details"} <= set(row[name])
    assert row["autolabel"]["details"]["predicted"] == 1000
    assert row["score_batch"]["details"]["queued"] == 100
    assert data["growth"] == []


def test_cli_rejects_bad_sizes(tmp_path: Path):
    result = CliRunner().invoke(app, ["bench", "scale", "--sizes", "10,x", "--out", str(tmp_path)])
    assert result.exit_code == 2
