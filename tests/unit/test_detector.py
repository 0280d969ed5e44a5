"""YoloDetector on a real yaml-built YOLO and tiny generated digit images (no downloads)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw, ImageFont

from labelwise.config import DetectorSettings
from labelwise.domain import Detections
from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics

CLASS_NAMES = tuple(str(d) for d in range(10))
CANVAS = 96


# ---------------------------------------------------------------------------- generated data
def draw_digits(
    path: Path, rng: np.random.Generator, n_digits: int
) -> list[tuple[int, float, float, float, float]]:
    """A CANVAS x CANVAS PNG with ``n_digits`` non-overlapping digits; returns YOLO label rows."""
    font = ImageFont.load_default(size=30)
    image = Image.new("RGB", (CANVAS, CANVAS), tuple(int(v) for v in rng.integers(0, 60, 3)))
    draw = ImageDraw.Draw(image)
    labels: list[tuple[int, float, float, float, float]] = []
    cells = rng.permutation(9)[:n_digits]  # 3x3 grid of 32 px cells -> no overlap
    for cell in cells:
        digit = int(rng.integers(0, 10))
        cx, cy = (cell % 3) * 32, (cell // 3) * 32
        colour = tuple(int(v) for v in rng.integers(160, 256, 3))
        draw.text((cx + 6, cy - 2), str(digit), fill=colour, font=font)
        # tight box from the glyph's bbox
        x0, y0, x1, y1 = draw.textbbox((cx + 6, cy - 2), str(digit), font=font)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, CANVAS), min(y1, CANVAS)
        labels.append(
            (
                (digit),
                (x0 + x1) / 2 / CANVAS,
                (y0 + y1) / 2 / CANVAS,
                (x1 - x0) / CANVAS,
                (y1 - y0) / CANVAS,
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return labels


def make_dataset(root: Path, seed: int, counts: dict[str, int]) -> Path:
    """YOLO dataset (images/<split>, labels/<split>) + data.yaml with absolute paths."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for i in range(n):
            img = root / "images" / split / f"{split}_{i:03d}.png"
            rows = draw_digits(img, rng, int(rng.integers(1, 4)))
            lbl = root / "labels" / split / f"{split}_{i:03d}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(
                "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows)
            )
    data = {
        "path": str(root),
        **{s: str(root / "images" / s) for s in counts},
        "names": dict(enumerate(CLASS_NAMES)),
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data))
    return data_yaml


# ---------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class Env:
    state_dir: Path
    settings: DetectorSettings


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    config_dir = current_config_dir() or tmp_path_factory.mktemp("ultralytics_cfg")
    prepare_ultralytics(config_dir)
    state = tmp_path_factory.mktemp("det_state")
    settings = DetectorSettings(
        model="yolov8n.yaml", imgsz=128, batch=16, conf=0.001, iou=0.6, max_det=100
    )
    return Env(state, settings)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("det_images")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(64):
        p = root / f"img_{i:02d}.png"
        draw_digits(p, rng, int(rng.integers(1, 4)))
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def yaml_detector(env: Env):
    from labelwise.detector import YoloDetector

    return YoloDetector.load(
        "yolov8n.yaml", env.settings, env.state_dir, class_names=CLASS_NAMES, seed=0
    )


@pytest.fixture(scope="session")
def varied_detector(env: Env, yaml_detector, tmp_path_factory: pytest.TempPathFactory):
    """A random model whose class logits vary across classes (a fresh head's biases are all equal).

    Test-only surgery on the private torch module, saved to a .pt and reloaded through the
    public weights path.
    """
    import torch

    from labelwise.detector import YoloDetector

    model = yaml_detector._model
    head = model.model[-1]
    g = torch.Generator().manual_seed(3)
    backup = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for seq in head.cv3:
            last = seq[-1]
            last.weight.add_(torch.randn(last.weight.shape, generator=g) * 0.5)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 1.5 - 3.0)
    path = yaml_detector.save(tmp_path_factory.mktemp("weights") / "varied.pt")
    model.load_state_dict(backup)  # leave the shared fixture untouched
    return YoloDetector.load(str(path), env.settings, env.state_dir, class_names=CLASS_NAMES)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(
        tmp_path_factory.mktemp("digits_ds"), seed=11, counts={"train": 8, "val": 4, "test": 4}
    )


