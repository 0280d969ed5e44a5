"""The bundled digits data set: determinism, YOLO labels, tight boxes, long tail, near-duplicates,
domains, refusal of bad input and of folders that hold something else."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from labelwise.datasets.digits import (
    CLASS_NAMES,
    INK_THRESHOLD,
    DigitsConfig,
    class_probabilities,
    domain_sample_indices,
    generate_digits,
    load_dataset,
    read_yolo_labels,
    resolve_rare_classes,
)
from labelwise.datasets.digits.config import _sklearn_digits
from labelwise.datasets.digits.render import _render_example

SPLITS = ("pool", "val", "test")
TINY = DigitsConfig(pool_images=10, val_images=3, test_images=3, duplicate_cluster_fraction=0.6)
SHARED = DigitsConfig(pool_images=120, val_images=20, test_images=20, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One moderate target-domain data set shared by the read-only tests."""
    return generate_digits(tmp_path_factory.mktemp("digits") / "ds", SHARED)


@pytest.fixture(scope="module")
def manifest(dataset):
    return json.loads(dataset.manifest.read_text())


def _entries(manifest, split):
    return [e for e in manifest["images"] if e["split"] == split]


def _pixel_boxes(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 5) normalised YOLO rows -> (N, 4) int pixel corners x0, y0, x1, y1, ends exclusive."""
    cx, cy = labels[:, 1] * width, labels[:, 2] * height
    w, h = labels[:, 3] * width, labels[:, 4] * height
    return np.rint(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)).astype(int)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in {".png", ".txt", ".json"}
    }


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_writes_identical_bytes(tmp_path):
    a = _files(generate_digits(tmp_path / "a", TINY).root)
    b = _files(generate_digits(tmp_path / "b", TINY).root)
    assert len([k for k in a if k.endswith(".png")]) == 16
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]


def test_different_seed_writes_different_images(tmp_path):
    a = _files(generate_digits(tmp_path / "a", TINY).root)
    b = _files(generate_digits(tmp_path / "b", dataclasses.replace(TINY, seed=1)).root)
    pngs = [k for k in a if k.endswith(".png")]
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in pngs)


# ---------------------------------------------------------------------------------------------
# Layout, labels, boxes
# ---------------------------------------------------------------------------------------------
def test_layout_pool_has_no_labels_beside_it(dataset, manifest):
    root = dataset.root
    assert dataset.pool_images == root / "pool" / "images"
    assert not (root / "pool" / "labels").exists()
    assert sorted(p.name for p in (root / "pool").iterdir()) == ["images"]
    assert not list((root / "pool").rglob("*.txt"))
    pool = dataset.image_paths("pool")
    assert len(pool) == SHARED.pool_images == manifest["splits"]["pool"]["images"]
    assert [p.name for p in pool] == [f"pool_{i:06d}.png" for i in range(SHARED.pool_images)]
    assert sorted(p.stem for p in dataset.pool_truth.glob("*.txt")) == [p.stem for p in pool]
    for split, n in (("val", SHARED.val_images), ("test", SHARED.test_images)):
        images = dataset.image_paths(split)
        assert len(images) == n
        stems = sorted(p.stem for p in (root / split / "labels").glob("*.txt"))
        assert stems == [p.stem for p in images]


def test_data_yaml_is_absolute_and_points_at_val_and_test(dataset):
    text = dataset.data_yaml.read_text()
    data = yaml.safe_load(text)
    root = dataset.root
    assert root.is_absolute()
    assert data["path"] == str(root)
    assert data["val"] == str(root / "val" / "images")
    assert data["test"] == str(root / "test" / "images")
    assert data["train"] == str(root / "val" / "images")  # documented placeholder
    assert data["names"] == {i: str(i) for i in range(10)}
    assert "pool" not in "".join(line for line in text.splitlines() if not line.startswith("#"))


@pytest.mark.parametrize("split", SPLITS)
def test_labels_parse_and_boxes_lie_inside_the_canvas(dataset, manifest, split):
    entries = _entries(manifest, split)
    assert entries
    for entry in entries:
        image = Image.open(dataset.root / entry["file"])
        assert image.mode == "RGB" and image.format == "PNG"
        assert image.size == (entry["width"], entry["height"])
        assert 96 <= image.size[0] <= 160 and 96 <= image.size[1] <= 160
        labels = read_yolo_labels(dataset.truth_path(entry["file"], split))
        assert labels.shape == (entry["boxes"], 5)
        assert 1 <= entry["boxes"] <= 6
        assert labels[:, 0].astype(int).tolist() == entry["classes"]
        left, right = labels[:, 1] - labels[:, 3] / 2, labels[:, 1] + labels[:, 3] / 2
        top, bottom = labels[:, 2] - labels[:, 4] / 2, labels[:, 2] + labels[:, 4] / 2
        assert (left >= -1e-6).all() and (top >= -1e-6).all()
        assert (right <= 1 + 1e-6).all() and (bottom <= 1 + 1e-6).all()
        # Box heights: the ink of a 14-48 px digit cell, stretched/rotated a little.
        heights = labels[:, 4] * entry["height"]
        assert (heights >= 4).all() and (heights <= 48 * 1.3).all()


def test_manifest_counts_match_the_label_files(dataset, manifest):
    for split in SPLITS:
        counts = np.zeros(10, int)
        for entry in _entries(manifest, split):
            labels = read_yolo_labels(dataset.truth_path(entry["file"], split))
            np.add.at(counts, labels[:, 0].astype(int), 1)
        stats = manifest["splits"][split]
        assert [stats["class_box_counts"][n] for n in CLASS_NAMES] == counts.tolist()
        assert stats["boxes"] == counts.sum()


@pytest.mark.parametrize(
    ("config", "split", "index", "jitter_seed"),
    [
        (DigitsConfig(seed=0), "pool", 0, None),
        (DigitsConfig(seed=1), "val", 5, None),
        (DigitsConfig(seed=2), "pool", 3, 11),
        (DigitsConfig(seed=4, domain="source"), "test", 2, None),
        (DigitsConfig(seed=5, digit_size_min=40, digit_size_max=48), "pool", 1, 7),
        (DigitsConfig(seed=6, digit_size_min=8, digit_size_max=12), "pool", 9, None),
    ],
)
def test_box_is_exactly_the_ink_extent(config, split, index, jitter_seed):
    """Each box is the smallest one holding every pixel whose coverage reaches INK_THRESHOLD."""
    rendered = _render_example(config, split, index, jitter_seed=jitter_seed)
    assert len(rendered.boxes) >= 1
    for i, (x0, y0, x1, y1) in enumerate(rendered.boxes.tolist()):
        ink = rendered.coverage(i) >= INK_THRESHOLD
        assert ink[y0:y1, x0:x1].sum() == ink.sum() > 0  # nothing outside
        assert ink[y0, x0:x1].any() and ink[y1 - 1, x0:x1].any()  # cannot shrink vertically
        assert ink[y0:y1, x0].any() and ink[y0:y1, x1 - 1].any()  # ... nor horizontally
        h, w = ink.shape
        assert 1 <= x0 < x1 <= w - 1 and 1 <= y0 < y1 <= h - 1  # a 1-px ring fits in the canvas


@pytest.mark.parametrize("split", SPLITS)
def test_written_boxes_hold_ink_and_the_ring_outside_holds_less(dataset, manifest, split):
    """On the PNGs: pixels far from the ring's median colour are ink; the box has more of them."""
    inside_fracs, ring_fracs = [], []
    for entry in _entries(manifest, split):
        pixels = np.asarray(Image.open(dataset.root / entry["file"]), dtype=np.float32) / 255
        labels = read_yolo_labels(dataset.truth_path(entry["file"], split))
        for x0, y0, x1, y1 in _pixel_boxes(labels, entry["width"], entry["height"]).tolist():
            ring = np.concatenate([
                pixels[y0 - 1, x0 - 1 : x1 + 1], pixels[y1, x0 - 1 : x1 + 1],
                pixels[y0:y1, x0 - 1], pixels[y0:y1, x1],
            ])
            reference = np.median(ring, axis=0)
            inside = np.abs(pixels[y0:y1, x0:x1] - reference).max(axis=-1) > 0.15
            outside = np.abs(ring - reference).max(axis=-1) > 0.15
            inside_fracs.append(inside.mean())
            ring_fracs.append(outside.mean())
    inside_fracs, ring_fracs = np.array(inside_fracs), np.array(ring_fracs)
    assert (inside_fracs > 0.05).mean() >= 0.97, np.sort(inside_fracs)[:10]
    assert (inside_fracs > ring_fracs).mean() >= 0.97
    assert np.median(inside_fracs) > 0.3 and np.median(ring_fracs) < 0.1


