"""Embedders: a tiny registered open_clip architecture (random init, then loaded from a local
weights file exactly as a user's weights are) and pooled detector features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from labelwise.config import DetectorSettings, EmbedderSettings
from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics

TINY_CLIP = "labelwise-test-tiny-clip"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a ~2M-parameter CLIP architecture with open_clip (its public config API)."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip_cfg")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CFG))
    wider = {**TINY_CLIP_CFG, "text_cfg": {**TINY_CLIP_CFG["text_cfg"], "width": 64}}
    (folder / f"{TINY_CLIP}-wide.json").write_text(json.dumps(wider))
    open_clip.add_model_config(folder)
    return TINY_CLIP


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("emb_images")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(10):
        image = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(0, 80, 3)))
        draw = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(0, 60, 2))
        draw.rectangle(
            [x, y, x + 30, y + 30], fill=tuple(int(v) for v in rng.integers(120, 256, 3))
        )
        paths.append(root / f"pic_{i}.png")
        image.save(paths[-1])
    return paths


@pytest.fixture(scope="session")
def clip_weights(tiny_clip: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'user' weights file: a seeded random model's state dict saved to disk."""
    import open_clip
    import torch

    torch.manual_seed(123)
    model = open_clip.create_model(tiny_clip, pretrained=None)
    path = tmp_path_factory.mktemp("clip_weights") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def detector(tmp_path_factory: pytest.TempPathFactory):
    prepare_ultralytics(current_config_dir() or tmp_path_factory.mktemp("ultralytics_cfg"))
    from labelwise.detector import YoloDetector

    settings = DetectorSettings(imgsz=64, batch=8)
    return YoloDetector.load(
        "yolov8n.yaml",
        settings,
        tmp_path_factory.mktemp("emb_state"),
        class_names=["a", "b"],
        seed=0,
    )


# ---------------------------------------------------------------------------- CLIP
def test_clip_from_weights_file(tiny_clip: str, clip_weights: Path, pictures: list[Path]) -> None:
    from labelwise.embedder import ClipEmbedder, Embedder

    emb = ClipEmbedder(tiny_clip, clip_weights, batch=4)
    assert isinstance(emb, Embedder)
    vectors = emb.embed(pictures)
    assert vectors.shape == (10, 32) and vectors.dtype == np.float32 and emb.dim == 32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert emb.name.startswith(f"clip-{tiny_clip}-") and "random" not in emb.name
    # same weights file -> same name and same vectors; batch size does not matter
    again = ClipEmbedder(tiny_clip, clip_weights, batch=3)
    assert again.name == emb.name
    np.testing.assert_allclose(again.embed(pictures), vectors, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) > 1  # images differ -> vectors differ
    assert emb.embed([]).shape == (0, 32)


def test_clip_weights_really_loaded(
    tiny_clip: str, clip_weights: Path, pictures: list[Path]
) -> None:
    """Weights file vs a different random init: different names and vectors."""
    from labelwise.embedder import ClipEmbedder

    loaded = ClipEmbedder(tiny_clip, clip_weights)
    random = ClipEmbedder(tiny_clip, None, random_init=True, seed=0)
    random_again = ClipEmbedder(tiny_clip, None, random_init=True, seed=0)
    assert "random" in random.name and random.name == random_again.name
    assert random.name != loaded.name
    np.testing.assert_allclose(
        random.embed(pictures[:3]), random_again.embed(pictures[:3]), atol=1e-6
    )
    assert not np.allclose(random.embed(pictures[:3]), loaded.embed(pictures[:3]), atol=1e-3)


def test_clip_without_weights_is_refused(tiny_clip: str) -> None:
    from labelwise.embedder import ClipEmbedder, build_embedder

    with pytest.raises(ValueError, match="set embedder.clip_weights"):
        ClipEmbedder(tiny_clip, None)
    with pytest.raises(ValueError, match="set embedder.clip_weights"):
        build_embedder(EmbedderSettings(kind="clip", clip_model=tiny_clip), detector=None)