# ---------------------------------------------------------------------------- environment
def test_prepare_ultralytics_is_offline_local_and_multithreaded(env: Env, tmp_path: Path) -> None:
    import os

    import torch
    import ultralytics.utils.torch_utils as torch_utils
    from PIL import Image, UnidentifiedImageError
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    config_dir = current_config_dir()
    assert config_dir is not None and Path(USER_CONFIG_DIR) == config_dir / "Ultralytics"
    assert Path.home() not in Path(USER_CONFIG_DIR).parents
    assert (config_dir / "Ultralytics" / "Arial.ttf").is_file()
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    for key in ("sync", "mlflow", "wandb", "comet", "clearml", "tensorboard", "dvc", "raytune"):
        assert SETTINGS[key] is False, key
    cores = max(1, os.cpu_count() or 1)
    assert torch_utils.NUM_THREADS == cores and torch.get_num_threads() == cores
    prepare_ultralytics(config_dir)  # idempotent
    with pytest.raises(RuntimeError, match="expected .*other"):
        prepare_ultralytics(tmp_path / "other")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(UnidentifiedImageError):  # not ModuleNotFoundError('pi_heif')
        Image.open(junk)


# ---------------------------------------------------------------------------- loading / version
def test_yaml_build_has_project_classes(yaml_detector) -> None:
    assert yaml_detector.class_names == CLASS_NAMES
    assert yaml_detector.num_classes == 10
    assert yaml_detector.version.startswith("yolov8n-")
    assert len(yaml_detector.version.split("-")[-1]) == 10


def test_same_yaml_and_seed_give_same_version(env: Env, yaml_detector) -> None:
    from labelwise.detector import YoloDetector

    again = YoloDetector.load(
        "yolov8n.yaml", env.settings, env.state_dir, class_names=CLASS_NAMES, seed=0
    )
    other = YoloDetector.load(
        "yolov8n.yaml", env.settings, env.state_dir, class_names=CLASS_NAMES, seed=1
    )
    assert again.version == yaml_detector.version
    assert other.version != yaml_detector.version


def test_save_and_reload_keeps_version(env: Env, yaml_detector, tmp_path: Path) -> None:
    from labelwise.detector import YoloDetector

    path = yaml_detector.save(tmp_path / "model.pt")
    loaded = YoloDetector.load(str(path), env.settings, env.state_dir)
    assert loaded.class_names == CLASS_NAMES
    assert loaded.version == f"model-{yaml_detector.version.split('-')[-1]}"


def test_unsupported_and_missing_refs(env: Env, tmp_path: Path) -> None:
    from labelwise.detector import YoloDetector

    with pytest.raises(ValueError, match="models:/yolo@champion.*expected a local .pt"):
        YoloDetector.load(
            "models:/yolo@champion", env.settings, env.state_dir, class_names=CLASS_NAMES
        )
    with pytest.raises(ValueError, match="unsupported detector reference 'weights.onnx'"):
        YoloDetector.load("weights.onnx", env.settings, env.state_dir, class_names=CLASS_NAMES)
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        YoloDetector.load(str(missing), env.settings, env.state_dir)
    with pytest.raises(ValueError, match="needs class_names"):
        YoloDetector.load("yolov8n.yaml", env.settings, env.state_dir)
    with pytest.raises(ValueError, match="unique"):
        YoloDetector.load("yolov8n.yaml", env.settings, env.state_dir, class_names=["a", "a"])


def test_pt_with_other_class_names_is_refused(env: Env, yaml_detector, tmp_path: Path) -> None:
    from labelwise.detector import YoloDetector

    path = yaml_detector.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="must match the checkpoint"):
        YoloDetector.load(str(path), env.settings, env.state_dir, class_names=list("abcdefghij"))


