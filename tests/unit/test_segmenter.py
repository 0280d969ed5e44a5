"""YoloSegmenter on a real yaml-built YOLO segmentation model and the bundled digits segmentation
set (tiny images, no downloads, no mocks): class vectors, masks at the image's size, agreement
with ultralytics' own predict, features, save/reload, task refusals, train and evaluate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from labelwise.config import DetectorSettings
from labelwise.datasets.digits_segment import DigitsSegmentConfig, DigitsSegmentSet, filled, generate_digits_segment
from labelwise.masks import mask_iou, polygon_to_mask
from labelwise.task_types import TaskMismatch
from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics

DIGITS = tuple(str(d) for d in range(10))
IMGSZ = 96
CONF = 0.001  # a calibrated random head scores ~0.002-0.01: low enough to keep several boxes


# ---------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class Env:
    state_dir: Path
    settings: DetectorSettings


@pytest.fixture(scope="module")
def seg_env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    config_dir = current_config_dir() or tmp_path_factory.mktemp("ultralytics_cfg")
    prepare_ultralytics(config_dir)
    settings = DetectorSettings(model="yolov8n-seg.yaml", imgsz=IMGSZ, batch=8, conf=CONF, iou=0.6, max_det=30)
    return Env(tmp_path_factory.mktemp("seg_state"), settings)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsSegmentSet:
    config = DigitsSegmentConfig(pool_images=24, val_images=6, test_images=6, seed=1)
    return generate_digits_segment(tmp_path_factory.mktemp("digits_seg"), config)


@pytest.fixture(scope="module")
def segmenter(seg_env: Env, digits: DigitsSegmentSet):
    from labelwise.segmenter import YoloSegmenter

    return YoloSegmenter.load("yolov8n-seg.yaml", seg_env.settings, seg_env.state_dir,
                              class_names=digits.class_names)


@pytest.fixture(scope="module")
def varied(seg_env: Env, segmenter, digits: DigitsSegmentSet, tmp_path_factory: pytest.TempPathFactory):
    """A random segmentation model whose boxes and masks vary from image to image.

    A freshly built network in eval mode has BatchNorm running statistics of 0 / 1, so its
    activations fade layer by layer. Test-only surgery on a copy of the private torch module: the
    BatchNorm statistics are measured on 24 letterboxed pool images (one train-mode pass, no
    gradient step), then the model goes through the public save / load path.
    """
    import copy

    import torch
    from ultralytics.data.augment import LetterBox

    from labelwise.segmenter import YoloSegmenter

    model = copy.deepcopy(segmenter._model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    letterbox = LetterBox((IMGSZ, IMGSZ))
    bgr = np.stack([np.asarray(letterbox(image=segmenter.read(p))) for p in digits.image_paths("pool")])
    batch = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(0, 3, 1, 2).float() / 255
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()
    calibrated = YoloSegmenter(model, ref="varied.pt", settings=seg_env.settings, state_dir=seg_env.state_dir,
                               class_names=DIGITS)
    path = calibrated.save(tmp_path_factory.mktemp("seg_weights") / "varied.pt")
    return YoloSegmenter.load(path, seg_env.settings, seg_env.state_dir, class_names=DIGITS)


@pytest.fixture(scope="module")
def odd_sizes(tmp_path_factory: pytest.TempPathFactory, digits: DigitsSegmentSet) -> list[Path]:
    """Pool images resized to clearly non-square sizes (W x H)."""
    root = tmp_path_factory.mktemp("odd_sizes")
    out = []
    for i, (path, size) in enumerate(zip(digits.image_paths("pool"), [(150, 70), (64, 120), (101, 99)])):
        target = root / f"odd_{i}.png"
        Image.open(path).resize(size).save(target)
        out.append(target)
    return out


# ---------------------------------------------------------------------------- loading / version
def test_yaml_build_is_a_segmenter_of_the_project_classes(segmenter, seg_env: Env) -> None:
    from labelwise.segmenter import YoloSegmenter

    assert segmenter.task == "segment" and segmenter.backend == "torch"
    assert segmenter.class_names == DIGITS and segmenter.num_classes == 10
    assert segmenter.ref == "yolov8n-seg.yaml" and segmenter.version.startswith("yolov8n-seg-")
    assert segmenter.feature_layer == 9 and segmenter.feature_dim == 256 and segmenter.mask_dim == 32
    again = YoloSegmenter.load("yolov8n-seg.yaml", seg_env.settings, seg_env.state_dir, DIGITS)
    other = YoloSegmenter.load("yolov8n-seg.yaml", seg_env.settings, seg_env.state_dir, DIGITS, seed=1)
    assert again.version == segmenter.version and other.version != segmenter.version
    yolo11 = YoloSegmenter.load("yolo11n-seg.yaml", seg_env.settings, seg_env.state_dir, DIGITS)
    assert yolo11.feature_layer == 10 and yolo11.feature_dim == 256  # C2PSA: not its last conv's width


def test_other_tasks_and_bad_references_are_refused(seg_env: Env, tmp_path: Path) -> None:
    from labelwise.detector import YoloDetector
    from labelwise.segmenter import YoloSegmenter

    s, state = seg_env.settings, seg_env.state_dir
    for yaml_name, task in (("yolov8n.yaml", "detect"), ("yolov8n-cls.yaml", "classify")):
        with pytest.raises(TaskMismatch) as err:
            YoloSegmenter.load(yaml_name, s, state, class_names=DIGITS)
        assert f"'{task}'" in str(err.value) and "'segment'" in str(err.value)
        assert err.value.actual == task and err.value.expected.value == "segment"
    det_pt = YoloDetector.load("yolov8n.yaml", s, state, class_names=DIGITS).save(tmp_path / "detector.pt")
    with pytest.raises(TaskMismatch, match="'detect' model; expected a 'segment' model"):
        YoloSegmenter.load(det_pt, s, state)
    with pytest.raises(ValueError, match="needs class_names"):
        YoloSegmenter.load("yolov8n-seg.yaml", s, state)
    with pytest.raises(ValueError, match="registry/remote URIs"):
        YoloSegmenter.load("models:/seg@champion", s, state)
    with pytest.raises(ValueError, match="expected a local .pt"):
        YoloSegmenter.load("weights.onnx", s, state, DIGITS)
    with pytest.raises(FileNotFoundError, match="do not exist"):
        YoloSegmenter.load(tmp_path / "missing.pt", s, state)
    with pytest.raises(ValueError, match="inference backend must be one of torch, onnx, openvino; got 'tensorrt'"):
        YoloSegmenter.load("yolov8n-seg.yaml", s.model_copy(update={"backend": "tensorrt"}), state, DIGITS)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot load segmentation model weights"):
        YoloSegmenter.load(junk, s, state)


def test_save_and_reload_keep_version_and_outputs(varied, seg_env: Env, digits: DigitsSegmentSet,
                                                  tmp_path: Path) -> None:
    from labelwise.segmenter import YoloSegmenter

    path = varied.save(tmp_path / "varied.pt")  # same stem as the loaded file -> same version
    again = YoloSegmenter.load(path, seg_env.settings, seg_env.state_dir, class_names=DIGITS)
    assert again.version == varied.version and again.task == "segment"
    images = digits.image_paths("pool")[:3]
    for a, b in zip(varied.predict_segments(images), again.predict_segments(images)):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.detections.probs, b.detections.probs, atol=1e-6)
        np.testing.assert_allclose(a.detections.xyxy, b.detections.xyxy, atol=1e-4)
        np.testing.assert_array_equal(a.masks, b.masks)
    with pytest.raises(ValueError, match="must match the checkpoint"):
        YoloSegmenter.load(path, seg_env.settings, seg_env.state_dir, class_names=DIGITS[::-1])
    with pytest.raises(ValueError, match=r"must end in \.pt"):
        varied.save(tmp_path / "varied.pth")


# ---------------------------------------------------------------------------- prediction
def test_instances_carry_class_vectors_and_image_size_masks(varied, odd_sizes: list[Path]) -> None:
    preds = varied.predict_segments(odd_sizes)
    assert len(preds) == len(odd_sizes) and sum(len(p) for p in preds) > 3
    for path, pred in zip(odd_sizes, preds):
        width, height = Image.open(path).size
        det = pred.detections
        assert pred.masks.shape == (len(det), height, width) and pred.masks.dtype == bool
        assert (pred.width, pred.height) == (width, height) and not pred.masks.flags.writeable
        assert det.probs.shape == (len(det), 10)
        np.testing.assert_allclose(det.probs.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(det.probs.argmax(axis=1), det.class_id)
        assert (det.confidence >= CONF).all()
        assert det.mask_stability is not None and det.mask_stability.shape == (len(det),)
        assert ((det.mask_stability >= 0) & (det.mask_stability <= 1)).all()
        assert (pred.mask_area > 0).all()  # empty masks are dropped, as YOLO.predict drops them
        assert (det.xyxy[:, [0, 2]] <= width).all() and (det.xyxy[:, [1, 3]] <= height).all()
        for box, mask in zip(det.xyxy, pred.masks):  # cropped to the box (1 px of resampling slack)
            ys, xs = np.nonzero(mask)
            assert xs.min() >= box[0] - 1.5 and xs.max() <= box[2] + 0.5
            assert ys.min() >= box[1] - 1.5 and ys.max() <= box[3] + 0.5
    boxes_only = varied.predict(odd_sizes)  # auto-label's path: the same boxes, no masks built
    for pred, det in zip(preds, boxes_only):
        np.testing.assert_array_equal(det.xyxy, pred.detections.xyxy)
        np.testing.assert_array_equal(det.probs, pred.detections.probs)
        np.testing.assert_array_equal(det.mask_stability, pred.detections.mask_stability)


def test_boxes_and_masks_match_ultralytics_predict(varied, seg_env: Env, digits: DigitsSegmentSet,
                                                   odd_sizes: list[Path], tmp_path: Path) -> None:
    from ultralytics import YOLO

    from labelwise.segment_inference import masks_to_image

    weights = varied.save(tmp_path / "same.pt")
    yolo = YOLO(str(weights))
    assert yolo.task == "segment"
    s = seg_env.settings
    images = [*odd_sizes[:2], *digits.image_paths("val")]
    inside = 0  # boxes that do not cover the whole image: the crop and the rescaling are exercised
    for path, ours in zip(images, varied.predict_segments(images, batch=1)):
        theirs: Any = list(yolo.predict(str(path), conf=s.conf, iou=s.iou, imgsz=s.imgsz, max_det=s.max_det,
                                        verbose=False))[0]
        assert len(theirs.boxes) == len(ours) > 0
        np.testing.assert_allclose(ours.detections.xyxy, theirs.boxes.xyxy.numpy(), atol=1e-3)
        np.testing.assert_allclose(ours.detections.confidence, theirs.boxes.conf.numpy(), atol=1e-6)
        np.testing.assert_array_equal(ours.detections.class_id, theirs.boxes.cls.numpy().astype(int))
        # ultralytics' masks are at the letterboxed input size; scale_masks takes them to the image
        height, width = theirs.orig_shape
        theirs_full = masks_to_image(theirs.masks.data.numpy().astype(bool), height, width)
        for a, b in zip(ours.masks, theirs_full):
            assert mask_iou(a, b) > 0.95
        sides = ours.detections.xyxy[:, 2:] - ours.detections.xyxy[:, :2]
        inside += int((sides < [width - 1, height - 1]).any(axis=1).sum())
    assert inside >= 3


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_backends_give_the_same_instances(backend: str, varied, seg_env: Env, digits: DigitsSegmentSet,
                                                   odd_sizes: list[Path]) -> None:
    """An ONNX Runtime / OpenVINO export of the model gives the same instances: boxes matched by
    class and IoU carry the same class vectors (within 1e-3), masks (IoU > 0.95) and stabilities,
    and the same-pass features; the export is cached under the model's version."""
    from labelwise.inference_backends import export_dir
    from labelwise.perf.autolabel import matched_class_vector_gap
    from labelwise.segmenter import YoloSegmenter

    exported = YoloSegmenter.load(varied.ref, seg_env.settings.model_copy(update={"backend": backend}),
                                  seg_env.state_dir, class_names=DIGITS)
    assert exported.backend == backend and exported.version == varied.version
    images = [*odd_sizes, *digits.image_paths("val")]
    ours, theirs = varied.predict_segments(images), exported.predict_segments(images)
    gap = matched_class_vector_gap([p.detections for p in ours], [p.detections for p in theirs], 0.99)
    assert gap.boxes > len(images) and gap.matched >= 0.9 * gap.boxes and gap.max_abs <= 1e-3
    pairs = 0
    for a, b in zip(ours, theirs):
        for i in range(len(a)):
            same = [j for j in range(len(b)) if b.detections.class_id[j] == a.detections.class_id[i]
                    and np.abs(b.detections.xyxy[j] - a.detections.xyxy[i]).max() < 0.05]
            if same:  # boxes clipped to the image can coincide: the instance is the best mask among them
                j = max(same, key=lambda k: mask_iou(a.masks[i], b.masks[k]))
                pairs += 1
                assert mask_iou(a.masks[i], b.masks[j]) > 0.95
                assert abs(float(a.detections.mask_stability[i]) - float(b.detections.mask_stability[j])) < 0.05
    assert pairs >= 0.9 * gap.boxes
    _, pooled = exported.predict_with_features(images[:4])
    np.testing.assert_allclose(pooled, varied.predict_with_features(images[:4])[1], atol=1e-3)
    assert export_dir(exported.export_root, exported.version, seg_env.settings.imgsz, backend).is_dir()


