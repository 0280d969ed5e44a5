"""Retrain and evaluate: labelled images -> a YOLO training set -> weights, by ONE recipe.

Everything that trains a detector in Labelwise goes through this module: the product's learn
round (:func:`labelwise.learn.retrain`) and the strategy benchmark (its rounds, its base detector
and its ceiling) write their training sets with :func:`write_training_set` and train with
:func:`train_round` under a :class:`~labelwise.config.TrainingSettings`. A change to the recipe
therefore shows in the benchmark's figures.

Evaluation is ALWAYS on the project's fixed held-out split (``set_holdout``), so rounds are
comparable; the training set never includes held-out images (they are not in the pool).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from labelwise.catalog import Catalog, CatalogError, ProjectRecord
from labelwise.config import TrainingSettings
from labelwise.domain import class_box_counts
from labelwise.masks import ImageSegments, write_segment_labels
from labelwise.task_types import TaskType

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.classifier import YoloClassifier
    from labelwise.detector import TrainResult, YoloDetector
    from labelwise.segmenter import YoloSegmenter


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


@dataclass(frozen=True)
class TrainingPlan:
    """What one training run gets from the recipe for a labelled set of ``n_images``.

    Attributes:
        epochs: :func:`epochs_for` of the recipe.
        batch: the recipe's batch, at most ``n_images``.
        seed: the recipe's seed unless the caller gives one (the benchmark seeds per trajectory).
        patience: early-stopping patience (0 = none).
        overrides: the remaining ultralytics arguments, identical for every caller.
    """

    epochs: int
    batch: int
    seed: int
    patience: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`YoloDetector.train` (besides data, out_dir and name)."""
        return {"epochs": self.epochs, "batch": self.batch, "seed": self.seed,
                "patience": self.patience, **self.overrides}


def training_plan(recipe: TrainingSettings, n_images: int, seed: int | None = None,
                  reviewed_images: int | None = None) -> TrainingPlan:
    """The recipe applied to a training set of ``n_images`` images.

    Epochs follow ``reviewed_images`` (default: all ``n_images``): a semi-supervised round adds
    pseudo-labelled images on top of the reviewed ones without taking passes away from them, so
    its training time grows by (reviewed + pseudo) / reviewed at most.

    mosaic off (a few dozen images are too few for mosaic to help), one warm-up epoch, AdamW at
    ``lr0`` and ``nbs = batch``: ultralytics otherwise accumulates gradients up to 64 images per
    step, which on a few dozen labelled images means one optimizer step every few epochs
    (measured: mAP50 0.01 -> 0.09 on 20 images, same 60 epochs).
    """
    epochs = epochs_for(reviewed_images or n_images, recipe.epochs, recipe.min_image_passes)
    batch = min(recipe.batch, n_images)
    overrides = {"mosaic": 0.0, "warmup_epochs": 1.0, "nbs": batch, "optimizer": recipe.optimizer,
                 "lr0": recipe.lr0}
    return TrainingPlan(epochs, batch, recipe.seed if seed is None else int(seed), recipe.patience,
                        overrides)


def train_round(
    detector: "YoloDetector | YoloClassifier | YoloSegmenter",
    data_yaml: Path,
    recipe: TrainingSettings,
    n_images: int,
    out_dir: Path,
    name: str,
    seed: int | None = None,
    reviewed_images: int | None = None,
) -> "TrainResult":
    """Fine-tune a copy of ``detector`` (or a classifier) on ``data_yaml`` (a classifier's:
    its classification folder; ``n_images`` images) by the recipe.

    Where the model starts is the caller's choice, named by ``recipe.start_from``: the product
    fine-tunes the champion (``champion``), the benchmark restarts every round from the same
    base (``base``) so that a round's model depends only on its labelled set.
    ``reviewed_images``: how many of the ``n_images`` carry reviewed labels (the rest are
    pseudo-labels; see :func:`training_plan`).
    """
    plan = training_plan(recipe, n_images, seed, reviewed_images)
    return detector.train(data_yaml, out_dir, name=name, **plan.as_kwargs())


@dataclass(frozen=True)
class LabelledImage:
    """One image of a training set: the file name stem to write, its source file, (N, 5) rows,
    and (a segmentation project's) the instance outlines of those rows, one per row."""

    name: str
    path: Path
    boxes: np.ndarray
    outlines: ImageSegments | None = None


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


