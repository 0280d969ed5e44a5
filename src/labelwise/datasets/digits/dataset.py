"""A generated digits data set on disk: :class:`DigitsDataset` (its paths), data.yaml, the
manifest, and :func:`load_dataset` to re-open a data set written by ``generate_digits``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelwise.datasets.generated_folder import GeneratedFolder

from .config import CLASS_NAMES, NUM_CLASSES, SPLITS, DigitsConfig, Split

MANIFEST_FORMAT = "labelwise.datasets.digits"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_YAML_NAME = "data.yaml"
INCOMPLETE_MARKER = ".digits-incomplete"
OWNED_ENTRIES = ("pool", "pool_truth", "val", "test", DATA_YAML_NAME, MANIFEST_NAME)
DIGITS_FOLDER = GeneratedFolder("generate_digits", "digits data set", MANIFEST_FORMAT, MANIFEST_VERSION,
                                OWNED_ENTRIES, INCOMPLETE_MARKER)


@dataclass(frozen=True)
class DigitsDataset:
    """A generated digits data set (see the module docstring for the layout). Paths are absolute.

    Attributes:
        root: the data set folder.
        data_yaml: ultralytics data file. ``path`` is ``root``; ``val`` and ``test`` point at the
            val/test images; ``train`` is a placeholder pointing at val/images because
            ultralytics requires the key (the trainer writes its own data file for the labelled
            set). The pool is not listed in it.
        pool_images: ``root/pool/images``; no labels folder beside it.
        pool_truth: ``root/pool_truth/labels``, one YOLO file per pool image, same stem.
        val_images, test_images: ``root/<split>/images`` with ``root/<split>/labels`` beside.
        class_names: ``("0", ..., "9")``.
        manifest: ``root/manifest.json``.
        config: the configuration the data set was generated with.
    """

    root: Path
    data_yaml: Path
    pool_images: Path
    pool_truth: Path
    val_images: Path
    test_images: Path
    class_names: tuple[str, ...]
    manifest: Path
    config: DigitsConfig

    @property
    def val_labels(self) -> Path:
        return self.val_images.parent / "labels"

    @property
    def test_labels(self) -> Path:
        return self.test_images.parent / "labels"

    def image_dir(self, split: Split) -> Path:
        """The images folder of ``split``."""
        dirs = {"pool": self.pool_images, "val": self.val_images, "test": self.test_images}
        if split not in dirs:
            raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return dirs[split]

    def label_dir(self, split: Split) -> Path:
        """Where the ground truth of ``split`` lives (``pool_truth`` for the pool)."""
        dirs = {"pool": self.pool_truth, "val": self.val_labels, "test": self.test_labels}
        if split not in dirs:
            raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return dirs[split]

    def image_paths(self, split: Split) -> list[Path]:
        """The PNGs of ``split``, sorted by name."""
        return sorted(self.image_dir(split).glob("*.png"))

    def truth_path(self, image: Path | str, split: Split = "pool") -> Path:
        """The ground-truth label file of ``image`` (same stem, ``.txt``)."""
        return self.label_dir(split) / f"{Path(image).stem}.txt"

    def read_manifest(self) -> dict[str, Any]:
        """The parsed manifest.json."""
        return json.loads(self.manifest.read_text(encoding="utf-8"))


def _dataset_for(root: Path, config: DigitsConfig) -> DigitsDataset:
    return DigitsDataset(
        root=root,
        data_yaml=root / DATA_YAML_NAME,
        pool_images=root / "pool" / "images",
        pool_truth=root / "pool_truth" / "labels",
        val_images=root / "val" / "images",
        test_images=root / "test" / "images",
        class_names=CLASS_NAMES,
        manifest=root / MANIFEST_NAME,
        config=config,
    )


def _data_yaml_text(root: Path) -> str:
    import yaml  # pyyaml is a project dependency; imported on use

    body = {
        "path": str(root),
        "train": str(root / "val" / "images"),
        "val": str(root / "val" / "images"),
        "test": str(root / "test" / "images"),
        "nc": NUM_CLASSES,
        "names": {i: name for i, name in enumerate(CLASS_NAMES)},
    }
    header = (
        "# Written by labelwise.datasets.digits. Paths are absolute.\n"
        "# `train` is a placeholder (val/images): ultralytics requires the key; the trainer\n"
        "# writes its own data file for the labelled images. The unlabelled pool is deliberately\n"
        "# absent; its ground truth is in pool_truth/labels, for the simulated annotator only.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """The parsed manifest when ``root`` holds one of ours, else None."""
    return DIGITS_FOLDER.read_manifest(root)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_dataset(root: Path | str) -> DigitsDataset:
    """Re-open a data set written by :func:`generate_digits` from its manifest.

    When the folder was moved (data.yaml's ``path`` is not ``root``) or data.yaml is missing,
    data.yaml is rewritten for the current location; nothing else is touched.

    Raises:
        FileNotFoundError: when ``root`` does not exist.
        ValueError: when ``root`` holds no manifest written by :func:`generate_digits`.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data set root {root} does not exist; expected a folder written by generate_digits"
        )
    manifest = _read_manifest(root)
    if manifest is None:
        exists = (root / MANIFEST_NAME).exists()
        found = "a different or unreadable file" if exists else "no such file"
        raise ValueError(
            f"{root} is not a generated digits data set: expected {root / MANIFEST_NAME} with "
            f"format {MANIFEST_FORMAT!r}; got {found}"
        )
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{root / MANIFEST_NAME} has format_version {manifest.get('format_version')!r}; "
            f"expected {MANIFEST_VERSION}"
        )
    config = DigitsConfig.from_dict(manifest["config"])
    dataset = _dataset_for(root, config)
    if _data_yaml_root(dataset.data_yaml) != str(root):
        _write_atomic(dataset.data_yaml, _data_yaml_text(root))
    return dataset


def _data_yaml_root(path: Path) -> str | None:
    """The ``path`` entry of a data.yaml, or None when it is missing or unreadable."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(data.get("path")) if isinstance(data, dict) else None
