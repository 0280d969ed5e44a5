"""The bundled digits segmentation set: layout, label polygons that rasterise back to each digit's
ink, determinism, idempotence and the refusals of generate_digits_segment (no ultralytics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from labelwise.datasets.digits.config import class_probabilities
from labelwise.datasets.digits.render import _plan_scene, _render, _rng, _samples_by_class
from labelwise.datasets.digits_segment import (
    INCOMPLETE_MARKER,
    MANIFEST_FORMAT,
    DigitsSegmentConfig,
    DigitsSegmentSet,
    filled,
    generate_digits_segment,
    ink_polygon,
    instance_masks,
    load_digits_segment,
)
from labelwise.masks import mask_iou, polygon_to_mask, read_segment_labels

DIGITS = tuple(str(d) for d in range(10))
SMALL = DigitsSegmentConfig(pool_images=8, val_images=3, test_images=4, seed=3,
                            duplicate_cluster_fraction=0.5)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DigitsSegmentSet:
    return generate_digits_segment(tmp_path_factory.mktemp("ds") / "set", SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "data.yaml"}  # data.yaml holds the absolute root


def _rerender(dataset: DigitsSegmentSet, split: str, index: int, cluster_id: int, cluster_size: int):
    """The scene of one image rendered again, outside the data set (masks and pixels)."""
    scenes = dataset.config.render_config()
    scene = _plan_scene(_rng(scenes, split, 0, cluster_id), scenes, class_probabilities(scenes),
                        _samples_by_class(scenes.domain))
    return _render(scene, _rng(scenes, split, 1, index), jitter=cluster_size > 1)


def test_layout_data_yaml_and_images(small: DigitsSegmentSet) -> None:
    root = small.root
    assert small.class_names == DIGITS and small.config == SMALL
    assert sorted(p.name for p in root.iterdir()) == [
        "data.yaml", "manifest.json", "pool", "pool_truth", "test", "val"
    ]
    assert not (root / "pool" / "labels").exists()  # the pool is unlabelled for ultralytics
    data = yaml.safe_load(small.data_yaml.read_text())
    assert data["path"] == str(root) and data["nc"] == 10
    assert data["names"] == dict(enumerate(DIGITS))
    assert data["val"] == str(small.image_dir("val")) and data["test"] == str(small.image_dir("test"))
    assert all(Path(data[k]).is_absolute() for k in ("train", "val", "test"))
    counts = {"pool": 8, "val": 3, "test": 4}
    for split, n in counts.items():
        images = small.image_paths(split)  # type: ignore[arg-type]
        assert [p.stem for p in images] == [f"{split}_{i:06d}" for i in range(n)]
        assert all(small.truth_path(p, split).is_file() for p in images)  # type: ignore[arg-type]
        for path in images[:2]:
            with Image.open(path) as im:
                assert im.mode == "RGB" and 96 <= im.width <= 128 and 96 <= im.height <= 128
    manifest = small.read_manifest()
    assert manifest["format"] == MANIFEST_FORMAT and manifest["config"] == SMALL.to_dict()
    assert [manifest["splits"][s]["images"] for s in counts] == list(counts.values())
    assert any(e["cluster_size"] > 1 for e in manifest["images"])  # near-duplicates were asked for
    with pytest.raises(ValueError, match="split must be one of"):
        small.image_dir("train")  # type: ignore[arg-type]


def test_label_polygons_rasterise_back_to_the_ink(small: DigitsSegmentSet) -> None:
    """Every label line is one digit; its polygon, rasterised, is that digit's ink (holes filled)."""
    manifest = small.read_manifest()
    checked = 0
    raw_ious = []
    for entry in manifest["images"]:
        split, index = entry["split"], int(Path(entry["file"]).stem.rsplit("_", 1)[1])
        rendered = _rerender(small, split, index, entry["cluster_id"], entry["cluster_size"])
        with Image.open(small.root / entry["file"]) as im:
            np.testing.assert_array_equal(np.asarray(im), rendered.image)  # the same scene
            width, height = im.size
        segments = read_segment_labels(small.root / entry["labels"], width, height)
        assert segments.class_ids.tolist() == rendered.classes.tolist() == entry["classes"]
        inks = instance_masks(rendered)
        assert inks.shape == (len(rendered.classes), height, width)
        for i, (raster, ink) in enumerate(zip(segments.masks(), inks)):
            iou = mask_iou(raster, filled(ink))
            assert iou > 0.9, (entry["file"], i, iou)
            assert iou == pytest.approx(entry["digits"][i]["mask_iou"], abs=1e-3)  # 6-decimal labels
            raw_ious.append(mask_iou(raster, ink))
            checked += 1
        for a in range(len(inks)):  # instances are disjoint (ink boxes may not overlap)
            for b in range(a + 1, len(inks)):
                assert not (inks[a] & inks[b]).any()
    assert checked == sum(len(e["classes"]) for e in manifest["images"]) >= 15
    assert np.mean(raw_ious) > 0.85  # holes ("0", "8") are the only ink a polygon fills in


