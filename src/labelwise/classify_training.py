"""The training set of a classification project: ultralytics' classification folder layout.

Ultralytics trains and validates a classifier from one folder per class and split::

    <root>/train/<class folder>/<image>
    <root>/val/<class folder>/<image>
    <root>/test/<class folder>/<image>      (optional)

and numbers the classes by the **alphabetical** order of the folders below ``train/``
(``check_cls_dataset``: ``sorted(folder names)``; ``torchvision.datasets.ImageFolder`` sorts the
same way). A project numbers its classes in its own order, so :func:`class_folder_names` picks
folder names whose sorted order *is* the project's order:

* the class names themselves when they already sort in project order and are usable as folder
  names (the bundled digits ``"0"`` .. ``"9"``);
* otherwise ``<index>_<name>``, the index zero-padded to one width (``0_zebra``, ``1_apple``, ...;
  ``00_`` .. ``11_`` with twelve classes), with path separators and other characters a folder
  name cannot hold replaced by ``_``.

Either way every consumer of the folder (ultralytics' trainer and validator, ``yolo train
data=<root>``, torchvision's ``ImageFolder``) numbers the classes as the project does.
:class:`labelwise.classifier.YoloClassifier` also hands ultralytics the project's class names, so
its checkpoints carry the real names, never the prefixed folder names. Every class gets its
folder in every split, even with no image, so the class count never shrinks.

Images are hard-linked (copied where the file system refuses a link) under their own file name;
two different files of one class and split with the same name become ``<stem>-1<suffix>``, ...
Nothing here imports ultralytics; nothing happens at import time.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelwise.images import IMAGE_SUFFIXES

TRAIN_SPLIT = "train"
VAL_SPLIT = "val"
TEST_SPLIT = "test"
SPLITS: tuple[str, ...] = (TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT)
"""The split folders of the layout (ultralytics' names)."""

_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


# --------------------------------------------------------------------------------------------
# Class folders
# --------------------------------------------------------------------------------------------
def validate_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """``class_names`` as a tuple of str; ValueError unless there is at least one and all are
    unique and non-blank."""
    if isinstance(class_names, (str, bytes)):
        raise ValueError(f"class_names must be a sequence of names; got the string {class_names!r}")
    names = tuple(str(n) for n in class_names)
    if not names:
        raise ValueError("class_names must hold at least one class; got none")
    if len(set(names)) != len(names) or any(not n.strip() for n in names):
        raise ValueError(f"class_names must be unique and non-empty; got {list(names)}")
    return names


def _usable_as_folder(name: str) -> bool:
    """True when ``name`` can be a folder name as it is (no separators, no dot names)."""
    return (
        name == name.strip()
        and name not in {".", ".."}
        and not name.startswith(".")
        and _UNSAFE.search(name) is None
    )


def _sanitise(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name.strip()).lstrip(".")
    return cleaned or "_"


def class_folder_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """The folder of each class, in project order; ``sorted(folders) == list(folders)``.

    Args:
        class_names: the project's classes in order (unique, non-empty).

    Returns:
        (C,) folder names: ``class_names`` themselves when they already sort in project order and
        are valid folder names, else ``<index>_<sanitised name>`` with a zero-padded index.

    Raises:
        ValueError: empty or duplicate names, or (pathological) prefixed folder names that equal
            other class names (ultralytics would then match folders to classes by name).
    """
    names = validate_class_names(class_names)
    if all(_usable_as_folder(n) for n in names) and list(names) == sorted(names):
        return names
    width = len(str(len(names) - 1))
    folders = tuple(f"{i:0{width}d}_{_sanitise(n)}" for i, n in enumerate(names))
    clash = sorted(set(folders) & set(names))
    if clash:
        raise ValueError(
            f"cannot lay out classes {list(names)} for ultralytics: the ordered folder names "
            f"{clash} equal class names of other classes; expected class names that differ from "
            f"'<index>_<name>' of each other"
        )
    assert list(folders) == sorted(folders)  # fixed-width index prefixes sort numerically
    return folders


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; copy it where links are not possible (other device, ...)."""
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_items(
    split: str, items: Sequence[tuple[Path, int]], num_classes: int
) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    for k, item in enumerate(items):
        try:
            raw_path, raw_class = item
        except (TypeError, ValueError):
            raise ValueError(
                f"{split} item {k} must be a (path, class_id) pair; got {item!r}"
            ) from None
        if isinstance(raw_class, (bool, np.bool_)) or not isinstance(raw_class, (int, np.integer)):
            raise ValueError(
                f"{split} item {k} ({raw_path}) class_id must be an integer in [0, {num_classes}); "
                f"got {raw_class!r}"
            )
        class_id = int(raw_class)
        if not 0 <= class_id < num_classes:
            raise ValueError(
                f"{split} item {k} ({raw_path}) class_id must be in [0, {num_classes}); "
                f"got {class_id}"
            )
        path = Path(raw_path).expanduser()
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"{split} item {k}: {path} is not an image file ultralytics reads; expected a "
                f"suffix in {sorted(IMAGE_SUFFIXES)}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{split} item {k}: image {path} does not exist")
        out.append((path.resolve(), class_id))
    return out


def _clear_split(root: Path, split: str) -> None:
    folder = root / split
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)
    cache = root / f"{split}.cache"  # ultralytics' ClassificationDataset scan cache
    if cache.exists():
        cache.unlink()


def _write_split(
    root: Path, split: str, items: list[tuple[Path, int]], folders: tuple[str, ...]
) -> None:
    split_dir = root / split
    for folder in folders:  # every class, even without images: the class count never shrinks
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    taken: dict[Path, Path] = {}  # destination -> source
    for src, class_id in items:
        class_dir = split_dir / folders[class_id]
        dst = class_dir / src.name
        n = 0
        while dst in taken and taken[dst] != src:
            n += 1
            dst = class_dir / f"{src.stem}-{n}{src.suffix}"
        if dst in taken:  # the same file twice in one class of one split: one copy is enough
            continue
        taken[dst] = src
        _link_or_copy(src, dst)


def write_classification_set(
    root: Path,
    train: Sequence[tuple[Path, int]],
    val: Sequence[tuple[Path, int]],
    class_names: Sequence[str],
    test: Sequence[tuple[Path, int]] | None = None,
) -> Path:
    """Write images as ultralytics' classification layout; return the root for train/evaluate.

    The split folders (``train/``, ``val/``, ``test/``) and ultralytics' scan caches beside them
    are replaced; anything else under ``root`` is left alone. Class folders are named by
    :func:`class_folder_names`, so their sorted order is the project's class order.

    Args:
        root: the data set folder (created when missing).
        train, val: ``(image path, class id)`` pairs, class ids indexing ``class_names``; both
            need at least one image (ultralytics validates on ``val`` after training).
        class_names: the project's classes, in order.
        test: optional ``(image path, class id)`` pairs of a ``test`` split.

    Returns:
        ``root`` as an absolute path.

    Raises:
        ValueError: no train or val images, a class id outside ``[0, len(class_names))``, an
            unsupported image suffix, or bad class names (see :func:`class_folder_names`).
        FileNotFoundError: an image that does not exist.
    """
    folders = class_folder_names(class_names)
    num_classes = len(folders)
    splits: dict[str, list[tuple[Path, int]]] = {
        TRAIN_SPLIT: _check_items(TRAIN_SPLIT, train, num_classes),
        VAL_SPLIT: _check_items(VAL_SPLIT, val, num_classes),
    }
    for split in (TRAIN_SPLIT, VAL_SPLIT):
        if not splits[split]:
            raise ValueError(
                f"the {split} split needs at least one image (ultralytics trains on train and "
                f"validates on val); got 0"
            )
    if test is not None:
        splits[TEST_SPLIT] = _check_items(TEST_SPLIT, test, num_classes)
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"root must be a folder; {root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        _clear_split(root, split)
    for split, items in splits.items():
        _write_split(root, split, items, folders)
    return root


# --------------------------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------------------------
def check_classification_set(root: Path, class_names: Sequence[str], split: str) -> Path:
    """Check ``root`` is a classification layout of exactly ``class_names`` with ``split``.

    Ultralytics reads the class count and order from ``root/train`` and silently falls back to
    another split (or even re-splits the images) when one is missing; this check refuses those
    cases first.

    Args:
        root: a folder written by :func:`write_classification_set` (or laid out the same way).
        class_names: the model's classes, in order.
        split: the split that will be read besides ``train`` (``train``, ``val`` or ``test``).

    Returns:
        ``root`` as an absolute path.

    Raises:
        ValueError: an unknown split, or class folders that are not :func:`class_folder_names`
            of ``class_names`` (naming the expected and the found folders).
        FileNotFoundError: ``root``, ``root/train`` or ``root/<split>`` is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"classification data set {root} does not exist; expected a folder written by "
            f"write_classification_set"
        )
    expected = sorted(class_folder_names(class_names))
    for name in dict.fromkeys((TRAIN_SPLIT, split)):
        split_dir = root / name
        if not split_dir.is_dir():
            raise FileNotFoundError(
                f"classification data set {root} has no {name}/ split; expected "
                f"{name}/<class folder>/<image> (found {sorted(p.name for p in root.iterdir())})"
            )
        found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
        if found != expected:
            raise ValueError(
                f"{split_dir} class folders must match the classes {list(class_names)} in order; "
                f"expected folders {expected}, found {found}"
            )
    return root


