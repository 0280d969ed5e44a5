"""The bundled digits classification set: layout, truth, disjoint samples, determinism,
idempotence and the refusals of generate_digits_classify."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelwise.datasets.digits_classify import (
    INCOMPLETE_MARKER,
    MANIFEST_FORMAT,
    DigitsClassifyConfig,
    DigitsClassifySet,
    generate_digits_classify,
    load_digits_classify,
)

DIGITS = tuple(str(d) for d in range(10))
SMALL = {"per_class_pool": 3, "per_class_test": 2, "seed": 4, "imgsz": 24}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DigitsClassifySet:
    return generate_digits_classify(tmp_path_factory.mktemp("dc") / "set", **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_truth_and_images(small: DigitsClassifySet) -> None:
    root = small.root
    assert small.class_names == DIGITS and small.config == DigitsClassifyConfig(**SMALL)
    assert sorted(p.name for p in root.iterdir()) == [
        "manifest.json", "pool", "pool_labels", "pool_truth.json", "test"
    ]
    pool_files = sorted(p.name for p in small.pool_dir.iterdir())
    assert len(pool_files) == 30 and all(p.is_file() for p in small.pool_dir.iterdir())
    truth = small.pool_truth()
    assert sorted(truth) == pool_files
    assert Counter(truth.values()) == {c: 3 for c in range(10)}
    from labelwise.datasets.digits.labels import read_yolo_labels
    from labelwise.task_types import classification_label, label_class
    for name, class_id in truth.items():  # the label a classified image gets, as the annotator reads it
        rows = read_yolo_labels(small.pool_labels_dir / f"{Path(name).stem}.txt")
        np.testing.assert_array_equal(rows, classification_label(class_id))
        assert label_class(rows) == class_id
    assert [t for _, t in small.pool_items()[:10]] != sorted(t for _, t in small.pool_items()[:10])
    assert sorted(p.name for p in small.test_dir.iterdir()) == list(DIGITS)
    test = small.test_items()
    assert len(test) == 20 and all(path.parent.name == DIGITS[c] for path, c in test)
    for path, _ in [*small.pool_items()[:5], *test[:5]]:
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.size == (24, 24)
            assert np.asarray(im).std() > 5  # not a blank image


def test_manifest_records_disjoint_samples_of_the_right_class(small: DigitsClassifySet) -> None:
    from sklearn.datasets import load_digits

    manifest = json.loads(small.manifest.read_text())
    assert manifest["format"] == MANIFEST_FORMAT and manifest["class_names"] == list(DIGITS)
    assert manifest["config"] == {**SMALL, "domain": "target"}
    assert manifest["counts"] == {"pool": 30, "test": 20}
    labels = load_digits().target
    entries = manifest["images"]
    assert all(labels[e["sample"]] == e["class_id"] for e in entries)
    samples = [e["sample"] for e in entries]
    assert len(set(samples)) == len(samples)  # pool and test never share a digit sample
    assert all(s % 2 == 0 for s in samples)  # the target domain's samples only
    truth = small.pool_truth()
    for e in entries:
        if e["split"] == "pool":
            assert truth[Path(e["file"]).name] == e["class_id"]


def test_source_domain_draws_the_other_samples_on_its_own_backgrounds(
    small: DigitsClassifySet, tmp_path: Path
) -> None:
    source = generate_digits_classify(tmp_path / "source", **SMALL, domain="source")
    entries = json.loads(source.manifest.read_text())["images"]
    assert entries and all(e["sample"] % 2 == 1 for e in entries)
    assert _files(source.root) != _files(small.root)


def test_same_config_is_idempotent_and_deterministic(
    small: DigitsClassifySet, tmp_path: Path
) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in small.root.rglob("*")}
    again = generate_digits_classify(small.root, **SMALL)
    assert again == small
    assert {p: p.stat().st_mtime_ns for p in small.root.rglob("*")} == stamps  # nothing written
    assert load_digits_classify(small.root) == small
    elsewhere = generate_digits_classify(tmp_path / "copy", **SMALL)
    assert _files(elsewhere.root) == _files(small.root)  # byte-identical
    other_seed = generate_digits_classify(tmp_path / "seed5", **{**SMALL, "seed": 5})
    assert _files(other_seed.root) != _files(small.root)


def test_other_config_interrupted_runs_and_foreign_folders(tmp_path: Path) -> None:
    root = tmp_path / "set"
    generate_digits_classify(root, per_class_pool=1, per_class_test=0, imgsz=16)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_digits_classify(root, per_class_pool=2, per_class_test=0, imgsz=16)
    replaced = generate_digits_classify(
        root, per_class_pool=2, per_class_test=0, imgsz=16, overwrite=True
    )
    assert len(replaced.pool_items()) == 20 and replaced.test_items() == []
    (root / "manifest.json").unlink()  # as if killed before the manifest was written
    (root / INCOMPLETE_MARKER).write_text("{}")
    with pytest.raises(ValueError, match="no complete"):
        load_digits_classify(root)
    assert len(generate_digits_classify(root, per_class_pool=1, imgsz=16).pool_items()) == 10
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_digits_classify(foreign, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_bad_configs_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="<= 86 .*in the target domain.*got 90"):
        generate_digits_classify(tmp_path / "a", per_class_pool=80, per_class_test=10)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="domain must be one of"):
        generate_digits_classify(tmp_path / "d", domain="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="imgsz must be an integer >= 16"):
        generate_digits_classify(tmp_path / "b", imgsz=8)
    with pytest.raises(ValueError, match="per_class_pool must be an integer >= 1"):
        generate_digits_classify(tmp_path / "c", per_class_pool=0)
    with pytest.raises(ValueError, match="unknown DigitsClassifyConfig"):
        DigitsClassifyConfig.from_dict({"per_class_pool": 1, "colour": "red"})
    with pytest.raises(FileNotFoundError):
        load_digits_classify(tmp_path / "missing")