def test_clip_bad_inputs(tiny_clip: str, clip_weights: Path, tmp_path: Path) -> None:
    from labelwise.embedder import ClipEmbedder

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ClipEmbedder(tiny_clip, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown open_clip architecture 'no-such-model'"):
        ClipEmbedder("no-such-model", clip_weights)
    with pytest.raises(ValueError, match="cannot load CLIP weights"):
        ClipEmbedder(f"{tiny_clip}-wide", clip_weights)  # weights of another architecture
    emb = ClipEmbedder(tiny_clip, clip_weights)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.png"):
        emb.embed([bad])


# ---------------------------------------------------------------------------- detector features
def test_detector_feature_embedder(detector, pictures: list[Path]) -> None:
    from labelwise.embedder import DetectorFeatureEmbedder, Embedder

    emb = DetectorFeatureEmbedder(detector)
    assert isinstance(emb, Embedder)
    vectors = emb.embed(pictures)
    assert vectors.shape == (10, emb.dim) and emb.dim == 256 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb.embed(pictures), vectors, atol=1e-6)
    assert detector.version in emb.name


# ---------------------------------------------------------------------------- build_embedder
def test_build_embedder_kinds(tiny_clip: str, clip_weights: Path, detector) -> None:
    from labelwise.embedder import (
        ClipEmbedder,
        ConcatEmbedder,
        DetectorFeatureEmbedder,
        PixelEmbedder,
        build_embedder,
    )

    assert build_embedder(EmbedderSettings(kind="none"), detector) is None
    auto = build_embedder(EmbedderSettings(kind="auto"), detector)
    assert isinstance(auto, ConcatEmbedder)
    assert [type(p) for p in auto.parts] == [DetectorFeatureEmbedder, PixelEmbedder]
    assert isinstance(build_embedder(EmbedderSettings(kind="auto"), None), PixelEmbedder)
    assert isinstance(build_embedder(EmbedderSettings(kind="pixels"), None), PixelEmbedder)
    assert isinstance(build_embedder(EmbedderSettings(kind="detector"), detector), DetectorFeatureEmbedder)
    auto_clip = build_embedder(
        EmbedderSettings(kind="auto", clip_model=tiny_clip, clip_weights=clip_weights), detector
    )
    assert isinstance(auto_clip, ClipEmbedder)
    # random init is never chosen by auto
    assert isinstance(
        build_embedder(
            EmbedderSettings(kind="auto", clip_model=tiny_clip, clip_random_init=True), detector
        ),
        ConcatEmbedder,
    )
    explicit = build_embedder(
        EmbedderSettings(kind="clip", clip_model=tiny_clip, clip_random_init=True), None
    )
    assert isinstance(explicit, ClipEmbedder) and "random" in explicit.name
    with pytest.raises(ValueError, match="needs a detector"):
        build_embedder(EmbedderSettings(kind="detector"), None)


def test_pixel_embedder_puts_near_duplicate_frames_close(tmp_path: Path) -> None:
    """A shifted, slightly brighter, noisier frame of a scene is much closer to it than a
    different scene is."""
    from PIL import Image

    from labelwise.embedder import ConcatEmbedder, PixelEmbedder

    rng = np.random.default_rng(0)

    def scene(seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        img = np.full((96, 96), 200, np.uint8)
        for _ in range(4):
            x, y = r.integers(0, 70, 2)
            img[y : y + 24, x : x + 12] = r.integers(0, 80)
        return img

    base, other = scene(1), scene(2)
    frame = np.clip(np.roll(base, 2, axis=1).astype(int) + 10 + rng.normal(0, 4, base.shape), 0, 255)
    paths = []
    for name, arr in (("base", base), ("frame", frame), ("other", other)):
        path = tmp_path / f"{name}.png"
        Image.fromarray(arr.astype(np.uint8)).convert("RGB").save(path)
        paths.append(path)
    vec = PixelEmbedder().embed(paths)
    assert vec.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    near, far = np.linalg.norm(vec[0] - vec[1]), np.linalg.norm(vec[0] - vec[2])
    assert near < 0.3 * far
    both = ConcatEmbedder([PixelEmbedder(8), PixelEmbedder(4)])
    assert both.name == "pixels-8+pixels-4" and both.embed(paths).shape == (3, 80)
    with pytest.raises(ValueError, match="at least two parts"):
        ConcatEmbedder([PixelEmbedder()])