def test_digits_do_not_overlap_much_and_every_image_has_one(tmp_path):
    config = DigitsConfig(
        pool_images=6, val_images=20, test_images=1, canvas_min=64, canvas_max=72,
        digits_min=8, digits_max=12, digit_size_min=20, digit_size_max=40, max_box_overlap=0.05,
    )
    ds = generate_digits(tmp_path / "crowded", config)
    manifest = ds.read_manifest()
    entries = _entries(manifest, "val")  # val has no jittered near-duplicates
    assert all(e["boxes"] >= 1 for e in manifest["images"])
    assert sum(e["digits_skipped"] for e in entries) > 0  # the crowding really forced skips
    for entry in entries:
        labels = read_yolo_labels(ds.truth_path(entry["file"], "val"))
        boxes = _pixel_boxes(labels, entry["width"], entry["height"])
        for a, b in itertools.combinations(boxes.tolist(), 2):
            iw = min(a[2], b[2]) - max(a[0], b[0])
            ih = min(a[3], b[3]) - max(a[1], b[1])
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            assert max(iw, 0) * max(ih, 0) <= 0.05 * smaller + 1e-9


# ---------------------------------------------------------------------------------------------
# Class distribution
# ---------------------------------------------------------------------------------------------
def test_pool_class_distribution_is_long_tailed(manifest):
    counts = manifest["splits"]["pool"]["class_box_counts"]
    rare = manifest["rare_classes"]
    assert rare == [2, 5, 8]
    rare_counts = [counts[str(c)] for c in rare]
    common_counts = [counts[str(c)] for c in range(10) if c not in rare]
    assert max(rare_counts) < min(common_counts), counts
    total = sum(counts.values())
    assert sum(rare_counts) / total < 0.1  # expected 0.05
    assert max(common_counts) / total > 0.15  # the head: expected 0.24
    assert max(common_counts) >= 1.5 * min(common_counts)  # expected 7 ** 0.5 = 2.6