def classification_items(root: Path, class_names: Sequence[str], split: str) -> list[tuple[Path, int]]:
    """``(image path, class id)`` of every image under ``root/<split>/<class folder>/``, sorted
    by path. A class's folder is its :func:`class_folder_names` name or the class name itself
    (a user's own held-out folder, ``test/cat/…``); a folder matching no class is refused.

    Raises:
        FileNotFoundError: no ``root/<split>`` folder.
        ValueError: an unknown split, a folder that is no class of ``class_names``, or no image.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
    names = validate_class_names(class_names)
    split_dir = Path(root).expanduser().resolve() / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"classification folder {split_dir} does not exist; expected "
                                f"{split_dir}/<class>/<image> for each class of {list(names)}")
    index = {folder: i for i, folder in enumerate(class_folder_names(names))}
    index.update({name: i for i, name in enumerate(names)})
    unknown = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and d.name not in index)
    if unknown:
        raise ValueError(f"{split_dir} holds folders {unknown} that are no class of {list(names)}; "
                         "expected one folder per class, named as the class")
    items = sorted((path, index[d.name]) for d in split_dir.iterdir() if d.is_dir()
                   for path in d.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not items:
        raise ValueError(f"{split_dir} holds no images; expected {split_dir}/<class>/<image>")
    return items
