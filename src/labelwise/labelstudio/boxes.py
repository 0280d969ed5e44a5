"""Pure box conversions between YOLO, pixel corners and Label Studio rectangle regions.

Three coordinate systems, all for an axis-aligned box in an image of ``width`` x ``height`` pixels:

* YOLO: ``(cx, cy, w, h)`` normalised to the image, each in [0, 1].
* pixel xyxy: ``(x1, y1, x2, y2)`` corners in pixels (what :class:`~labelwise.domain.Detections`
  stores).
* Label Studio rectangle: ``(x, y, width, height)`` of the top-left corner and size in PERCENT of
  the image (0-100), ``rotation`` in degrees clockwise around the top-left corner, plus the
  region's ``original_width``/``original_height`` in pixels.

Classes go to Label Studio by NAME and come back by name: never by position (Label Studio's own
YOLO export orders classes alphabetically).

No I/O here; everything is float64 numpy arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labelwise.domain import Detections

RECTANGLE_TYPE = "rectanglelabels"


# ------------------------------------------------------------------------------------------
# Array conversions
# ------------------------------------------------------------------------------------------
def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be (N, 4); got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got NaN/inf")
    return arr


def _check_size(width: float, height: float) -> None:
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"image size must be positive and finite; got {width} x {height}")


def yolo_to_xyxy(yolo: Any, width: float, height: float) -> np.ndarray:
    """YOLO boxes to pixel corners.

    Args:
        yolo: (N, 4) ``cx, cy, w, h`` normalised to [0, 1] (a single (4,) box is accepted).
        width, height: image size in pixels.

    Returns:
        (N, 4) float64 ``x1, y1, x2, y2`` in pixels.
    """
    _check_size(width, height)
    b = _as_boxes(yolo, "yolo boxes")
    scale = np.array([width, height, width, height], dtype=np.float64)
    half = b[:, 2:] / 2.0
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1) * scale


def xyxy_to_yolo(xyxy: Any, width: float, height: float) -> np.ndarray:
    """Pixel corners to YOLO boxes.

    Args:
        xyxy: (N, 4) ``x1, y1, x2, y2`` in pixels with ``x2 >= x1`` and ``y2 >= y1``.
        width, height: image size in pixels.

    Returns:
        (N, 4) float64 ``cx, cy, w, h`` normalised to the image.
    """
    _check_size(width, height)
    b = _as_boxes(xyxy, "xyxy boxes")
    if b.size and ((b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any()):
        raise ValueError("xyxy boxes must have x2 >= x1 and y2 >= y1; got inverted corners")
    scale = np.array([width, height, width, height], dtype=np.float64)
    n = b / scale
    return np.concatenate([(n[:, :2] + n[:, 2:]) / 2.0, n[:, 2:] - n[:, :2]], axis=1)


def yolo_to_ls_rect(yolo: Any) -> np.ndarray:
    """YOLO boxes to Label Studio rectangles (independent of the image size).

    Args:
        yolo: (N, 4) ``cx, cy, w, h`` normalised to [0, 1].

    Returns:
        (N, 4) float64 ``x, y, width, height`` in percent of the image.
    """
    b = _as_boxes(yolo, "yolo boxes")
    return np.concatenate([b[:, :2] - b[:, 2:] / 2.0, b[:, 2:]], axis=1) * 100.0


def ls_rect_to_yolo(rect: Any) -> np.ndarray:
    """Label Studio rectangles (rotation 0) to YOLO boxes.

    Args:
        rect: (N, 4) ``x, y, width, height`` in percent of the image.

    Returns:
        (N, 4) float64 ``cx, cy, w, h`` normalised to [0, 1].
    """
    b = _as_boxes(rect, "Label Studio rectangles") / 100.0
    return np.concatenate([b[:, :2] + b[:, 2:] / 2.0, b[:, 2:]], axis=1)


def xyxy_to_ls_rect(xyxy: Any, width: float, height: float) -> np.ndarray:
    """Pixel corners to Label Studio rectangles: (N, 4) ``x, y, width, height`` in percent."""
    return yolo_to_ls_rect(xyxy_to_yolo(xyxy, width, height))


def ls_rect_to_xyxy(rect: Any, width: float, height: float) -> np.ndarray:
    """Label Studio rectangles (percent, rotation 0) to (N, 4) pixel corners."""
    return yolo_to_xyxy(ls_rect_to_yolo(rect), width, height)


def rotated_rect_envelope(
    x: float, y: float, w: float, h: float, rotation: float, width: float, height: float
) -> tuple[float, float, float, float]:
    """Axis-aligned envelope of a rotated Label Studio rectangle, in percent.

    Label Studio rotates a rectangle clockwise by ``rotation`` degrees around its top-left corner
    ``(x, y)``, in pixel space (so the image size matters when it is not square).

    Returns:
        ``(x, y, width, height)`` in percent of the image, not clipped.
    """
    _check_size(width, height)
    theta = math.radians(rotation)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    x0, y0 = x / 100.0 * width, y / 100.0 * height
    pw, ph = w / 100.0 * width, h / 100.0 * height
    corners = [(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)]
    xs = [x0 + dx * cos_t - dy * sin_t for dx, dy in corners]
    ys = [y0 + dx * sin_t + dy * cos_t for dx, dy in corners]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    return (x1 / width * 100.0, y1 / height * 100.0, (x2 - x1) / width * 100.0,
            (y2 - y1) / height * 100.0)


# ------------------------------------------------------------------------------------------
# Label Studio results
# ------------------------------------------------------------------------------------------
def rectangle_region(
    rect: Sequence[float],
    label: str,
    width: int,
    height: int,
    *,
    region_id: str,
    score: float | None = None,
    from_name: str = "label",
    to_name: str = "image",
) -> dict[str, Any]:
    """One ``rectanglelabels`` result item.

    Args:
        rect: ``x, y, width, height`` in percent of the image.
        label: the class NAME (must be a label of the project's config).
        width, height: original image size in pixels.
        region_id: id unique within the task's result list.
        score: per-region confidence in [0, 1], or None to leave it out.
    """
    x, y, w, h = (float(v) for v in rect)
    region: dict[str, Any] = {
        "id": region_id,
        "type": RECTANGLE_TYPE,
        "from_name": from_name,
        "to_name": to_name,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            RECTANGLE_TYPE: [label],
        },
    }
    if score is not None:
        region["score"] = float(score)
    return region


def detections_to_yolo(dets: Detections, width: int, height: int) -> np.ndarray:
    """Detections of one image as (N, 5) YOLO rows ``cls, cx, cy, w, h`` (normalised).

    Boxes are clipped to the image first, exactly as :func:`detections_to_ls_result` clips the
    pre-annotations it sends, so both describe the same boxes.
    """
    _check_size(width, height)
    if len(dets) == 0:
        return np.zeros((0, 5), np.float64)
    xyxy = np.asarray(dets.xyxy, dtype=np.float64).copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
    yolo = xyxy_to_yolo(xyxy, width, height)
    return np.concatenate([np.asarray(dets.class_id, np.float64)[:, None], yolo], axis=1)


def detections_to_ls_result(
    dets: Detections,
    class_names: Sequence[str],
    width: int,
    height: int,
    from_name: str = "label",
    to_name: str = "image",
) -> list[dict[str, Any]]:
    """Detections of one image as Label Studio pre-annotation regions.

    Args:
        dets: N boxes in pixel xyxy of the original image; boxes are clipped to the image.
        class_names: the project's class names, indexed by ``dets.class_id``.
        width, height: original image size in pixels.
        from_name, to_name: the RectangleLabels and Image tag names of the label config.

    Returns:
        N ``rectanglelabels`` regions (percent coordinates, rotation 0) with ``score`` = the box
        confidence (rounded to 6 decimals), region ids ``"b0"``, ``"b1"``, ...

    Raises:
        ValueError: a class id outside ``class_names`` or a non-positive image size.
    """
    _check_size(width, height)
    n = len(dets)
    if n and int(dets.class_id.max()) >= len(class_names):
        raise ValueError(
            f"class_id {int(dets.class_id.max())} has no name; expected ids in "
            f"[0, {len(class_names) - 1}] for class_names {list(class_names)}"
        )
    xyxy = np.asarray(dets.xyxy, dtype=np.float64).copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
    rects = xyxy_to_ls_rect(xyxy, width, height) if n else np.zeros((0, 4))
    return [
        rectangle_region(
            rects[i],
            class_names[int(dets.class_id[i])],
            width,
            height,
            region_id=f"b{i}",
            score=round(float(dets.confidence[i]), 6),
            from_name=from_name,
            to_name=to_name,
        )
        for i in range(n)
    ]


def yolo_to_ls_result(
    labels: Any,
    class_names: Sequence[str],
    width: int,
    height: int,
    from_name: str = "label",
    to_name: str = "image",
) -> list[dict[str, Any]]:
    """YOLO label rows as Label Studio regions (e.g. a simulated annotator's answer).

    Args:
        labels: (N, 5) ``cls, cx, cy, w, h`` with normalised coordinates.
        class_names: names indexed by ``cls``.
        width, height: original image size in pixels.
    """
    arr = np.asarray(labels, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f"labels must be (N, 5) [cls, cx, cy, w, h]; got shape {arr.shape}")
    cls = arr[:, 0]
    if (cls != np.round(cls)).any() or cls.min() < 0 or cls.max() >= len(class_names):
        raise ValueError(
            f"class ids must be integers in [0, {len(class_names) - 1}] for class_names "
            f"{list(class_names)}; got {sorted(set(cls.tolist()))}"
        )
    rects = yolo_to_ls_rect(arr[:, 1:])
    return [
        rectangle_region(
            rects[i], class_names[int(cls[i])], width, height,
            region_id=f"y{i}", from_name=from_name, to_name=to_name,
        )
        for i in range(arr.shape[0])
    ]


def ls_result_to_yolo(
    result: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    from_name: str | None = None,
) -> np.ndarray:
    """A Label Studio annotation/prediction result as YOLO label rows, classes mapped BY NAME.

    Only ``rectanglelabels`` items are read (choices, text areas, relations... are ignored), and
    only those of ``from_name`` when given. Boxes are clipped to the image; boxes left with no
    area are dropped. A rotated rectangle becomes its axis-aligned envelope (this needs the
    region's ``original_width``/``original_height``).

    Args:
        result: the ``result`` list of an annotation or prediction.
        class_names: the project's class names; row ``cls`` is the index of the region's label.

    Returns:
        (N, 5) float64 ``cls, cx, cy, w, h`` with coordinates normalised to [0, 1].

    Raises:
        ValueError: a label not in ``class_names`` (the message lists the known names), a region
            with other than exactly one label, or a malformed value.
    """
    index = {name: i for i, name in enumerate(class_names)}
    rows: list[list[float]] = []
    for k, item in enumerate(result):
        if item.get("type") != RECTANGLE_TYPE:
            continue
        if from_name is not None and item.get("from_name") != from_name:
            continue
        value = item.get("value") or {}
        labels = value.get(RECTANGLE_TYPE) or []
        if len(labels) != 1:
            raise ValueError(
                f"result[{k}] (id {item.get('id')!r}) must carry exactly one label; got {labels}"
            )
        label = labels[0]
        if label not in index:
            raise ValueError(
                f"unknown label {label!r} in result[{k}] (id {item.get('id')!r}); "
                f"expected one of {list(class_names)}"
            )
        try:
            x, y, w, h = (float(value[key]) for key in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"result[{k}] value must have numeric x, y, width, height; got {value}"
            ) from exc
        rotation = float(value.get("rotation") or 0.0)
        if rotation % 360.0 != 0.0:
            ow, oh = item.get("original_width"), item.get("original_height")
            if not ow or not oh:
                raise ValueError(
                    f"result[{k}] is rotated by {rotation} degrees; expected original_width and "
                    f"original_height to compute its envelope, got {ow} x {oh}"
                )
            x, y, w, h = rotated_rect_envelope(x, y, w, h, rotation, float(ow), float(oh))
        x1, y1 = min(max(x, 0.0), 100.0), min(max(y, 0.0), 100.0)
        x2, y2 = min(max(x + w, 0.0), 100.0), min(max(y + h, 0.0), 100.0)
        if x2 <= x1 or y2 <= y1:
            continue
        cx, cy, bw, bh = ls_rect_to_yolo([x1, y1, x2 - x1, y2 - y1])[0]
        rows.append([float(index[label]), cx, cy, bw, bh])
    if not rows:
        return np.zeros((0, 5), dtype=np.float64)
    return np.asarray(rows, dtype=np.float64)