@pytest.mark.parametrize(
    ("kwargs", "rare"),
    [
        ({}, (2, 5, 8)),
        ({"rare_classes": (0,), "rare_fraction": 0.01}, (0,)),
        ({"rare_classes": (), "long_tail_exponent": 1.5}, ()),
        ({"rare_classes": None, "num_rare_classes": 4, "seed": 9}, None),
        ({"long_tail_exponent": 0.0}, (2, 5, 8)),
    ],
)
def test_class_probabilities(kwargs, rare):
    config = DigitsConfig(**kwargs)
    probs = class_probabilities(config)
    resolved = resolve_rare_classes(config)
    if rare is not None:
        assert resolved == rare
    else:
        assert len(resolved) == 4 and resolved == resolve_rare_classes(config)  # seed-stable
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-12
    common = [c for c in range(10) if c not in resolved]
    if resolved:
        assert abs(probs[list(resolved)].sum() - config.rare_fraction) < 1e-12
        assert probs[list(resolved)].max() < probs[common].min()
    if config.long_tail_exponent == 0:
        assert np.allclose(probs[common], probs[common][0])
    else:
        ranked = np.sort(probs[common])[::-1]
        np.testing.assert_allclose(
            ranked / ranked[0], np.arange(1, len(common) + 1) ** -config.long_tail_exponent
        )