def write_training_set(
    out_dir: Path,
    items: Sequence[LabelledImage],
    class_names: Sequence[str],
    val: str | Path,
    test: str | Path | None = None,
) -> TrainingSet:
    """Write ``items`` as a YOLO data set; the folder is replaced (ultralytics' cache with it).

    Images are symlinked (copied where links are not allowed) under ``out_dir/images`` as
    ``<name><suffix>`` with labels beside them in ``out_dir/labels``; ``data.yaml`` has absolute
    paths, ``val`` (ultralytics insists on one) and, when given, ``test``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images_dir, labels_dir = out_dir / "images", out_dir / "labels"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)
    for item in items:
        src = Path(item.path)
        if not src.is_file():
            raise FileNotFoundError(f"labelled image {src} is gone; restore it or reject the image")
        _link_or_copy(src.resolve(), images_dir / f"{item.name}{src.suffix.lower()}")
        if item.outlines is not None:  # ultralytics' segment format: cls x1 y1 ... per instance
            write_segment_labels(labels_dir / f"{item.name}.txt", item.outlines)
        else:
            write_yolo_labels(labels_dir / f"{item.name}.txt", item.boxes)
    counts = class_box_counts((item.boxes for item in items), len(class_names))
    data: dict[str, Any] = {
        "path": str(out_dir.resolve()),
        "train": str(images_dir.resolve()),
        "val": str(val),
        "names": dict(enumerate(class_names)),
    }
    if test is not None:
        data["test"] = str(test)
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return TrainingSet(
        out_dir, data_yaml, len(items), int(counts.sum()),
        {name: int(c) for name, c in zip(class_names, counts)},
    )


def build_training_set(
    catalog: Catalog,
    project: ProjectRecord,
    out_dir: Path,
    extra: Sequence[LabelledImage] = (),
) -> TrainingSet:
    """Write every labelled image of ``project`` plus ``extra`` as a YOLO data set.

    Reviewed images are named by their image id; ``extra`` (a semi-supervised round's
    pseudo-labelled images, :mod:`labelwise.pseudo_labels`) is written the same way by the same
    writer (:func:`write_training_set`) and is not stored anywhere else: the catalog's labels
    are untouched. An ``extra`` name that repeats a reviewed image's id (or another extra) is
    refused: a reviewed label always wins, so the caller must leave such images out.
    ``val`` points at the held-out set when one is fixed, else at the training images.
    """
    labels = catalog.labels(project)
    extras = list(extra)
    if not labels and not extras:
        raise CatalogError(
            f"project {project.name!r} has no labelled images to train on; review a queue first"
        )
    records = {r.image_id: r for r in catalog.images(project, image_ids=list(labels))}
    outlines = catalog.label_segments(project) if project.task_type is TaskType.SEGMENT else {}
    if project.task_type is TaskType.SEGMENT:
        bare = sorted(i for i, boxes in labels.items() if len(boxes) and i not in outlines)
        if bare:
            raise CatalogError(
                f"project {project.name!r} is a segmentation project but {len(bare)} labelled "
                f"image(s) have boxes without outlines: {bare[:5]}; expected outlines with every "
                "label (label them again with polygons, or reject them)")
    items = [LabelledImage(image_id, records[image_id].path, boxes, outlines.get(image_id))
             for image_id, boxes in labels.items() if image_id in records]
    taken = {item.name for item in items}
    seen: set[str] = set()
    clashes: list[str] = []
    for e in extras:
        if e.name in taken or e.name in seen:
            clashes.append(e.name)
        seen.add(e.name)
    if clashes:
        raise ValueError(
            f"extra training images must not repeat a reviewed image or each other; expected "
            f"unique names outside the {len(taken)} reviewed ids, got {clashes[:10]}"
        )
    items += extras
    holdout = _holdout_entries(project)
    images_dir = (Path(out_dir) / "images").resolve()
    return write_training_set(out_dir, items, project.class_names,
                              holdout.get("val", str(images_dir)), holdout.get("test"))


def holdout_classification_items(project: ProjectRecord) -> list[tuple[Path, int]]:
    """``(image, class id)`` of a classification project's held-out folder split
    (``<holdout>/<split>/<class>/<image>``). CatalogError when none is fixed."""
    from labelwise.classify_training import classification_items

    folder, split = holdout_data_yaml(project)
    return classification_items(folder, project.class_names, split)


def build_classification_training_set(catalog: Catalog, project: ProjectRecord, out_dir: Path) -> TrainingSet:
    """Every labelled image of a classification project in ultralytics' classification layout
    (:func:`labelwise.classify_training.write_classification_set`): ``train`` = the labelled
    images (each label is one whole-image row, :func:`labelwise.task_types.label_class`),
    ``val`` and ``test`` = the held-out folder's split (ultralytics validates on ``val`` after
    training). ``data_yaml`` of the result is the folder itself (what ultralytics takes as
    ``data``); ``n_boxes`` counts one label per image.

    Raises:
        CatalogError: no labelled image, or no held-out folder fixed (a classifier cannot be
            trained without the split it validates on).
    """
    from labelwise.classify_training import write_classification_set
    from labelwise.task_types import label_class

    labels = {i: rows for i, rows in catalog.labels(project).items() if len(rows)}
    if not labels:
        raise CatalogError(
            f"project {project.name!r} has no labelled images to train on; review a queue first")
    records = {r.image_id: r for r in catalog.images(project, image_ids=list(labels))}
    train = [(records[i].path, label_class(rows)) for i, rows in sorted(labels.items()) if i in records]
    held_out = holdout_classification_items(project)
    root = write_classification_set(out_dir, train, held_out, project.class_names, test=held_out)
    counts = np.bincount([c for _, c in train], minlength=len(project.class_names))
    return TrainingSet(root, root, len(train), len(train),
                       {name: int(c) for name, c in zip(project.class_names, counts)})


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
    """The fixed evaluation set: (data.yaml, split) of a detection project, (classification
    folder, split) of a classification project. CatalogError when none is fixed."""
    if project.holdout_yaml is None:
        raise CatalogError(
            f"project {project.name!r} has no held-out evaluation set; fix one with "
            f"`labelwise project set-holdout {project.name} DATA_YAML [--split test]`"
        )
    return Path(project.holdout_yaml), project.holdout_split
