"""Pure mask geometry for instance segmentation: polygons, masks and Ultralytics segment labels.

Coordinates are pixels in the convention of OpenCV and Ultralytics: the pixel in row ``r`` and
column ``c`` has its centre at ``(x, y) = (c, r)``, so a polygon traced by
:func:`mask_to_polygons` runs through the centres of the mask's boundary pixels and
:func:`polygon_to_mask` gives that mask back (boundary included). A polygon is an outer contour:
a hole in a mask (the inside of a "0") is filled, as in Ultralytics' own segment format, which
holds one simple polygon per instance.

An Ultralytics segment label line is ``cls x1 y1 x2 y2 ... xK yK``: an integer class id, then the
K >= 3 vertices normalised by the image width (x) and height (y), each in [0, 1].

No I/O except :func:`read_segment_labels` / :func:`write_segment_labels`; nothing at import time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LABEL_DECIMALS = 6
"""Decimals of a normalised coordinate in a written label line (1e-6 of the image side)."""
MIN_VERTICES = 3


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"image {name} must be an integer >= 1 pixel; got {value!r}")


@dataclass(frozen=True, eq=False)
class Polygon:
    """One simple closed polygon in pixels.

    Attributes:
        points: (K, 2) float32 vertices ``x, y`` in pixels (see the module docstring), K >= 3,
            all finite; the last vertex connects back to the first. The array is a read-only
            copy of what was passed in.
    """

    points: np.ndarray

    def __post_init__(self) -> None:
        try:
            arr = np.array(self.points, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"polygon points must be numbers shaped (K, 2); got {self.points!r}") from exc
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"polygon points must be shaped (K, 2) with K >= {MIN_VERTICES}; got shape {arr.shape}")
        if arr.shape[0] < MIN_VERTICES:
            raise ValueError(
                f"a polygon needs at least {MIN_VERTICES} vertices; got {arr.shape[0]} ({arr.tolist()})"
            )
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr).all(axis=1)).sum())
            raise ValueError(f"polygon vertices must be finite; got {bad} of {arr.shape[0]} with NaN/inf")
        arr.setflags(write=False)
        object.__setattr__(self, "points", arr)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def area(self) -> float:
        """Enclosed area in square pixels (shoelace formula, float64, >= 0)."""
        return polygon_area(self)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of the vertices, in pixels."""
        lo, hi = self.points.min(axis=0), self.points.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def allclose(self, other: Polygon, *, rtol: float = 1e-6, atol: float = 1e-4) -> bool:
        """Same number of vertices, in the same order, each within ``atol + rtol * |x|`` pixels."""
        return self.points.shape == other.points.shape and bool(
            np.allclose(self.points, other.points, rtol=rtol, atol=atol)
        )


@dataclass(frozen=True, eq=False)
class SegmentInstance:
    """One object instance: its class id and its outline.

    Attributes:
        class_id: index into the project's class names, >= 0.
        polygon: the outline in pixels of the image it belongs to.
    """

    class_id: int
    polygon: Polygon

    def __post_init__(self) -> None:
        cid = self.class_id
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)) or cid < 0:
            raise ValueError(f"class_id must be an integer >= 0; got {cid!r}")
        if not isinstance(self.polygon, Polygon):
            raise TypeError(f"polygon must be a Polygon; got {type(self.polygon).__name__}")
        object.__setattr__(self, "class_id", int(cid))


