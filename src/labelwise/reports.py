"""Pictures for people: a contact sheet of a queue and a learning curve (PNG files)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from labelwise.domain import Detections
from labelwise.images import oriented
from labelwise.masks import ImageSegments

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45", "#fabed4", "#469990"]


CAPTION_LINE_PX = 12
"""Height of one caption line under a tile (PIL's default bitmap font)."""


def _wrap(text: str, width: int) -> list[str]:
    """``text`` broken into lines of at most ``width`` characters (at spaces)."""
    plain = text.replace("\u2014", "-").replace("\u2013", "-")  # the default font lacks dashes
    return textwrap.wrap(plain, width=max(8, width), break_long_words=True) or [""]


def contact_sheet(
    items: Sequence[tuple[str, Path, float, Detections | None]],
    class_names: Sequence[str],
    out: Path,
    tile: int = 192,
    columns: int = 5,
    confidence_floor: float = 0.25,
    captions: Sequence[str] | None = None,
    outlines: Mapping[str, ImageSegments] | None = None,
) -> Path:
    """A grid of images (id, path, uncertainty score, predicted boxes) with boxes drawn.

    Boxes at or above ``confidence_floor`` are drawn with their class and confidence (pass the
    pre-annotation threshold to show what reviewers get); an image with ``outlines`` (a
    segmentation model's, one per box row) gets each kept instance's polygon drawn inside its
    box. Under each tile: the id and score, then its caption from ``captions`` (aligned with
    ``items``; e.g. why it was picked), wrapped to the tile's width.
    """
    if not items:
        raise ValueError("contact sheet needs at least one image; got none")
    if captions is not None and len(captions) != len(items):
        raise ValueError(f"captions must align with items ({len(items)}); got {len(captions)}")
    chars = tile // 6  # the default font is about 6 px wide
    wrapped = [_wrap(c, chars) for c in captions] if captions is not None else [[] for _ in items]
    below = CAPTION_LINE_PX * (1 + max(len(w) for w in wrapped)) + 6
    rows = math.ceil(len(items) / columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + below)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image_id, path, score, dets) in enumerate(items):
        with Image.open(path) as raw:  # oriented: the boxes are in the oriented image's pixels
            img = oriented(raw).convert("RGB")
            scale = tile / max(img.size)
            thumb = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        x0, y0 = (i % columns) * tile, (i // columns) * (tile + below)
        sheet.paste(thumb, (x0, y0))
        if dets is not None:
            drawn = (outlines or {}).get(image_id)
            if drawn is not None and len(drawn) == len(dets):
                for keep, inst in zip(dets.confidence >= np.float32(confidence_floor), drawn.instances):
                    if keep:
                        pts = [(x0 + float(x) * scale, y0 + float(y) * scale) for x, y in inst.polygon.points]
                        draw.polygon(pts, outline=PALETTE[inst.class_id % len(PALETTE)], width=2)
            kept = dets.above(confidence_floor)
            for box, cls, conf in zip(kept.xyxy, kept.class_id, kept.confidence):
                colour = PALETTE[int(cls) % len(PALETTE)]
                x1, y1, x2, y2 = (float(v) * scale for v in box)
                draw.rectangle([x0 + x1, y0 + y1, x0 + x2, y0 + y2], outline=colour, width=2)
                draw.text((x0 + x1 + 2, y0 + y1), f"{class_names[int(cls)]} {float(conf):.2f}",
                          fill=colour)
        draw.text((x0 + 2, y0 + tile + 3), f"{image_id[:10]}  score {score:.3f}", fill="black")
        for k, line in enumerate(wrapped[i]):
            draw.text((x0 + 2, y0 + tile + 3 + CAPTION_LINE_PX * (k + 1)), line, fill="#333333")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def learning_curve(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    out: Path,
    xlabel: str = "labelled images",
    ylabel: str = "mAP50-95",
    bands: Mapping[str, Sequence[float]] | None = None,
    title: str | None = None,
    hlines: Mapping[str, float] | None = None,
) -> Path:
    """Line plot of (x, y) points per named curve; optional +- band (same length) per curve and
    named horizontal reference lines (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    palette = plt.get_cmap("tab20" if len(curves) > 10 else "tab10")  # palette(i): its i-th colour
    for k, (name, points) in enumerate(curves.items()):
        if not points:
            continue
        xs, ys = zip(*points)
        # More curves than one palette has: a second line style keeps neighbours apart.
        ax.plot(xs, ys, marker="o", markersize=4, label=name, color=palette(k % palette.N),
                linestyle="-" if k % 2 == 0 else "--")
        if bands and name in bands:
            lo = [y - b for y, b in zip(ys, bands[name])]
            hi = [y + b for y, b in zip(ys, bands[name])]
            ax.fill_between(xs, lo, hi, alpha=0.15, color=palette(k % palette.N))
    for name, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", color="0.3", linewidth=1.2, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
