"""The simulated annotator and the counts reported per round.

The oracle reveals an image's ground truth only when the image is "annotated", so a strategy
never sees labels it has not paid for. Counting helpers are pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from labelwise.datasets import read_yolo_labels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def pool_image_paths(folder: Path) -> list[Path]:
    """Image files of a pool folder, sorted by name (the order every index refers to)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"pool images folder {folder} does not exist; expected a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"pool images folder {folder} holds no images; expected {IMAGE_SUFFIXES}")
    return paths


class Oracle:
    """Reveals YOLO ground truth per image stem and remembers what it revealed.

    Args:
        truth_dir: folder of ``<stem>.txt`` YOLO label files. A missing file means "no objects"
            (ultralytics' convention for background images).
        num_classes: class ids must be below this.
    """

    def __init__(self, truth_dir: Path, num_classes: int) -> None:
        self.truth_dir = Path(truth_dir)
        if not self.truth_dir.is_dir():
            raise FileNotFoundError(f"truth labels folder {self.truth_dir} does not exist")
        self.num_classes = num_classes
        self.revealed: dict[str, np.ndarray] = {}

    def reveal(self, stem: str) -> np.ndarray:
        """(N, 5) float64 rows [cls, cx, cy, w, h] of image ``stem`` (N may be 0)."""
        if stem not in self.revealed:
            path = self.truth_dir / f"{stem}.txt"
            boxes = read_yolo_labels(path) if path.is_file() else np.zeros((0, 5))
            if len(boxes) and boxes[:, 0].max() >= self.num_classes:
                raise ValueError(
                    f"{path}: class ids must be < {self.num_classes}; got {int(boxes[:, 0].max())}"
                )
            self.revealed[stem] = boxes
        return self.revealed[stem]

    def reveal_many(self, stems: Iterable[str]) -> dict[str, np.ndarray]:
        return {s: self.reveal(s) for s in stems}

    @property
    def calls(self) -> int:
        return len(self.revealed)


def rare_boxes(labels: Iterable[np.ndarray], rare_classes: Sequence[int]) -> int:
    """Boxes of ``rare_classes`` over several (N, 5) label arrays."""
    rare = np.asarray(list(rare_classes), dtype=np.int64)
    return int(sum(np.isin(np.asarray(b)[:, 0].astype(int), rare).sum() for b in labels if len(b)))


def near_duplicates(
    picks: Sequence[str], labelled: Iterable[str], cluster_of: Mapping[str, int]
) -> int:
    """Picks sharing a cluster id with an already-labelled image or an earlier pick.

    Images absent from ``cluster_of`` are their own cluster (never counted).
    """
    seen = {cluster_of[s] for s in labelled if s in cluster_of}
    count = 0
    for stem in picks:
        cid = cluster_of.get(stem)
        if cid is None:
            continue
        if cid in seen:
            count += 1
        seen.add(cid)
    return count


def rare_from_counts(counts: np.ndarray, share: float = 0.05) -> tuple[int, ...]:
    """Classes holding less than ``share`` of all boxes (classes with no box included)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return ()
    return tuple(int(i) for i in np.flatnonzero(counts / total < share))


def read_manifest_info(manifest: Path | None, split: str = "pool") -> tuple[dict[str, int], tuple[int, ...] | None]:
    """(stem -> cluster id, rare classes) from a digits manifest; ({}, None) without one."""
    if manifest is None or not Path(manifest).is_file():
        return {}, None
    data = json.loads(Path(manifest).read_text(encoding="utf-8"))
    clusters = {
        Path(entry["file"]).stem: int(entry["cluster_id"])
        for entry in data.get("images", [])
        if entry.get("split") == split and "cluster_id" in entry
    }
    rare = data.get("rare_classes")
    return clusters, (tuple(int(c) for c in rare) if rare is not None else None)
