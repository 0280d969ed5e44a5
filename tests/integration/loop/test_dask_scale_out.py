"""Scale-out: the same auto-label flow on a local 2-worker Dask cluster (prefect-dask)."""

from __future__ import annotations

import pytest

from labelwise.runtime import open_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_auto_label_shards_run_on_two_dask_workers(prefect_harness, make_loop_project):
    from flows.auto_label_pool import run_auto_label_pool

    lp = make_loop_project("dask")
    reports = run_auto_label_pool(lp.config, lp.name, "yolov8n.yaml", shard_size=8, dask_workers=2)
    assert len(reports) == 3  # 24 pool images in shards of 8, one mapped task each
    assert sum(r["predicted"] for r in reports) == 24
    assert len({r["model_version"] for r in reports}) == 1  # same seed -> same weights everywhere
    catalog = open_catalog(lp.settings)
    project = catalog.project(lp.name)
    version = reports[0]["model_version"]
    assert len(catalog.predicted_ids(project, version)) == 24
    assert len(catalog.embedded_ids(project, reports[0]["embedder"])) == 24
    # Resumable: a second run over the same cluster layout predicts nothing again.
    again = run_auto_label_pool(lp.config, lp.name, "yolov8n.yaml", shard_size=8, dask_workers=2)
    assert sum(r["predicted"] for r in again) == 0