def test_predict_on_arrays_equals_predict_on_files(varied, digits: DigitsSegmentSet) -> None:
    paths = digits.image_paths("pool")[:4]
    from_files = varied.predict_segments(paths)
    from_arrays = varied.predict_segments([varied.read(p) for p in paths])
    for a, b in zip(from_files, from_arrays):
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)
        np.testing.assert_array_equal(a.detections.probs, b.detections.probs)
        np.testing.assert_array_equal(a.masks, b.masks)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        varied.predict([np.zeros((8, 8), np.uint8)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        varied.predict([paths[0].with_name("gone.png")])


def test_polygons_follow_the_masks(varied, odd_sizes: list[Path]) -> None:
    pred = varied.predict_segments(odd_sizes[:1])[0]
    segments, index = pred.polygons_with_index(epsilon_px=1.0, min_area_px=4.0)
    assert (segments.width, segments.height) == (pred.width, pred.height)
    assert len(segments) == len(index) > 0
    np.testing.assert_array_equal(segments.class_ids, pred.detections.class_id[index])
    for inst, i in zip(segments.instances, index):
        raster = polygon_to_mask(inst.polygon, pred.height, pred.width)
        count, parts = cv2.connectedComponents(pred.masks[i].astype(np.uint8), connectivity=8)
        largest = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        assert count >= 2 and mask_iou(raster, filled(largest)) > 0.9  # largest part, holes filled
    assert len(pred.polygons(epsilon_px=3.0)) == len(segments)
    coarse = pred.polygons(epsilon_px=3.0)
    assert sum(len(i.polygon) for i in coarse.instances) <= sum(len(i.polygon) for i in segments.instances)


def test_no_instances_above_a_high_threshold(varied, seg_env: Env, odd_sizes: list[Path]) -> None:
    from labelwise.segmenter import YoloSegmenter

    strict = YoloSegmenter.load(varied.ref, seg_env.settings.model_copy(update={"conf": 0.9}), seg_env.state_dir)
    pred = strict.predict_segments(odd_sizes[:1])[0]
    width, height = Image.open(odd_sizes[0]).size
    assert len(pred) == 0 and pred.masks.shape == (0, height, width)
    assert pred.detections.probs.shape == (0, 10) and len(pred.polygons()) == 0


def test_features_are_pooled_backbone_rows(varied, digits: DigitsSegmentSet) -> None:
    from labelwise.embedder import DetectorFeatureEmbedder

    paths = digits.image_paths("pool")[:5]
    feats = varied.features(paths)
    assert feats.shape == (5, 256) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    dets, same_pass = varied.predict_with_features(paths)
    np.testing.assert_allclose(same_pass, feats, atol=1e-5)
    for a, b in zip(dets, varied.predict(paths)):
        np.testing.assert_array_equal(a.probs, b.probs)
    embedder = DetectorFeatureEmbedder(varied)
    assert embedder.dim == 256
    np.testing.assert_allclose(embedder.embed(paths), feats, atol=1e-6)
    assert varied.features([]).shape == (0, 256)


# ---------------------------------------------------------------------------- metrics
def test_eval_result_names_and_scheme() -> None:
    from labelwise.evaluation import SEGMENT_SCHEME, metric_scheme, primary_value
    from labelwise.segmenter import SegmentEvalResult

    result = SegmentEvalResult("test", 0.5, 0.4, 0.3, 0.2, 0.45, 0.35, 0.25, 0.15,
                               {"a": 0.3}, {"a": 0.25}, {"a": 0.1}, n_images=6, n_instances=9, seconds=0.1)
    assert metric_scheme("segment") is SEGMENT_SCHEME is result.scheme
    assert list(result.headline()) == list(SEGMENT_SCHEME.headline)  # the Evaluation protocol
    assert result.headline() == {"precision": 0.5, "recall": 0.4, "mAP50": 0.3, "mAP50-95": 0.2,
                                 "mask_mAP50": 0.25, "mask_mAP50-95": 0.15}
    assert primary_value(result) == 0.15  # mask mAP50-95
    assert result.per_class() == {"mask_AP50/a": 0.25}
    assert result.as_metrics("test/") == {
        "test/precision": 0.5, "test/recall": 0.4, "test/map50": 0.3, "test/map50_95": 0.2,
        "test/mask_precision": 0.45, "test/mask_recall": 0.35, "test/mask_map50": 0.25,
        "test/mask_map50_95": 0.15, "test/ap50/a": 0.3, "test/mask_ap50/a": 0.25, "test/mask_ap50_95/a": 0.1,
    }


# ---------------------------------------------------------------------------- training / evaluation
@pytest.mark.slow
def test_train_on_digits_then_evaluate(segmenter, seg_env: Env, digits: DigitsSegmentSet, tmp_path: Path) -> None:
    from labelwise.segmenter import YoloSegmenter

    before = segmenter.version
    result = segmenter.train(digits.data_yaml, tmp_path / "runs", epochs=2, batch=6, imgsz=64,
                             mosaic=0.0, warmup_epochs=0)
    assert result.epochs == 2 and result.weights.is_file() and result.seconds > 0
    assert segmenter.version == before  # training works on a copy
    trained = YoloSegmenter.load(result.weights, seg_env.settings, seg_env.state_dir, class_names=DIGITS)
    assert trained.version != before and trained.task == "segment"
    metrics = trained.evaluate(digits.data_yaml, "test", out_dir=tmp_path / "eval", imgsz=64)
    manifest = digits.read_manifest()
    assert metrics.split == "test" and metrics.n_images == 6
    assert metrics.n_instances == manifest["splits"]["test"]["instances"]
    values = metrics.as_metrics()
    assert {"map50", "mask_map50", "mask_map50_95", "mask_precision"} <= set(values)
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert all(0.0 <= v <= 1.0 for v in metrics.headline().values())
    present = {name for name, n in manifest["splits"]["test"]["class_instance_counts"].items() if n}
    assert set(metrics.per_class_mask_ap50) == set(metrics.per_class_ap50) == present
    with pytest.raises(ValueError, match="split must be one of"):
        trained.evaluate(digits.data_yaml, "holdout")
    with pytest.raises(ValueError, match="epochs and batch"):
        segmenter.train(digits.data_yaml, tmp_path / "runs", epochs=0, batch=4)
    other = YoloSegmenter.load("yolov8n-seg.yaml", seg_env.settings, seg_env.state_dir, class_names=("a", "b"))
    with pytest.raises(ValueError, match="names must equal"):
        other.evaluate(digits.data_yaml)



@pytest.mark.slow
def test_training_starts_from_these_weights(seg_env: Env, digits: DigitsSegmentSet, tmp_path: Path) -> None:
    from labelwise.segmenter import YoloSegmenter

    model = YoloSegmenter.load("yolov8n-seg.yaml", seg_env.settings, seg_env.state_dir, DIGITS, seed=3)
    # A learning rate of 0 (and no warm-up, whose bias rate is not 0) keeps every parameter: the
    # checkpoint then shows the run started from THESE weights, not a fresh build (up to the fp16
    # rounding of ultralytics' checkpoints; another random build differs by ~0.1).
    result = model.train(digits.data_yaml, tmp_path / "runs", epochs=1, batch=6, imgsz=64,
                         optimizer="SGD", lr0=0.0, warmup_epochs=0, mosaic=0.0)
    trained = YoloSegmenter.load(result.weights, seg_env.settings, seg_env.state_dir)
    assert trained.class_names == DIGITS
    start = dict(model._model.named_parameters())
    end = dict(trained._model.named_parameters())
    assert start.keys() == end.keys()
    for key, value in start.items():
        np.testing.assert_allclose(end[key].detach().numpy(), value.detach().numpy(), rtol=2e-3, atol=1e-4,
                                   err_msg=key)


def test_a_segmentation_project_is_served_its_outlines(varied, digits: DigitsSegmentSet, tmp_path: Path,
                                                       catalog) -> None:
    """/v1/predict on a segmentation project: the task, the boxes and one outline per box (same
    order, pixels of the upload); a flagged upload is stored with its outlines beside its boxes."""
    from fastapi.testclient import TestClient

    from labelwise.config import Settings
    from labelwise.serving import ServingSettings, create_app
    from labelwise.serving.auth import create_api_key
    from labelwise.serving.holder import ServingModel

    settings = Settings(state_dir=tmp_path / "state", scoring={"confidence_floor": 0.0})
    project = catalog.create_project("s", list(DIGITS), task_type="segment")
    key, _ = create_api_key(catalog, ["s"])
    serving = ServingSettings(project="s", routing_threshold=1.0, poll_interval_s=0, upload_group="g")
    app = create_app(settings, serving, catalog=catalog, deliver=lambda _d: None,
                     model_source=lambda _p: ((lambda: ServingModel(varied, "varied.pt", "explicit")), None))
    image = digits.image_paths("pool")[0]
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        reply = client.post("/v1/predict", files={"file": ("x.png", image.read_bytes(), "image/png")}).json()
    assert reply["task"] == "segment" and reply["classes"] is None
    assert len(reply["segments"]) == len(reply["boxes"]) > 0
    width, height = reply["width"], reply["height"]
    for box, outline in zip(reply["boxes"], reply["segments"]):
        assert outline["class_id"] == box["class_id"] and outline["confidence"] == box["confidence"]
        assert 0.0 <= outline["mask_stability"] <= 1.0
        pts = np.asarray(outline["points"])
        assert pts.shape[0] >= 3 and (pts >= 0).all() and (pts[:, 0] <= width).all() and (pts[:, 1] <= height).all()
    assert reply["queued_for_review"] is True  # under the threshold of 1.0
    stored = catalog.prediction_segments(project, varied.version, [reply["image_id"]])[reply["image_id"]]
    assert len(stored) == len(reply["segments"])
    stability = catalog.predictions(project, varied.version, [reply["image_id"]])[reply["image_id"]].mask_stability
    assert stability is not None  # stored with the boxes: the pool scores it as auto-label's would be
    np.testing.assert_allclose(stability, [o["mask_stability"] for o in reply["segments"]], atol=1e-6)