def test_seed_chooses_different_rare_classes():
    chosen = {resolve_rare_classes(DigitsConfig(rare_classes=None, seed=s)) for s in range(8)}
    assert len(chosen) > 1


# ---------------------------------------------------------------------------------------------
# Near-duplicate clusters
# ---------------------------------------------------------------------------------------------
def _small(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).resize((64, 64), Image.Resampling.BILINEAR), np.float32)


def test_near_duplicate_clusters_exist_and_look_alike(dataset, manifest):
    pool = _entries(manifest, "pool")
    clusters: dict[int, list[dict]] = {}
    for entry in pool:
        clusters.setdefault(entry["cluster_id"], []).append(entry)
    multi = [c for c in clusters.values() if len(c) > 1]
    in_clusters = sum(len(c) for c in multi)
    assert manifest["splits"]["pool"]["near_duplicate_clusters"] == len(multi) >= 3
    assert abs(in_clusters - SHARED.duplicate_cluster_fraction * SHARED.pool_images) <= 1
    assert all(2 <= len(c) <= 8 for c in multi)
    assert all(e["cluster_size"] == len(clusters[e["cluster_id"]]) for e in pool)
    for split in ("val", "test"):
        assert all(e["cluster_size"] == 1 for e in _entries(manifest, split))

    within = []
    for members in multi:
        assert len({(e["width"], e["height"]) for e in members}) == 1
        assert len({tuple(sorted(e["classes"])) for e in members}) == 1
        a, b = members[0], members[1]
        diff = _small(dataset.root / a["file"]) - _small(dataset.root / b["file"])
        within.append(np.abs(diff).mean())
    singles = [c[0] for c in clusters.values() if len(c) == 1]
    rng = np.random.default_rng(0)
    between = []
    for _ in range(30):
        i, j = rng.choice(len(singles), 2, replace=False)
        between.append(np.abs(
            _small(dataset.root / singles[i]["file"]) - _small(dataset.root / singles[j]["file"])
        ).mean())
    assert np.median(within) < 0.4 * np.median(between), (np.median(within), np.median(between))
    assert max(within) < np.median(between)


# ---------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------
def test_domain_halves_are_disjoint_and_cover_the_sklearn_digits():
    target, source = domain_sample_indices("target"), domain_sample_indices("source")
    assert not set(target.tolist()) & set(source.tolist())
    assert sorted(target.tolist() + source.tolist()) == list(range(1797))
    _, labels = _sklearn_digits()
    for idx in (target, source):
        assert set(labels[idx].tolist()) == set(range(10))
    with pytest.raises(ValueError, match="domain must be one of"):
        domain_sample_indices("other")


