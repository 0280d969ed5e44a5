"""The rules every bundled data set generator follows for its folder (datasets.generated_folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelwise.datasets.generated_folder import GeneratedFolder, config_diff

FOLDER = GeneratedFolder("generate_things", "things set", "tests.things", 2, ("images", "manifest.json"),
                         ".things-incomplete")
CONFIG = {"size": 3, "seed": 0}


def _write_set(root: Path, config: dict, version: int = 2) -> None:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"png")
    (root / "manifest.json").write_text(json.dumps(
        {"format": "tests.things", "format_version": version, "config": config, "images": [{"file": "images/a.png"}]}))


def _complete(root: Path):
    return lambda manifest: all((root / e["file"]).is_file() for e in manifest["images"])


@pytest.mark.parametrize("make", [lambda root: None, lambda root: root.mkdir()])
def test_a_missing_or_empty_folder_is_written(tmp_path, make):
    root = tmp_path / "set"
    make(root)
    assert FOLDER.holds(root, CONFIG, False, _complete(root)) is False


def test_the_same_complete_set_is_reused_and_an_incomplete_one_rewritten(tmp_path):
    root = tmp_path / "set"
    _write_set(root, CONFIG)
    assert FOLDER.holds(root, CONFIG, False, _complete(root)) is True
    (root / "images" / "a.png").unlink()
    assert FOLDER.holds(root, CONFIG, False, _complete(root)) is False
    assert not (root / "manifest.json").exists()  # what it owned was cleared for the rewrite


def test_another_config_needs_overwrite_and_only_owned_entries_go(tmp_path):
    root = tmp_path / "set"
    _write_set(root, {"size": 3, "seed": 5})
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"things set generated with another config \(seed: 5 -> 0\); pass overwrite=True"):
        FOLDER.holds(root, CONFIG, False, _complete(root))
    assert (root / "manifest.json").exists()
    assert FOLDER.holds(root, CONFIG, True, _complete(root)) is False
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_another_manifest_version_is_another_set(tmp_path):
    root = tmp_path / "set"
    _write_set(root, CONFIG, version=1)
    with pytest.raises(FileExistsError, match=r"\(format version\)"):
        FOLDER.holds(root, CONFIG, False, _complete(root))


def test_an_interrupted_run_is_cleared(tmp_path):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / ".things-incomplete").write_text(json.dumps({"size": 9}))
    assert FOLDER.holds(root, CONFIG, False, _complete(root)) is False
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_foreign_folder_is_refused_even_with_overwrite(tmp_path, overwrite):
    root = tmp_path / "set"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a generated things set .*generate_things.*refusing"):
        FOLDER.holds(root, CONFIG, overwrite, _complete(root))
    assert (root / "keep.txt").read_text() == "mine"


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "set").write_text("x")
    with pytest.raises(FileExistsError, match="must be a folder"):
        FOLDER.holds(tmp_path / "set", CONFIG, True, _complete(tmp_path / "set"))


def test_config_diff_names_each_changed_key():
    assert config_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == "b: 2 -> 3; c: None -> 4"
    assert config_diff({"a": 1}, {"a": 1}) == "format version"