# ---------------------------------------------------------------------------- prediction
def test_predict_returns_full_class_vectors(varied_detector, images: list[Path]) -> None:
    dets = varied_detector.predict(images[:16])
    assert len(dets) == 16
    total = 0
    for det in dets:
        assert isinstance(det, Detections)
        assert det.num_classes == 10
        total += len(det)
        if not len(det):
            continue
        np.testing.assert_array_equal(det.probs.argmax(1), det.class_id)
        np.testing.assert_allclose(det.probs.sum(1), 1.0, atol=1e-5)
        assert (det.confidence >= varied_detector.settings.conf).all()
        assert (det.xyxy[:, 0] >= 0).all() and (det.xyxy[:, 2] <= CANVAS).all()  # original pixels
        assert len(det) <= varied_detector.settings.max_det
    assert total > 16  # a random model at conf 0.001 finds plenty of candidates
    assert len({int(c) for d in dets for c in d.class_id}) > 1  # the varied head spreads classes


def test_raw_row_max_equals_box_confidence(varied_detector, images: list[Path]) -> None:
    """Cross-check against ultralytics' own predictor: same boxes, conf = raw max of our row."""
    from ultralytics.models.yolo.detect import DetectionPredictor

    s = varied_detector.settings
    plain = DetectionPredictor(overrides=varied_detector._predict_overrides())
    plain.setup_model(model=varied_detector._model, verbose=False)
    from labelwise.yolo_inference import read_bgr

    reference = plain(source=[read_bgr(p) for p in images[:8]], stream=False)
    raw = varied_detector._get_predictor()(source=[read_bgr(p) for p in images[:8]], stream=False)
    for ref, mine in zip(reference, raw):
        boxes = ref.boxes
        assert len(boxes) == len(mine.confidence)
        np.testing.assert_allclose(mine.scores.max(1), boxes.conf.numpy(), atol=1e-5)
        np.testing.assert_allclose(mine.confidence, boxes.conf.numpy(), atol=1e-6)
        np.testing.assert_array_equal(mine.class_id, boxes.cls.numpy().astype(int))
        np.testing.assert_allclose(mine.xyxy, boxes.xyxy.numpy(), atol=1e-3)
    assert s.conf == 0.001


def test_predict_iter_streams_in_input_order(varied_detector, images: list[Path]) -> None:
    order = list(reversed(images[:10]))
    streamed = list(varied_detector.predict_iter(order, batch=4))
    assert [p for p, _ in streamed] == order
    batch_all = varied_detector.predict(order)
    for (_, a), b in zip(streamed, batch_all):
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)


