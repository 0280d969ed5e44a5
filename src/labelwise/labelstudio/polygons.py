"""Pure conversions between instance polygons and Label Studio ``polygonlabels`` regions.

Label Studio stores a polygon's vertices as ``value.points``: a list of ``[x, y]`` pairs in
PERCENT of the image width (x) and height (y), 0-100, with the region's
``original_width``/``original_height`` in pixels beside them. Labelwise polygons
(:class:`labelwise.masks.Polygon`) are in pixels, so a round trip multiplies and divides by the
image size and keeps the vertices within float32 precision (about 1e-7 relative).

Classes go to Label Studio by NAME and come back by name, never by position, as for boxes
(:mod:`labelwise.labelstudio.boxes`).

No I/O here; nothing happens at import time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from labelwise.labelstudio.label_config import _PALETTE, label_hotkeys, quoteattr
from labelwise.masks import ImageSegments, Polygon, SegmentInstance

POLYGON_TYPE = "polygonlabels"


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"image {name} must be an integer >= 1 pixel; got {value!r}")


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """The names as a list, refused when a label config could not hold them.

    Raises:
        ValueError: no names, an empty/blank or duplicate name, or a name with control characters
            (XML would silently turn a newline into a space).
    """
    names = list(class_names)
    if not names:
        raise ValueError("class_names must hold at least one name; got none")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{i}] must be a non-blank string; got {name!r}")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ValueError(f"class_names[{i}] must not contain control characters; got {name!r}")
        if name in seen:
            raise ValueError(f"class_names must be unique; {name!r} appears twice in {names}")
        seen.add(name)
    return names


# ------------------------------------------------------------------------------------------
# Points
# ------------------------------------------------------------------------------------------
def polygon_to_ls_points(polygon: Polygon, width: int, height: int) -> list[list[float]]:
    """Pixel vertices to Label Studio points.

    Args:
        polygon: (K, 2) vertices in pixels.
        width, height: the image size in pixels.

    Returns:
        K ``[x, y]`` pairs in percent of the width and height (float64, not clipped, not rounded:
        rounding would break the 1e-6 round trip).
    """
    _check_size(width, height)
    pct = polygon.points.astype(np.float64) * (100.0 / np.array([width, height], dtype=np.float64))
    return [[float(x), float(y)] for x, y in pct]


def ls_points_to_polygon(points: Any, width: int, height: int, *, where: str = "points") -> Polygon:
    """Label Studio points (percent) to a pixel polygon.

    Args:
        points: K ``[x, y]`` pairs in percent of the image, K >= 3.
        width, height: the image size in pixels.
        where: how errors name the points.

    Raises:
        ValueError: points that are not K numeric pairs, fewer than 3, or not finite.
    """
    _check_size(width, height)
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be a list of numeric [x, y] pairs in percent; got {points!r}") from exc
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{where} must be a list of [x, y] pairs in percent; got shape {arr.shape}")
    try:
        return Polygon(arr * (np.array([width, height], dtype=np.float64) / 100.0))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


# ------------------------------------------------------------------------------------------
# Label Studio results
# ------------------------------------------------------------------------------------------
def polygon_region(
    polygon: Polygon,
    label: str,
    width: int,
    height: int,
    *,
    region_id: str,
    score: float | None = None,
    from_name: str = "label",
    to_name: str = "image",
) -> dict[str, Any]:
    """One ``polygonlabels`` result item.

    Args:
        polygon: vertices in pixels of the original image.
        label: the class NAME (must be a label of the project's config).
        width, height: original image size in pixels.
        region_id: id unique within the task's result list.
        score: per-region confidence in [0, 1], or None to leave it out.
        from_name, to_name: the PolygonLabels and Image tag names of the label config.
    """
    if score is not None and not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ValueError(f"score must be in [0, 1] or None; got {score!r}")
    region: dict[str, Any] = {
        "id": region_id,
        "type": POLYGON_TYPE,
        "from_name": from_name,
        "to_name": to_name,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {
            "points": polygon_to_ls_points(polygon, width, height),
            "closed": True,
            POLYGON_TYPE: [label],
        },
    }
    if score is not None:
        region["score"] = float(score)
    return region


def segments_to_ls_result(
    segments: ImageSegments,
    class_names: Sequence[str],
    scores: Sequence[float] | np.ndarray | None = None,
    *,
    from_name: str = "label",
    to_name: str = "image",
) -> list[dict[str, Any]]:
    """The instances of one image as Label Studio regions (pre-annotations with scores, or a
    simulated annotator's answer without).

    Args:
        segments: N instances in pixels of the original image.
        class_names: the project's class names, indexed by each instance's ``class_id``.
        scores: N confidences in [0, 1] (rounded to 6 decimals), or None for no ``score`` keys.

    Returns:
        N ``polygonlabels`` regions, ids ``"p0"``, ``"p1"``, ...

    Raises:
        ValueError: a class id outside ``class_names``, or a score count that differs from N.
    """
    names = list(class_names)
    n = len(segments)
    if scores is not None and len(scores) != n:
        raise ValueError(f"expected one score per instance ({n}); got {len(scores)}")
    for i, inst in enumerate(segments.instances):
        if inst.class_id >= len(names):
            raise ValueError(
                f"instances[{i}] has class_id {inst.class_id} with no name; expected ids in "
                f"[0, {len(names) - 1}] for class_names {names}"
            )
    return [
        polygon_region(
            inst.polygon, names[inst.class_id], segments.width, segments.height,
            region_id=f"p{i}",
            score=None if scores is None else round(float(scores[i]), 6),
            from_name=from_name, to_name=to_name,
        )
        for i, inst in enumerate(segments.instances)
    ]


def ls_result_to_segments(
    result: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    width: int,
    height: int,
    from_name: str | None = None,
) -> ImageSegments:
    """A Label Studio annotation/prediction result as instance polygons, classes mapped BY NAME.

    Only ``polygonlabels`` items are read (rectangles, choices, relations... are ignored), and
    only those of ``from_name`` when given. Vertices a reviewer dragged outside the image are
    clipped to it (0-100 percent).

    Args:
        result: the ``result`` list of an annotation or prediction.
        class_names: the project's class names; an instance's ``class_id`` is its label's index.
        width, height: the image size in pixels. A region's own ``original_width`` /
            ``original_height``, when present, must agree with it.

    Returns:
        The image's instances, in result order.

    Raises:
        ValueError: a label not in ``class_names`` (the message lists the known names), a region
            with other than exactly one label, fewer than 3 points, malformed points, or an
            ``original_width``/``original_height`` other than ``width`` x ``height``.
    """
    _check_size(width, height)
    index = {name: i for i, name in enumerate(class_names)}
    instances: list[SegmentInstance] = []
    for k, item in enumerate(result):
        if item.get("type") != POLYGON_TYPE:
            continue
        if from_name is not None and item.get("from_name") != from_name:
            continue
        where = f"result[{k}] (id {item.get('id')!r})"
        ow, oh = item.get("original_width"), item.get("original_height")
        if (ow is not None and int(ow) != width) or (oh is not None and int(oh) != height):
            raise ValueError(f"{where} was drawn on a {ow} x {oh} image; expected {width} x {height}")
        value = item.get("value") or {}
        labels = value.get(POLYGON_TYPE) or []
        if len(labels) != 1:
            raise ValueError(f"{where} must carry exactly one label; got {labels}")
        label = labels[0]
        if label not in index:
            raise ValueError(f"unknown label {label!r} in {where}; expected one of {list(class_names)}")
        points = value.get("points")
        if points is None:
            raise ValueError(f"{where} value must have points; got {value}")
        try:
            pct = np.clip(np.asarray(points, dtype=np.float64), 0.0, 100.0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} points must be numeric [x, y] pairs in percent; got {points!r}") from exc
        if pct.size and np.isnan(pct).any():
            raise ValueError(f"{where} points must be finite; got NaN")
        polygon = ls_points_to_polygon(pct, width, height, where=f"{where} points")
        instances.append(SegmentInstance(index[label], polygon))
    return ImageSegments(width, height, tuple(instances))


# ------------------------------------------------------------------------------------------
# Label config
# ------------------------------------------------------------------------------------------
def build_polygon_label_config(
    class_names: Sequence[str], *, image_name: str = "image", label_name: str = "label",
    reason_field: str | None = "reason_text",
) -> str:
    """PolygonLabels config for the class names, in their given order.

    The same interface as :func:`labelwise.labelstudio.label_config.build_label_config` (image,
    optional "why this image" header, one coloured ``<Label>`` per class, the same hotkeys), with
    ``<PolygonLabels name="label" toName="image">`` in place of RectangleLabels.

    Raises:
        ValueError: as :func:`check_class_names`.
    """
    names = check_class_names(class_names)
    keys = label_hotkeys(names)
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(_PALETTE[i % len(_PALETTE)])}"
        + (f" hotkey={quoteattr(key)}" if key else "") + "/>"
        for i, (name, key) in enumerate(zip(names, keys))
    )
    header = (f'  <Header value={quoteattr("Why this image: $" + reason_field)} size="5"/>\n'
              if reason_field else "")
    return (
        "<View>\n"
        f"{header}"
        f"  <Image name={quoteattr(image_name)} value={quoteattr('$' + image_name)}"
        ' zoom="true"/>\n'
        f"  <PolygonLabels name={quoteattr(label_name)} toName={quoteattr(image_name)}"
        ' strokeWidth="2" pointSize="small" opacity="0.5">\n'
        f"{labels}\n"
        "  </PolygonLabels>\n"
        "</View>\n"
    )