def test_ink_polygon_bridges_parts_and_fills_holes() -> None:
    mask = np.zeros((40, 60), bool)
    mask[5:25, 5:25] = True
    mask[10:20, 10:20] = False  # a hole
    mask[28:36, 30:50] = True  # a second part
    mask[2:4, 55:57] = True  # a 4-pixel speck: below min_area_px, dropped
    polygon = ink_polygon(mask, simplify_tolerance_px=0.5, min_area_px=5.0)
    assert polygon is not None
    raster = polygon_to_mask(polygon, 40, 60)
    wanted = filled(mask)
    wanted[2:4, 55:57] = False
    assert raster[28:36, 30:50].all() and raster[5:25, 5:25].all()  # both parts, hole filled
    assert not raster[2:4, 55:57].any()
    assert mask_iou(raster, wanted) > 0.95  # the bridge adds a one-pixel line
    tiny = np.zeros((10, 10), bool)
    tiny[4:6, 4:6] = True  # only a part below min_area_px: kept rather than nothing
    assert ink_polygon(tiny, 0.5, 50.0) is not None
    assert ink_polygon(np.zeros((10, 10), bool), 0.5, 4.0) is None


def test_same_config_is_idempotent_and_deterministic(small: DigitsSegmentSet, tmp_path: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in small.root.rglob("*")}
    again = generate_digits_segment(small.root, SMALL)
    assert again == small
    assert {p: p.stat().st_mtime_ns for p in small.root.rglob("*")} == stamps  # nothing written
    assert load_digits_segment(small.root) == small
    elsewhere = generate_digits_segment(tmp_path / "copy", SMALL)
    assert _files(elsewhere.root) == _files(small.root)  # byte-identical
    other = DigitsSegmentConfig(**{**SMALL.to_dict(), "seed": 4, "rare_classes": ()})
    assert _files(generate_digits_segment(tmp_path / "seed4", other).root) != _files(small.root)


def test_other_config_interrupted_runs_moves_and_foreign_folders(tmp_path: Path) -> None:
    one = DigitsSegmentConfig(pool_images=1, val_images=1, test_images=0)
    two = DigitsSegmentConfig(pool_images=2, val_images=1, test_images=0)
    root = tmp_path / "set"
    generate_digits_segment(root, one)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_digits_segment(root, two)
    replaced = generate_digits_segment(root, two, overwrite=True)
    assert len(replaced.image_paths("pool")) == 2 and replaced.image_paths("test") == []
    moved = root.rename(tmp_path / "moved")
    reopened = load_digits_segment(moved)
    assert yaml.safe_load(reopened.data_yaml.read_text())["path"] == str(moved)  # follows the move
    (moved / "manifest.json").unlink()  # as if killed before the manifest was written
    (moved / INCOMPLETE_MARKER).write_text("{}")
    with pytest.raises(ValueError, match="no complete"):
        load_digits_segment(moved)
    assert len(generate_digits_segment(moved, one).image_paths("pool")) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_digits_segment(foreign, one, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError):
        load_digits_segment(tmp_path / "missing")


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pool_images must be an integer >= 1"):
        DigitsSegmentConfig(pool_images=0)
    with pytest.raises(ValueError, match="canvas_min must be >= digit_size_max"):
        DigitsSegmentConfig(canvas_min=40, canvas_max=60)
    with pytest.raises(ValueError, match="simplify_tolerance_px must be a finite number >= 0"):
        DigitsSegmentConfig(simplify_tolerance_px=-1.0)
    with pytest.raises(ValueError, match="rare_classes must be distinct"):
        DigitsSegmentConfig(rare_classes=(1, 1))
    with pytest.raises(ValueError, match="unknown DigitsSegmentConfig"):
        DigitsSegmentConfig.from_dict({"pool_images": 1, "colour": "red"})
    with pytest.raises(TypeError, match="DigitsSegmentConfig"):
        generate_digits_segment(tmp_path / "x", {"pool_images": 1})  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()
    assert DigitsSegmentConfig.from_dict(json.loads(json.dumps(SMALL.to_dict()))) == SMALL