def test_predict_on_decoded_arrays_equals_predict_on_files(varied_detector, images: list[Path]) -> None:
    """The serving API predicts on the upload it already decoded: same detections as the file."""
    from labelwise.yolo_inference import read_bgr

    arrays = [read_bgr(p) for p in images[:6]]
    for from_file, from_array in zip(varied_detector.predict(images[:6]), varied_detector.predict(arrays)):
        np.testing.assert_array_equal(from_file.class_id, from_array.class_id)
        np.testing.assert_allclose(from_file.confidence, from_array.confidence, atol=1e-6)
        np.testing.assert_allclose(from_file.xyxy, from_array.xyxy, atol=1e-4)
    mixed = varied_detector.predict([arrays[0], images[1]])
    np.testing.assert_allclose(mixed[1].confidence, varied_detector.predict([images[1]])[0].confidence, atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
    ids=["2d", "4-channels", "float"],
)
def test_predict_refuses_arrays_that_are_not_bgr_uint8(varied_detector, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 BGR array; got shape"):
        varied_detector.predict([bad])


def test_predict_names_unreadable_file(varied_detector, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        varied_detector.predict([images[0], bad])
    with pytest.raises(FileNotFoundError, match="ghost.png"):
        varied_detector.predict([tmp_path / "ghost.png"])


def test_predict_and_features_timing(varied_detector, images: list[Path], capsys) -> None:
    """64 images at imgsz 128 on all cores; recorded, with a generous ceiling."""
    import torch

    varied_detector.predict(images[:4])  # warm up (first call imports torchvision)
    start = time.perf_counter()
    dets = varied_detector.predict(images)
    t_predict = time.perf_counter() - start
    varied_detector.features(images[:4])
    start = time.perf_counter()
    feats = varied_detector.features(images)
    t_feat = time.perf_counter() - start
    with capsys.disabled():
        print(
            f"\n[timing] predict 64 imgs @128: {t_predict:.2f}s, features: {t_feat:.2f}s, "
            f"torch threads {torch.get_num_threads()}"
        )
    assert len(dets) == 64 and feats.shape[0] == 64
    assert torch.get_num_threads() == max(1, __import__("os").cpu_count() or 1)
    assert t_predict < 20 and t_feat < 20


# ---------------------------------------------------------------------------- features
def test_features_are_l2_normalised_and_deterministic(yaml_detector, images: list[Path]) -> None:
    a = yaml_detector.features(images[:6])
    b = yaml_detector.features(images[:6], batch=4)
    assert a.shape == (6, yaml_detector.feature_dim) and a.dtype == np.float32
    assert yaml_detector.feature_dim == 256  # SPPF of yolov8n
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert yaml_detector.features([]).shape == (0, 256)


# ---------------------------------------------------------------------------- train / evaluate
def test_evaluate_untrained_returns_metrics(
    env: Env, yaml_detector, dataset: Path, tmp_path: Path
) -> None:
    from labelwise.detector import YoloDetector

    result = yaml_detector.evaluate(dataset, split="test", out_dir=tmp_path)
    # evaluation must not fuse/alter the detector's own weights
    reloaded = YoloDetector.load(
        str(yaml_detector.save(tmp_path / "after_eval.pt")), env.settings, env.state_dir
    )
    assert reloaded.version.split("-")[-1] == yaml_detector.version.split("-")[-1]
    assert result.n_images == 4 and result.n_boxes > 0
    for value in (result.precision, result.recall, result.map50, result.map50_95):
        assert 0.0 <= value <= 1.0


def test_train_refuses_mismatched_names(yaml_detector, tmp_path: Path) -> None:
    bad = tmp_path / "data.yaml"
    bad.write_text(
        yaml.safe_dump({"train": str(tmp_path), "val": str(tmp_path), "names": ["cat", "dog"]})
    )
    with pytest.raises(ValueError, match="names must equal"):
        yaml_detector.train(bad, tmp_path / "runs", epochs=1, batch=4)


@pytest.mark.slow
def test_train_reload_evaluate(env: Env, yaml_detector, dataset: Path, tmp_path: Path) -> None:
    from labelwise.detector import TrainResult, YoloDetector

    before = yaml_detector.version
    result = yaml_detector.train(
        dataset,
        tmp_path / "runs",
        epochs=2,
        batch=8,
        seed=0,
        patience=0,
        imgsz=64,
        mosaic=0.0,
        warmup_epochs=0,
    )
    assert isinstance(result, TrainResult)
    assert result.weights.is_file() and result.weights.suffix == ".pt"
    assert result.epochs == 2 and result.seconds > 0
    untouched = YoloDetector.load(
        str(yaml_detector.save(tmp_path / "untouched.pt")), env.settings, env.state_dir
    )
    assert untouched.version.split("-")[-1] == before.split("-")[-1]  # training works on a copy

    trained = YoloDetector.load(
        str(result.weights), env.settings, env.state_dir, class_names=CLASS_NAMES
    )
    assert trained.version != before
    assert trained.class_names == CLASS_NAMES
    evaluation = trained.evaluate(dataset, split="test", out_dir=tmp_path / "eval", imgsz=64)
    for value in (evaluation.precision, evaluation.recall, evaluation.map50, evaluation.map50_95):
        assert 0.0 <= value <= 1.0
    assert set(evaluation.per_class_ap50) <= set(CLASS_NAMES)
    assert all(0.0 <= v <= 1.0 for v in evaluation.per_class_ap50_95.values())
    assert evaluation.n_images == 4
    dets = trained.predict(sorted((dataset.parent / "images" / "test").glob("*.png")))
    assert len(dets) == 4
