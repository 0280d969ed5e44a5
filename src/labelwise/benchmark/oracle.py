"""The simulated annotator and the counts reported per round.

The oracle reveals an image's ground truth only when the image is "annotated", so a strategy
never sees labels it has not paid for. Counting helpers are pure functions.

Label files are read the way ultralytics users expect of real data sets: a box that crosses the
image edge (a corner outside [0, 1], e.g. a centre jittered to 1.0039) is clipped to the image
and kept; a line that cannot be a box (wrong field count, not numbers, unknown class, w or h <= 0,
nothing left inside the image) is skipped. Both are counted in a :class:`LabelReport` instead of
stopping the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_EXAMPLES = 5
# A corner at most this far outside [0, 1] is rounding noise (labels are written with 6
# decimals), not a box crossing the edge: it is clipped too, but not counted as clipped.
EDGE_TOLERANCE = 1e-6
_TEXT_CHARS = 60


@dataclass(frozen=True)
class LabelReport:
    """What reading YOLO label files found.

    Attributes:
        files: label files read (an image without a file has no objects and is not counted).
        boxes: boxes kept, clipped ones included.
        clipped: boxes that crossed the image edge, clipped to [0, 1] and kept.
        skipped: invalid lines left out (blank lines are neither boxes nor skipped).
        examples: up to :data:`MAX_EXAMPLES` skipped lines, each
            ``"<file>:<line>: <reason> (got '<text>')"``.
    """

    files: int = 0
    boxes: int = 0
    clipped: int = 0
    skipped: int = 0
    examples: tuple[str, ...] = ()

    def __add__(self, other: "LabelReport") -> "LabelReport":
        return LabelReport(self.files + other.files, self.boxes + other.boxes,
                           self.clipped + other.clipped, self.skipped + other.skipped,
                           (self.examples + other.examples)[:MAX_EXAMPLES])

    def describe(self) -> str:
        """One log line: ``labels: N boxes in F files; clipped X ..., skipped Y ... (e.g. ...)``."""
        line = (f"labels: {self.boxes} boxes in {self.files} files; clipped {self.clipped} that "
                f"crossed the image edge, skipped {self.skipped} invalid lines")
        if self.examples:
            line += f" (e.g. {'; '.join(self.examples[:2])})"
        return line


def _parse_label_line(text: str, num_classes: int) -> tuple[list[float] | None, bool, str]:
    """(row [cls, cx, cy, w, h] or None when skipped, whether it was clipped, why skipped).

    The reason states what was expected; the caller appends the line itself as what was got.
    """
    parts = text.split()
    if len(parts) != 5:
        return None, False, f"expected 5 fields 'cls cx cy w h', found {len(parts)}"
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None, False, "expected 5 numbers 'cls cx cy w h'"
    if not all(math.isfinite(v) for v in values):
        return None, False, "expected finite numbers"
    cls, cx, cy, w, h = values
    if cls < 0 or cls != int(cls) or cls >= num_classes:
        return None, False, f"expected an integer class id in 0..{num_classes - 1}"
    if w <= 0 or h <= 0:
        return None, False, "expected width and height > 0"
    corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if all(0.0 <= v <= 1.0 for v in corners):
        return [int(cls), cx, cy, w, h], False, ""  # kept bit for bit
    crossed = any(not -EDGE_TOLERANCE <= v <= 1.0 + EDGE_TOLERANCE for v in corners)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in corners)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None, False, "expected a box overlapping the image, it lies entirely outside"
    return [int(cls), (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], crossed, ""


def read_label_file(path: Path, num_classes: int) -> tuple[np.ndarray, LabelReport]:
    """One YOLO label file as (N, 5) float64 rows [cls, cx, cy, w, h], and what reading it found.

    Boxes crossing the image edge are clipped to it; invalid lines are skipped (see the module
    docstring). Undecodable bytes become invalid lines rather than an error.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    rows: list[list[float]] = []
    clipped = skipped = 0
    examples: list[str] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        row, was_clipped, reason = _parse_label_line(line, num_classes)
        if row is None:
            skipped += 1
            if len(examples) < MAX_EXAMPLES:
                shown = line if len(line) <= _TEXT_CHARS else line[: _TEXT_CHARS - 3] + "..."
                examples.append(f"{path.name}:{number}: {reason} (got '{shown}')")
            continue
        clipped += was_clipped
        rows.append(row)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return boxes, LabelReport(1, len(rows), clipped, skipped, tuple(examples))


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
        num_classes: class ids must be below this; lines with other ids are skipped.

    Boxes crossing the image edge are clipped, invalid lines skipped (see :func:`read_label_file`);
    :meth:`report` counts both over every file read so far.
    """

    def __init__(self, truth_dir: Path, num_classes: int) -> None:
        self.truth_dir = Path(truth_dir)
        if not self.truth_dir.is_dir():
            raise FileNotFoundError(f"truth labels folder {self.truth_dir} does not exist")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.num_classes = num_classes
        self.revealed: dict[str, np.ndarray] = {}
        self._report = LabelReport()

    def reveal(self, stem: str) -> np.ndarray:
        """(N, 5) float64 rows [cls, cx, cy, w, h] of image ``stem`` (N may be 0)."""
        if stem not in self.revealed:
            path = self.truth_dir / f"{stem}.txt"
            if path.is_file():
                boxes, found = read_label_file(path, self.num_classes)
                self._report = self._report + found
            else:
                boxes = np.zeros((0, 5), dtype=np.float64)
            self.revealed[stem] = boxes
        return self.revealed[stem]

    def reveal_many(self, stems: Iterable[str]) -> dict[str, np.ndarray]:
        return {s: self.reveal(s) for s in stems}

    def report(self) -> LabelReport:
        """Files, boxes, clipped boxes and skipped lines over every label file read so far."""
        return self._report

    @property
    def calls(self) -> int:
        return len(self.revealed)


class SegmentOracle(Oracle):
    """Reveals a segmentation truth: Ultralytics segment label files (``cls x1 y1 ... xK yK``
    per instance), as the (N, 5) box rows of the instances' outlines
    (:func:`labelwise.masks.segment_rows`) and, by :meth:`outlines`, the outlines themselves.

    Args:
        truth_dir: folder of ``<stem>.txt`` segment label files (missing file: no instances).
        num_classes: class ids must be below this (a larger one is an error naming the file).
        sizes: image stem -> (width, height) in pixels (polygons are normalised by them).

    A malformed line is an error naming the file and line (the segment parser's rule), not a
    skipped box: an outline cannot be clipped back into shape.
    """

    def __init__(self, truth_dir: Path, num_classes: int, sizes: Mapping[str, tuple[int, int]]) -> None:
        super().__init__(truth_dir, num_classes)
        self.sizes = dict(sizes)
        self._outlines: dict[str, Any] = {}

    def outlines(self, stem: str) -> Any:
        """The :class:`~labelwise.masks.ImageSegments` of image ``stem`` (one per row of
        :meth:`reveal`, in the same order)."""
        from labelwise.masks import ImageSegments, read_segment_labels

        if stem not in self._outlines:
            if stem not in self.sizes:
                raise KeyError(f"no image size known for {stem!r}; expected a pool image stem")
            width, height = self.sizes[stem]
            path = self.truth_dir / f"{stem}.txt"
            segments = (read_segment_labels(path, width, height) if path.is_file()
                        else ImageSegments(width, height, ()))
            bad = [i.class_id for i in segments.instances if not 0 <= i.class_id < self.num_classes]
            if bad:
                raise ValueError(f"{path}: class ids {bad} are not in 0..{self.num_classes - 1}")
            self._outlines[stem] = segments
        return self._outlines[stem]

    def reveal(self, stem: str) -> np.ndarray:
        if stem not in self.revealed:
            from labelwise.masks import segment_rows

            rows = segment_rows(self.outlines(stem))
            self.revealed[stem] = rows
            path = self.truth_dir / f"{stem}.txt"
            self._report = self._report + LabelReport(int(path.is_file()), len(rows))
        return self.revealed[stem]


def scan_labels(oracle: Oracle, stems: Iterable[str]) -> LabelReport:
    """Read the label files of ``stems`` once through ``oracle`` (a fresh one: the data set's)
    and report what was clipped and skipped.

    Meant for the start of a run, so the log says up front what the oracle will do with the
    data set (``report.describe()``).
    """
    for stem in stems:
        oracle.reveal(stem)
    return oracle.report()


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