def test_source_domain_uses_other_digit_samples_and_darker_backgrounds(tmp_path, dataset, manifest):
    config = dataclasses.replace(
        TINY, pool_images=12, domain="source", duplicate_cluster_fraction=0.0
    )
    source = generate_digits(tmp_path / "source", config)
    source_manifest = source.read_manifest()
    used_target = {s for e in manifest["images"] for s in e["digit_samples"]}
    used_source = {s for e in source_manifest["images"] for s in e["digit_samples"]}
    assert used_target and used_source and not used_target & used_source
    assert all(s % 2 == 0 for s in used_target) and all(s % 2 == 1 for s in used_source)
    assert source_manifest["sklearn_samples"]["rule"] != manifest["sklearn_samples"]["rule"]

    def median_luma(paths) -> float:
        means = [np.asarray(Image.open(p).convert("L"), np.float32).mean() for p in paths]
        return float(np.median(means))

    target_luma = median_luma(dataset.image_paths("val"))
    source_luma = median_luma(source.image_paths("pool"))
    assert source_luma + 40 < target_luma, (source_luma, target_luma)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field", "expected", "actual"),
    [
        ({"pool_images": -1}, "pool_images", "an integer >= 1", "got -1"),
        ({"val_images": 0}, "val_images", "an integer >= 1", "got 0"),
        ({"test_images": -3}, "test_images", "an integer >= 0", "got -3"),
        ({"pool_images": 2.5}, "pool_images", "an integer >= 1", "got 2.5"),
        ({"pool_images": True}, "pool_images", "an integer >= 1", "got True"),
        ({"digits_min": 4, "digits_max": 2}, "digits_min", "<= digits_max",
         "got digits_min=4, digits_max=2"),
        ({"digits_min": 0}, "digits_min", "an integer >= 1", "got 0"),
        ({"canvas_min": 200, "canvas_max": 150}, "canvas_min", "<= canvas_max",
         "got canvas_min=200, canvas_max=150"),
        ({"canvas_min": 40, "canvas_max": 60}, "canvas_min", ">= digit_size_max (48)",
         "got canvas_min=40"),
        ({"digit_size_min": 30, "digit_size_max": 20}, "digit_size_min", "<= digit_size_max",
         "got digit_size_min=30, digit_size_max=20"),
        ({"digit_size_min": 4}, "digit_size_min", "an integer >= 8", "got 4"),
        ({"rare_classes": (3, 3)}, "rare_classes", "distinct class ids in 0..9", "got (3, 3)"),
        ({"rare_classes": (10,)}, "rare_classes", "distinct class ids in 0..9", "got (10,)"),
        ({"rare_classes": tuple(range(10))}, "rare_classes", "at most 9 of them", "got (0, 1,"),
        ({"rare_classes": "25"}, "rare_classes", "a tuple of distinct class ids", "got '25'"),
        ({"num_rare_classes": 10, "rare_classes": None}, "num_rare_classes", "< 10", "got 10"),
        ({"rare_fraction": 1.0}, "rare_fraction", "a number in [0, 1)", "got 1.0"),
        ({"rare_fraction": -0.1}, "rare_fraction", "a number in [0, 1)", "got -0.1"),
        ({"long_tail_exponent": -1.0}, "long_tail_exponent", "finite number >= 0", "got -1.0"),
        ({"long_tail_exponent": float("nan")}, "long_tail_exponent", "finite number >= 0",
         "got nan"),
        ({"duplicate_cluster_fraction": 1.5}, "duplicate_cluster_fraction", "a number in [0, 1]",
         "got 1.5"),
        ({"max_box_overlap": -0.2}, "max_box_overlap", "a number in [0, 1]", "got -0.2"),
        ({"cluster_size_min": 1}, "cluster_size_min", "an integer >= 2", "got 1"),
        ({"cluster_size_min": 9, "cluster_size_max": 4}, "cluster_size_min",
         "<= cluster_size_max", "got cluster_size_min=9, cluster_size_max=4"),
        ({"distractors_max": -1}, "distractors_max", "an integer >= 0", "got -1"),
        ({"domain": "sauce"}, "domain", "one of ['target', 'source']", "got 'sauce'"),
        ({"seed": -1}, "seed", "an integer >= 0", "got -1"),
    ],
)
def test_bad_config_is_refused_naming_field_expected_and_actual(kwargs, field, expected, actual):
    with pytest.raises(ValueError) as info:
        DigitsConfig(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{field} must ")
    assert expected in message and actual in message, message


def test_config_round_trips_through_dict():
    config = DigitsConfig(rare_classes=(1, 7), seed=12, domain="source")
    assert DigitsConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown DigitsConfig field\(s\) \['colour'\]"):
        DigitsConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_generate_refuses_a_non_config(tmp_path):
    with pytest.raises(TypeError, match="config must be a DigitsConfig; got dict"):
        generate_digits(tmp_path / "x", {"seed": 1})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# read_yolo_labels
# ---------------------------------------------------------------------------------------------
def test_read_yolo_labels_valid_and_empty(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert read_yolo_labels(empty).shape == (0, 5)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert read_yolo_labels(blank).shape == (0, 5)
    good = tmp_path / "good.txt"
    good.write_text("3 0.500000 0.250000 0.100000 0.200000\n\n9 0.1 0.9 0.05 0.05\n")
    rows = read_yolo_labels(good)
    assert rows.dtype == np.float64
    np.testing.assert_allclose(rows, [[3, 0.5, 0.25, 0.1, 0.2], [9, 0.1, 0.9, 0.05, 0.05]])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", r"expected 5 fields 'cls cx cy w h'; got 4"),
        ("0 0.5 0.5 0.2 0.2 0.9", r"expected 5 fields 'cls cx cy w h'; got 6"),
        ("a 0.5 0.5 0.2 0.2", r"expected 5 numbers"),
        ("0 0.5 nan 0.2 0.2", r"expected finite numbers"),
        ("-1 0.5 0.5 0.2 0.2", r"expected a non-negative integer class id; got '-1'"),
        ("1.5 0.5 0.5 0.2 0.2", r"expected a non-negative integer class id; got '1.5'"),
        ("0 1.5 0.5 0.2 0.2", r"expected cx, cy, w, h normalised to \[0, 1\]"),
        ("0 0.5 0.5 0 0.2", r"expected box width and height > 0"),
    ],
)
def test_read_yolo_labels_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(f"1 0.5 0.5 0.1 0.1\n\n{line}\n")
    with pytest.raises(ValueError, match=message) as info:
        read_yolo_labels(path)
    assert f"{path}:3:" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Writing into existing folders, re-opening
