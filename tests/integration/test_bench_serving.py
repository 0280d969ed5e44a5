"""`labelwise bench serving` end to end: a real API process, real HTTP on 127.0.0.1."""

from __future__ import annotations

import multiprocessing

import pytest

from labelwise.perf.serving import bench_serving

# A real API process: the integration suite's (and the bench prepares ultralytics in a folder it
# deletes, so it must not be the first in a unit-only process to do so).
pytestmark = pytest.mark.integration


def test_bench_serving_reports_latency_ratio_and_load_and_stops_its_server():
    result = bench_serving(requests=6, concurrency=2, samples=3, warmup=1, pause_s=0.0)
    assert result["http_predict_ms"]["p50"] > 0 and result["bare_predict_ms"]["p50"] > 0
    assert result["overhead_ratio_p50"] == round(
        result["http_predict_ms"]["p50"] / result["bare_predict_ms"]["p50"], 3
    )
    assert result["model_version"]  # the X-Model-Version header of the served model
    assert result["load"]["requests"] == 6 and result["load"]["non_200"] == 0
    assert not multiprocessing.active_children()  # the API process was stopped