@dataclass(frozen=True, eq=False)
class ImageSegments:
    """The instance polygons of one image.

    Attributes:
        width, height: the image size in pixels (what the normalised label coordinates refer to).
        instances: the instances, in label-file order.
    """

    width: int
    height: int
    instances: tuple[SegmentInstance, ...] = ()

    def __post_init__(self) -> None:
        _check_size(self.width, self.height)
        items = tuple(self.instances)
        for i, item in enumerate(items):
            if not isinstance(item, SegmentInstance):
                raise TypeError(f"instances[{i}] must be a SegmentInstance; got {type(item).__name__}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "instances", items)

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def class_ids(self) -> np.ndarray:
        """(N,) int64 class id of each instance."""
        return np.asarray([inst.class_id for inst in self.instances], dtype=np.int64)

    def masks(self) -> np.ndarray:
        """(N, height, width) bool: each instance's polygon rasterised by :func:`polygon_to_mask`."""
        out = np.zeros((len(self.instances), self.height, self.width), dtype=bool)
        for i, inst in enumerate(self.instances):
            out[i] = polygon_to_mask(inst.polygon, self.height, self.width)
        return out


# ------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------
def _as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array; got shape {arr.shape}")
    if arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a bool array (H, W); got dtype {arr.dtype}")
    return arr


def polygon_area(polygon: Polygon) -> float:
    """Area enclosed by ``polygon`` in square pixels (shoelace formula in float64; >= 0).

    A self-intersecting polygon gets the absolute value of its signed area.
    """
    p = polygon.points.astype(np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def polygon_to_mask(polygon: Polygon, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon.

    Vertices are rounded to the nearest pixel centre and filled with ``cv2.fillPoly`` (8-connected
    edges, boundary pixels included); parts outside the image are cut off.

    Args:
        polygon: vertices in pixels.
        height, width: the mask size in pixels.

    Returns:
        (height, width) bool mask.
    """
    _check_size(width, height)
    if not isinstance(polygon, Polygon):
        raise TypeError(f"polygon must be a Polygon; got {type(polygon).__name__}")
    limit = float(2**24)  # cv2 works in int32; a vertex far outside still clips correctly
    pts = np.rint(np.clip(polygon.points.astype(np.float64), -limit, limit)).astype(np.int32)
    out = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(out, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return out.astype(bool)


def mask_to_polygons(
    mask: np.ndarray, *, simplify_tolerance_px: float, min_area_px: float
) -> list[Polygon]:
    """Outer contours of a mask's connected regions as polygons, largest first.

    Each 8-connected region's outer boundary is traced (``cv2.findContours``, external only:
    holes are not returned and are filled by :func:`polygon_to_mask`) and simplified with the
    Douglas-Peucker algorithm (``cv2.approxPolyDP``) so that no boundary pixel centre lies more than
    ``simplify_tolerance_px`` from the polygon. A contour that keeps fewer than 3 vertices (a
    region one pixel thin, or a single pixel) or encloses less than ``min_area_px`` square pixels
    (shoelace area of the simplified polygon) is dropped.

    Args:
        mask: (H, W) bool.
        simplify_tolerance_px: >= 0 pixels; 0 keeps every corner of the traced boundary.
        min_area_px: >= 0 square pixels.

    Returns:
        The polygons sorted by area, largest first (ties by top-most, then left-most vertex);
        an empty list for an empty mask.

    Raises:
        ValueError: a mask that is not (H, W) bool, or a negative/non-finite tolerance or area.
    """
    m = _as_mask(mask)
    for name, value in (("simplify_tolerance_px", simplify_tolerance_px), ("min_area_px", min_area_px)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    if not m.any():
        return []
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    found: list[tuple[float, float, float, Polygon]] = []
    for contour in contours:
        simple = cv2.approxPolyDP(contour, float(simplify_tolerance_px), True) if simplify_tolerance_px > 0 else contour
        pts = simple.reshape(-1, 2)
        if pts.shape[0] < MIN_VERTICES:
            continue
        polygon = Polygon(pts.astype(np.float32))
        area = polygon_area(polygon)
        if area <= 0 or area < min_area_px:
            continue
        found.append((-area, float(pts[:, 1].min()), float(pts[:, 0].min()), polygon))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks of the same shape, in [0, 1].

    Two empty masks agree completely: their IoU is 1.0.
    """
    ma, mb = _as_mask(a, "a"), _as_mask(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"masks must have the same shape; got {ma.shape} and {mb.shape}")
    union = int(np.count_nonzero(ma | mb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(ma & mb)) / union


# ------------------------------------------------------------------------------------------
# Ultralytics segment labels
# ------------------------------------------------------------------------------------------
def polygon_to_label_line(
    class_id: int, polygon: Polygon, width: int, height: int, *, decimals: int | None = LABEL_DECIMALS
) -> str:
    """One Ultralytics segment label line ``cls x1 y1 ... xK yK`` (no newline).

    Vertices are normalised by ``width`` / ``height`` and clipped to [0, 1] (Ultralytics refuses
    coordinates outside). ``decimals=None`` writes each number with full float64 precision
    (``repr``), so that :func:`label_line_to_polygon` gives the float32 vertices back exactly.
    """
    SegmentInstance(class_id, polygon)  # validates
    _check_size(width, height)
    norm = polygon.points.astype(np.float64) / np.array([width, height], dtype=np.float64)
    norm = np.clip(norm, 0.0, 1.0).reshape(-1)
    if decimals is None:
        coords = " ".join(repr(float(v)) for v in norm)
    else:
        coords = " ".join(f"{v:.{decimals}f}" for v in norm)
    return f"{int(class_id)} {coords}"


def label_line_to_polygon(line: str, width: int, height: int, *, where: str = "label line") -> SegmentInstance:
    """Parse one segment label line into an instance with pixel vertices.

    Args:
        line: ``cls x1 y1 x2 y2 ... xK yK`` with K >= 3, coordinates normalised to [0, 1].
        width, height: image size in pixels.
        where: how errors name the line (e.g. ``path:3``).

    Raises:
        ValueError: naming ``where``, what was expected and what was found (an odd number of
            coordinates, fewer than 3 vertices, a non-integer class id, a non-number, a
            non-finite or out-of-range coordinate).
    """
    _check_size(width, height)
    parts = line.split()
    if len(parts) < 1 + 2 * MIN_VERTICES:
        raise ValueError(
            f"{where}: expected 'cls x1 y1 x2 y2 x3 y3 ...' (a class id and at least {MIN_VERTICES} "
            f"vertices); got {len(parts)} fields in {line.strip()!r}"
        )
    if (len(parts) - 1) % 2:
        raise ValueError(f"{where}: expected an even number of coordinates after the class id; got {len(parts) - 1}")
    try:
        cls = float(parts[0])
        coords = np.asarray([float(p) for p in parts[1:]], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: expected numbers 'cls x1 y1 ...'; got {line.strip()!r}") from None
    if not math.isfinite(cls) or cls < 0 or cls != int(cls):
        raise ValueError(f"{where}: expected a non-negative integer class id; got {parts[0]!r}")
    if not np.isfinite(coords).all():
        raise ValueError(f"{where}: expected finite coordinates; got NaN/inf in {line.strip()!r}")
    if (coords < 0).any() or (coords > 1).any():
        raise ValueError(
            f"{where}: expected coordinates normalised to [0, 1]; got values in "
            f"[{coords.min():g}, {coords.max():g}]"
        )
    pixels = coords.reshape(-1, 2) * np.array([width, height], dtype=np.float64)
    return SegmentInstance(int(cls), Polygon(pixels))


def format_segment_labels(segments: ImageSegments, *, decimals: int | None = LABEL_DECIMALS) -> str:
    """The text of a segment label file: one line per instance, each ending in a newline."""
    return "".join(
        polygon_to_label_line(inst.class_id, inst.polygon, segments.width, segments.height, decimals=decimals) + "\n"
        for inst in segments.instances
    )


def parse_segment_labels(text: str, width: int, height: int, *, source: str = "<text>") -> ImageSegments:
    """Parse the text of a segment label file (blank lines skipped; an empty text = no instances).

    Errors name ``source`` and the 1-based line number (see :func:`label_line_to_polygon`).
    """
    instances = [
        label_line_to_polygon(raw, width, height, where=f"{source}:{number}")
        for number, raw in enumerate(text.splitlines(), start=1)
        if raw.strip()
    ]
    return ImageSegments(width, height, tuple(instances))


def read_segment_labels(path: Path | str, width: int, height: int) -> ImageSegments:
    """Read one Ultralytics segment label file for an image of ``width`` x ``height`` pixels.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: a malformed line, naming the file and line number.
    """
    p = Path(path)
    return parse_segment_labels(p.read_text(encoding="utf-8"), width, height, source=str(p))


def write_segment_labels(
    path: Path | str, segments: ImageSegments, *, decimals: int | None = LABEL_DECIMALS
) -> Path:
    """Write one segment label file atomically (a temporary file renamed over ``path``)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(format_segment_labels(segments, decimals=decimals), encoding="utf-8")
    os.replace(tmp, p)
    return p


def segments_from_masks(
    masks: Sequence[np.ndarray] | np.ndarray,
    class_ids: Sequence[int],
    *,
    simplify_tolerance_px: float,
    min_area_px: float,
) -> tuple[ImageSegments, np.ndarray]:
    """One instance per mask: the largest polygon of :func:`mask_to_polygons` of each mask.

    Args:
        masks: N (H, W) bool masks of one image (or an (N, H, W) array), N >= 0.
        class_ids: N class ids.

    Returns:
        The image's segments (instances in mask order, masks without any polygon left out) and
        (K,) int64 indices of the masks that were kept.

    Raises:
        ValueError: counts or shapes that disagree, or no way to tell the image size (N = 0 given
            as a list: pass an (0, H, W) array).
    """
    arr = np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) bool; got shape {arr.shape}")
    if len(class_ids) != arr.shape[0]:
        raise ValueError(f"expected one class id per mask ({arr.shape[0]}); got {len(class_ids)}")
    instances, kept = [], []
    for i in range(arr.shape[0]):
        polygons = mask_to_polygons(arr[i], simplify_tolerance_px=simplify_tolerance_px, min_area_px=min_area_px)
        if polygons:
            instances.append(SegmentInstance(int(class_ids[i]), polygons[0]))
            kept.append(i)
    return ImageSegments(int(arr.shape[2]), int(arr.shape[1]), tuple(instances)), np.asarray(kept, dtype=np.int64)


def segment_rows(segments: ImageSegments) -> np.ndarray:
    """(N, 5) float64 YOLO rows ``[cls, cx, cy, w, h]`` (normalised) of each instance's polygon
    bounding box, clipped to the image: the box rows stored beside a segmentation label."""
    rows = np.zeros((len(segments), 5), np.float64)
    size = np.array([segments.width, segments.height], np.float64)
    for i, inst in enumerate(segments.instances):
        pts = np.clip(inst.polygon.points.astype(np.float64) / size, 0.0, 1.0)
        (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
        rows[i] = [inst.class_id, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
    return rows
