"""Same-pass embeddings and the exported inference backends, on a real yaml-built YOLO whose
class logits vary (no mocks: ultralytics exports, ONNX Runtime and OpenVINO run for real)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.config import DetectorSettings
from labelwise.inference_backends import (
    check_backend,
    export_dir,
    layer_input_names,
    layer_output_names,
    pooled_from_map,
)
from labelwise.perf.autolabel import matched_class_vector_gap
from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics
from tests.unit.test_detector import CLASS_NAMES, draw_digits

CLASS_TOL = 1e-3  # the bound on class vectors vs PyTorch


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prepare_ultralytics(current_config_dir() or tmp_path_factory.mktemp("ul_cfg"))
    return tmp_path_factory.mktemp("backend_state")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("backend_images")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(20):
        path = root / f"img_{i:02d}.png"
        draw_digits(path, rng, int(rng.integers(1, 4)))
        paths.append(path)
    return paths


def settings(backend: str) -> DetectorSettings:
    return DetectorSettings(imgsz=128, batch=8, conf=0.01, iou=0.6, max_det=50, backend=backend)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def weights(state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pt whose class logits differ across classes (a fresh head's biases are all equal, which
    would make every class vector uniform and any comparison of them vacuous)."""
    import torch

    from labelwise.detector import YoloDetector

    det = YoloDetector.load("yolov8n.yaml", settings("torch"), state, class_names=CLASS_NAMES, seed=1)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for seq in det._model.model[-1].cv3:
            last = seq[-1]
            last.weight.add_(torch.randn(last.weight.shape, generator=g) * 0.5)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 1.5 - 3.0)
    return det.save(tmp_path_factory.mktemp("backend_weights") / "varied.pt")


def load(weights: Path, state: Path, backend: str):
    from labelwise.detector import YoloDetector

    return YoloDetector.load(str(weights), settings(backend), state, class_names=CLASS_NAMES)


def test_same_pass_features_equal_the_second_pass(weights: Path, state: Path, pictures: list[Path]) -> None:
    det = load(weights, state, "torch")
    dets, pooled = det.predict_with_features(pictures)
    second = det.features(pictures)
    assert pooled.shape == second.shape == (len(pictures), det.feature_dim)
    np.testing.assert_allclose(pooled, second, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    plain = det.predict(pictures)
    assert [len(d.confidence) for d in dets] == [len(d.confidence) for d in plain]
    for a, b in zip(dets, plain):
        np.testing.assert_array_equal(a.probs, b.probs)


def test_same_pass_features_of_mixed_sizes_equal_the_second_pass(
    weights: Path, state: Path, pictures: list[Path], tmp_path: Path
) -> None:
    """A batch of different image shapes (square letterbox, not rect) gives the same rows too."""
    from PIL import Image

    odd = tmp_path / "wide.png"
    Image.open(pictures[0]).resize((150, 90)).save(odd)
    det = load(weights, state, "torch")
    mixed = [odd, *pictures[:3]]
    _, pooled = det.predict_with_features(mixed)
    np.testing.assert_allclose(pooled, det.features(mixed), atol=1e-6)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_backend_keeps_class_vectors(backend: str, weights: Path, state: Path, pictures: list[Path]) -> None:
    """The exported head gives the same (B, 4 + C, anchors) output on the same letterboxed batch,
    so the same NMS keeps the same boxes with the same class vectors (within 1e-3)."""
    torch_det = load(weights, state, "torch")
    det = load(weights, state, backend)
    ref_raw, ref_pooled = torch_det.raw_outputs(pictures[:8])
    raw, pooled = det.raw_outputs(pictures[:8])
    assert raw.shape == ref_raw.shape == (8, 4 + len(CLASS_NAMES), ref_raw.shape[2])
    np.testing.assert_allclose(raw[:, :4], ref_raw[:, :4], atol=1e-2)  # boxes, letterboxed pixels
    scores, ref_scores = raw[:, 4:], ref_raw[:, 4:]
    assert float(np.ptp(ref_scores, axis=1).max()) > 0.05  # class scores vary: the check is not vacuous
    gap = float(np.abs(scores - ref_scores).max())
    assert gap <= CLASS_TOL, f"{backend} raw class scores differ from torch by {gap} > {CLASS_TOL}"
    np.testing.assert_allclose(pooled, ref_pooled, atol=CLASS_TOL, rtol=CLASS_TOL)

    ref_dets = torch_det.predict(pictures)
    got_dets = det.predict(pictures)
    assert sum(len(d.confidence) for d in ref_dets) > len(pictures)  # boxes to compare
    box_gap = matched_class_vector_gap(ref_dets, got_dets)
    # An untrained head scores hundreds of near-identical boxes equally (to ~1e-7), so NMS breaks
    # ties differently under float noise and about a fifth of the kept boxes differ; the raw
    # outputs above are the strict check, this one that the kept boxes carry the same vectors.
    assert box_gap.matched >= 0.7 * box_gap.boxes
    assert box_gap.max_abs <= CLASS_TOL
    assert (export_dir(det.export_root, det.version, 128, backend)).is_dir()


def test_export_is_cached_per_version(weights: Path, state: Path) -> None:
    from labelwise.inference_backends import export_model

    det = load(weights, state, "torch")
    kwargs = dict(version=det.version, backend="onnx", imgsz=128, batch=8, feature_layer=det.feature_layer,
                  cache_root=det.export_root)
    first = export_model(det._model, **kwargs)  # type: ignore[arg-type]
    again = export_model(det._model, **kwargs)  # type: ignore[arg-type]
    assert again.reused and again.path == first.path and again.path.is_file()


def test_check_backend() -> None:
    assert check_backend("onnx") == "onnx"
    with pytest.raises(ValueError, match="torch, onnx, openvino"):
        check_backend("tensorrt")


def test_layer_boundaries_are_found_by_node_names() -> None:
    producers = {"a": "/model.8/m/Conv", "b": "/model.9/cv1/Conv", "c": "/model.9/cv2/act/Mul",
                 "d": "/model.10/Resize"}
    consumers = {"a": ["/model.9/cv1/Conv"], "b": ["/model.9/cv2/conv/Conv"],
                 "c": ["/model.10/Resize", "/model.12/Concat"], "d": ["/model.11/Concat"]}
    assert layer_output_names(producers, consumers, 9) == ["c"]
    assert layer_input_names(producers, consumers, 10) == ["c"]
    assert layer_input_names(producers, consumers, 9) == ["a"]


def test_pooled_from_map_is_the_spatial_mean() -> None:
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(pooled_from_map(x), x.mean(axis=(2, 3)))
    with pytest.raises(ValueError, match=r"\(B, D, h, w\)"):
        pooled_from_map(x[0])
