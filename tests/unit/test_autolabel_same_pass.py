"""auto_label takes the detector embedding from the prediction pass and batches its writes;
real yaml-built YOLO, real catalog, real digits images (no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.autolabel import auto_label, shares_pass
from labelwise.catalog import Catalog
from labelwise.config import DetectorSettings, EmbedderSettings
from labelwise.ultralytics_env import current_config_dir, prepare_ultralytics
from tests.unit.test_detector import CLASS_NAMES, draw_digits


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory):
    from labelwise.detector import YoloDetector

    prepare_ultralytics(current_config_dir() or tmp_path_factory.mktemp("ul_cfg"))
    settings = DetectorSettings(imgsz=128, batch=4, conf=0.01, max_det=30)
    return YoloDetector.load("yolov8n.yaml", settings, tmp_path_factory.mktemp("al_state"),
                             class_names=CLASS_NAMES, seed=2)


@pytest.fixture
def pool(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(9)
    paths = []
    for i in range(11):
        path = tmp_path / "pool" / f"p_{i:02d}.png"
        draw_digits(path, rng, int(rng.integers(1, 4)))
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", ["detector", "auto"])
def test_same_pass_embeddings_equal_the_embedders_own(kind: str, detector, pool: list[Path], catalog: Catalog) -> None:
    from labelwise.embedder import build_embedder

    embedder = build_embedder(EmbedderSettings(kind=kind), detector)  # type: ignore[arg-type]
    assert embedder is not None and shares_pass(detector, embedder)
    project = catalog.create_project("p", list(CLASS_NAMES))
    catalog.add_images(project, pool)
    finished: list[int] = []
    report = auto_label(catalog, project, detector, embedder, batch_size=4, write_batch=5,
                        progress=finished.append)
    assert report.predicted == report.embedded == report.same_pass == len(pool)
    assert finished == [8, 3]  # one write once 5 or more are held (8), then the rest
    images = catalog.images(project)
    paths = [img.path for img in images]
    stored = catalog.embeddings(project, embedder.name)
    second_pass = embedder.embed(paths)
    np.testing.assert_allclose(np.stack([stored[img.image_id] for img in images]), second_pass, atol=1e-5)
    predicted = catalog.predictions(project, detector.version)
    for img, det in zip(images, detector.predict(paths)):
        np.testing.assert_allclose(predicted[img.image_id].probs, det.probs, atol=1e-6)


def test_other_embedders_keep_their_own_pass(detector, pool: list[Path], catalog: Catalog) -> None:
    from labelwise.embedder import build_embedder

    embedder = build_embedder(EmbedderSettings(kind="pixels"), detector)
    assert not shares_pass(detector, embedder)
    project = catalog.create_project("p", list(CLASS_NAMES))
    catalog.add_images(project, pool)
    report = auto_label(catalog, project, detector, embedder, batch_size=4)
    assert report.same_pass == 0 and report.embedded == report.predicted == len(pool)


def test_resumes_after_a_run(detector, pool: list[Path], catalog: Catalog) -> None:
    from labelwise.embedder import build_embedder

    embedder = build_embedder(EmbedderSettings(kind="detector"), detector)
    project = catalog.create_project("p", list(CLASS_NAMES))
    catalog.add_images(project, pool[:6])
    auto_label(catalog, project, detector, embedder, batch_size=4, write_batch=2)
    catalog.add_images(project, pool)
    again = auto_label(catalog, project, detector, embedder, batch_size=4, write_batch=2)
    assert again.predicted == again.embedded == len(pool) - 6
    assert again.already_predicted == 6


def test_write_batch_must_be_positive(detector, catalog: Catalog) -> None:
    project = catalog.create_project("p", list(CLASS_NAMES))
    with pytest.raises(ValueError, match="write_batch must be >= 1"):
        auto_label(catalog, project, detector, None, write_batch=0)


def test_pixel_rows_from_decoded_images_equal_the_files(detector, pool: list[Path]) -> None:
    from labelwise.embedder import PixelEmbedder

    pixels = PixelEmbedder()
    np.testing.assert_allclose(pixels.embed_pixels([detector.read(p) for p in pool]), pixels.embed(pool), atol=1e-6)
    with pytest.raises(ValueError, match="uint8 BGR"):
        pixels.embed_pixels([np.zeros((4, 4), np.uint8)])


def test_same_pass_reports_and_skips_files_that_vanished_or_broke(detector, pool: list[Path], catalog: Catalog) -> None:
    from labelwise.embedder import build_embedder

    embedder = build_embedder(EmbedderSettings(kind="auto"), detector)
    project = catalog.create_project("p", list(CLASS_NAMES))
    catalog.add_images(project, pool)
    pool[1].unlink()
    pool[2].write_bytes(b"\x89PNG broken")
    report = auto_label(catalog, project, detector, embedder, batch_size=4)
    assert report.same_pass == report.predicted == report.embedded == len(pool) - 2
    assert sorted(path for path, _ in report.failed) == sorted(str(p) for p in pool[1:3])
    assert any("does not exist" in reason for _, reason in report.failed)
    assert any("cannot decode" in reason for _, reason in report.failed)
