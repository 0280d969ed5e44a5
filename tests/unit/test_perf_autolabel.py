"""The pure parts of ``bench autolabel``: timings, box matching, goals, the table (no timing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.domain import Detections
from labelwise.perf.autolabel import (
    AutoLabelBenchConfig,
    AutoLabelBenchResult,
    BackendResult,
    ClassVectorGap,
    Timing,
    box_iou,
    goals,
    matched_class_vector_gap,
    text_table,
)


def dets(xyxy: list[list[float]], cls: list[int], probs: list[list[float]]) -> Detections:
    p = np.asarray(probs, np.float32)
    return Detections(xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4), confidence=p.max(axis=1),
                      class_id=np.asarray(cls, np.int64), probs=p / p.sum(axis=1, keepdims=True))


def test_timing_best_mean_std() -> None:
    t = Timing(images=100, seconds=(2.0, 1.0, 3.0))
    assert t.best == 1.0 and t.mean == 2.0 and t.std == pytest.approx(1.0)
    assert t.images_per_second == 100.0
    assert Timing(10, (0.5,)).std == 0.0


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_matching_finds_moved_boxes_and_measures_their_gap() -> None:
    ref = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [[0.8, 0.2], [0.3, 0.7]])]
    # same boxes in another order, one class vector moved by 0.05 (after normalising)
    got = [dets([[20, 20, 30, 30], [0, 0, 10, 10]], [1, 0], [[0.3, 0.7], [0.75, 0.25]])]
    gap = matched_class_vector_gap(ref, got)
    assert gap.boxes == 2 and gap.matched == 2
    assert gap.max_abs == pytest.approx(0.05, abs=1e-6)


def test_matching_needs_the_same_class_and_overlap() -> None:
    ref = [dets([[0, 0, 10, 10]], [0], [[0.8, 0.2]])]
    assert matched_class_vector_gap(ref, [dets([[0, 0, 10, 10]], [1], [[0.2, 0.8]])]).matched == 0
    assert matched_class_vector_gap(ref, [dets([[5, 0, 15, 10]], [0], [[0.8, 0.2]])]).matched == 0
    with pytest.raises(ValueError, match="same images"):
        matched_class_vector_gap(ref, [])


def result(backend: str, imgsz: int, raw_s: float, auto_s: float, gap: float | None = None) -> BackendResult:
    return BackendResult(backend, imgsz, Timing(100, (raw_s,)), Timing(100, (auto_s,)),
                         {"predict_seconds": auto_s * 0.8}, raw_gap=gap,
                         box_gap=ClassVectorGap(10, 10, gap) if gap is not None else None)


def test_goals_verdicts() -> None:
    rs = [result("torch", 640, 10.0, 10.5), result("onnx", 640, 6.0, 6.2, 2e-7),
          result("openvino", 640, 5.0, 7.0, 2e-3)]
    g = goals(rs)
    assert g["autolabel_vs_raw/torch/640"]["met"]  # 10 / 10.5 = 0.95
    assert not g["autolabel_vs_raw/openvino/640"]["met"]  # 5 / 7 = 0.71
    assert g["class_gap/onnx/640"]["met"] and not g["class_gap/openvino/640"]["met"]
    fastest = g["fastest_vs_torch_raw/640"]
    assert fastest["backend"] == "onnx" and fastest["value"] == pytest.approx(10 / 6.2, abs=1e-3)
    assert fastest["met"]
    assert "fastest_vs_torch_raw/640" not in goals([result("torch", 128, 1.0, 1.0)])


def test_table_lists_every_row_and_goal(tmp_path: Path) -> None:
    cfg = AutoLabelBenchConfig(images=100, sizes=(640,), out=tmp_path)
    res = AutoLabelBenchResult(cfg, (result("torch", 640, 10.0, 10.5), result("onnx", 640, 6.0, 6.2, 2e-7)), {})
    table = text_table(res)
    assert "| 640 | torch |" in table and "| 640 | onnx |" in table and "reference" in table
    assert "fastest_vs_torch_raw/640" in table
    assert res.as_dict()["goals"]["autolabel_vs_raw/onnx/640"]["value"] == pytest.approx(0.968, abs=1e-3)


@pytest.mark.parametrize("bad", [dict(images=0), dict(sizes=(100,)), dict(backends=("onnx", "torch")),
                                 dict(backends=("torch", "tensorrt"))])
def test_config_is_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        AutoLabelBenchConfig(**bad)
