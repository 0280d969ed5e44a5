"""Retrain and evaluate: labelled images from the catalog -> a YOLO training set -> weights.

Evaluation is ALWAYS on the project's fixed held-out split (``set_holdout``), so rounds are
comparable; the training set never includes held-out images (they are not in the pool).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from labelwise.catalog import Catalog, CatalogError, ProjectRecord
from labelwise.domain import class_box_counts


@dataclass(frozen=True)
class TrainingSet:
    """A YOLO data set written for one round."""

    root: Path
    data_yaml: Path
    n_images: int
    n_boxes: int
    class_box_counts: dict[str, int]


def epochs_for(n_images: int, epochs: int, min_image_passes: int) -> int:
    """Epochs so that epochs x images reaches ``min_image_passes`` (tiny sets still learn).

    >>> epochs_for(10, 30, 600)
    60
    >>> epochs_for(100, 30, 600)
    30
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1; got {n_images}")
    return max(epochs, math.ceil(min_image_passes / n_images))


def write_yolo_labels(path: Path, boxes: np.ndarray) -> None:
    """Write (N, 5) [cls, cx, cy, w, h] rows as a YOLO label file."""
    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    lines = [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}" for r in rows]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_training_set(
    catalog: Catalog,
    project: ProjectRecord,
    out_dir: Path,
    extra_labels: Mapping[Path, np.ndarray] | None = None,
) -> TrainingSet:
    """Write every labelled image of ``project`` (plus ``extra_labels``) as a YOLO data set.

    Images are symlinked (copied where links are not allowed) under ``out_dir/images`` with
    labels beside them in ``out_dir/labels``; ``data.yaml`` has absolute paths. ``val`` points at
    the held-out set when one is fixed (ultralytics insists on a val entry), else at train.
    """
    labels = catalog.labels(project)
    if not labels and not extra_labels:
        raise CatalogError(
            f"project {project.name!r} has no labelled images to train on; review a queue first"
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images_dir, labels_dir = out_dir / "images", out_dir / "labels"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)
    records = {r.image_id: r for r in catalog.images(project, image_ids=list(labels))}
    items: list[tuple[str, Path, np.ndarray]] = [
        (image_id, records[image_id].path, boxes) for image_id, boxes in labels.items() if image_id in records
    ]
    items += [(Path(p).stem, Path(p), b) for p, b in (extra_labels or {}).items()]
    for name, src, boxes in items:
        if not src.is_file():
            raise FileNotFoundError(f"labelled image {src} is gone; restore it or reject the image")
        _link_or_copy(src, images_dir / f"{name}{src.suffix.lower()}")
        write_yolo_labels(labels_dir / f"{name}.txt", boxes)
    counts = class_box_counts((boxes for _, _, boxes in items), len(project.class_names))
    holdout = _holdout_entries(project)
    data = {
        "path": str(out_dir.resolve()),
        "train": str(images_dir.resolve()),
        "val": holdout.get("val", str(images_dir.resolve())),
        "names": dict(enumerate(project.class_names)),
    }
    if "test" in holdout:
        data["test"] = holdout["test"]
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return TrainingSet(
        out_dir, data_yaml, len(items), int(counts.sum()),
        {name: int(c) for name, c in zip(project.class_names, counts)},
    )


def _holdout_entries(project: ProjectRecord) -> dict[str, str]:
    """Absolute val/test image folders of the project's held-out data yaml."""
    if project.holdout_yaml is None:
        return {}
    data = yaml.safe_load(Path(project.holdout_yaml).read_text())
    base = Path(data.get("path") or Path(project.holdout_yaml).parent)
    out = {}
    for key in ("val", "test"):
        if data.get(key):
            value = Path(data[key])
            out[key] = str(value if value.is_absolute() else (base / value).resolve())
    if project.holdout_split in out:
        out["val"] = out[project.holdout_split]
    return out


def holdout_data_yaml(project: ProjectRecord) -> tuple[Path, str]:
    """The fixed evaluation set: (data.yaml, split). CatalogError when none is fixed."""
    if project.holdout_yaml is None:
        raise CatalogError(
            f"project {project.name!r} has no held-out evaluation set; fix one with "
            f"`labelwise project set-holdout {project.name} DATA_YAML [--split test]`"
        )
    return Path(project.holdout_yaml), project.holdout_split