# ---------------------------------------------------------------------------------------------
def test_refuses_a_foreign_non_empty_folder_even_with_overwrite(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a generated digits data set"):
            generate_digits(out, TINY, overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_refuses_a_file_as_out(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(FileExistsError, match="is not a directory"):
        generate_digits(out, TINY)


def test_same_config_reuses_other_config_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    (out).mkdir()  # an empty folder is fine
    first = generate_digits(out, TINY)
    before = _files(out)
    stamp = first.manifest.stat().st_mtime_ns
    again = generate_digits(out, TINY)
    assert again == first and _files(out) == before
    assert first.manifest.stat().st_mtime_ns == stamp  # nothing rewritten

    other = dataclasses.replace(TINY, seed=5)
    with pytest.raises(FileExistsError, match=r"another config \(seed: 0 -> 5\).*overwrite=True"):
        generate_digits(out, other)
    assert _files(out) == before

    (out / "README.txt").write_text("kept")
    replaced = generate_digits(out, other, overwrite=True)
    assert replaced.config == other
    assert load_dataset(out).config == other
    assert (out / "README.txt").read_text() == "kept"  # only owned entries were replaced
    assert _files(out) != before


def test_regenerates_missing_files_of_the_same_config(tmp_path):
    ds = generate_digits(tmp_path / "ds", TINY)
    before = _files(ds.root)
    victim = ds.image_paths("val")[0]
    victim.unlink()
    generate_digits(ds.root, TINY)
    assert _files(ds.root) == before


def test_load_dataset_round_trip_and_errors(tmp_path):
    ds = generate_digits(tmp_path / "ds", TINY)
    assert load_dataset(ds.root) == ds
    assert load_dataset(str(ds.root)).class_names == CLASS_NAMES

    moved = tmp_path / "moved"
    ds.root.rename(moved)
    reopened = load_dataset(moved)
    assert reopened.root == moved.resolve()
    data = yaml.safe_load(reopened.data_yaml.read_text())
    assert data["path"] == str(moved.resolve())
    assert data["val"] == str(moved.resolve() / "val" / "images")

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"not a generated digits data set: .*no such file"):
        load_dataset(empty)
    (empty / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="a different or unreadable file"):
        load_dataset(empty)
