"""Scene planning and rendering of the digits generator: digit placement (tight ink boxes,
bounded overlap), distractor strokes, near-duplicate jitter, pixel noise, and the seeding of
every image's random generator. Sizes and positions are in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .backgrounds import _background, _ink_colour
from .config import (
    _DOMAIN_CODE,
    _MIN_DIGIT_SIZE,
    NUM_CLASSES,
    Box,
    DigitsConfig,
    Domain,
    Split,
    _sklearn_digits,
    class_probabilities,
    domain_sample_indices,
)

INK_THRESHOLD = 0.35
"""Interpolated ink coverage (0..1) from which a pixel counts as the digit's ink for its box."""
SHAPE_ATTEMPTS = 3
POSITION_ATTEMPTS = 6
PLACEMENT_ATTEMPTS = SHAPE_ATTEMPTS * POSITION_ATTEMPTS
"""Tries per digit (SHAPE_ATTEMPTS sizes/shapes x POSITION_ATTEMPTS positions each) before it
is skipped for overlapping too much."""

_CAMERA_JITTER_PX = 2
_DIGIT_JITTER_PX = 1
_BG_MARGIN = _CAMERA_JITTER_PX
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SPLIT_CODE = {"pool": 1, "val": 2, "test": 3}


@dataclass
class _Digit:
    """One placed digit. ``alpha`` is its (h, w) float32 ink coverage patch in [0, 1]; ``ink`` the
    tight box of coverage >= INK_THRESHOLD inside the patch as (x0, y0, x1, y1), ends exclusive;
    (x, y) the canvas position of the patch's top-left pixel."""

    cls: int
    sample: int
    alpha: np.ndarray
    ink: Box
    x: int
    y: int
    colour: np.ndarray
    opacity: float


@dataclass
class _Stroke:
    """A distractor: ``kind`` line/polyline (``points`` = x0, y0, x1, y1, ...) or arc
    (``points`` = bounding box x0, y0, x1, y1 and ``angles`` = start, end in degrees)."""

    kind: str
    points: tuple[float, ...]
    width: float
    colour: np.ndarray
    opacity: float
    angles: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Scene:
    """A planned image; ``background`` has a margin of _BG_MARGIN px on every side."""

    height: int
    width: int
    background: np.ndarray
    digits: list[_Digit]
    strokes: list[_Stroke]
    noise_sigma: float
    blur_radius: float
    speckle: float
    skipped: int


@dataclass
class _Rendered:
    """A rendered image: (H, W, 3) uint8 RGB, boxes (N, 4) int pixel corners x0, y0, x1, y1
    (ends exclusive), classes (N,), the sklearn sample index of each digit, and where each
    digit's coverage patch went (patch, x, y), for :meth:`coverage`."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    samples: np.ndarray
    placements: list[tuple[np.ndarray, int, int]] = field(repr=False)

    def coverage(self, index: int) -> np.ndarray:
        """Ink coverage of digit ``index`` over the whole canvas: (H, W) float32 in [0, 1]."""
        alpha, x, y = self.placements[index]
        full = np.zeros((*self.image.shape[:2], 1), dtype=np.float32)
        _composite(full, alpha, x, y, np.ones(1, np.float32), 1.0)
        return full[..., 0]


def _digit_alpha(
    sample: np.ndarray, size: int, aspect: float, angle: float, gamma: float, cut: float
) -> np.ndarray:
    """Upsample an (8, 8) ink image to a smooth (h, w) float32 coverage patch in [0, 1].

    The bicubic upsample is rotated by ``angle`` degrees, then its values are mapped linearly
    from [cut, cut + 0.45] to [0, 1] (a higher ``cut`` gives thinner, crisper strokes) and raised
    to ``gamma`` (softer or harder edges). The patch is cropped to its non-zero support.
    """
    padded = np.pad(sample.astype(np.float32), 1)
    height = max(3, round(size * 10 / 8))
    width = max(3, round(size * aspect * 10 / 8))
    img = Image.fromarray(padded).resize((width, height), Image.Resampling.BICUBIC)
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0.0)
    a = np.clip((np.asarray(img, dtype=np.float32) - np.float32(cut)) / np.float32(0.45), 0.0, 1.0)
    a **= np.float32(gamma)
    rows = np.flatnonzero(a.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0))
    if rows.size == 0:
        return a
    return np.ascontiguousarray(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _ink_box(alpha: np.ndarray) -> Box | None:
    """Tight box of the pixels whose coverage reaches INK_THRESHOLD, or None without any."""
    rows = np.flatnonzero((alpha >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((alpha >= INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlap_ok(box: Box, placed: list[Box], limit: float) -> bool:
    """True when ``box`` covers at most ``limit`` of the smaller area of every placed box."""
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    for px0, py0, px1, py1 in placed:
        iw = min(x1, px1) - max(x0, px0)
        ih = min(y1, py1) - max(y0, py0)
        if iw > 0 and ih > 0:
            smaller = min(area, (px1 - px0) * (py1 - py0))
            if iw * ih > limit * smaller:
                return False
    return True


def _plan_scene(
    rng: np.random.Generator,
    config: DigitsConfig,
    probs: np.ndarray,
    by_class: list[np.ndarray],
) -> _Scene:
    """Draw one scene: canvas, background, digits (placed without heavy overlap), strokes."""
    images, _ = _sklearn_digits()
    width = int(rng.integers(config.canvas_min, config.canvas_max + 1))
    height = int(rng.integers(config.canvas_min, config.canvas_max + 1))
    m = _BG_MARGIN
    background = _background(rng, height + 2 * m, width + 2 * m, config.domain)
    luma = background[m : m + height, m : m + width] @ _LUMA

    digits: list[_Digit] = []
    placed: list[Box] = []
    wanted = int(rng.integers(config.digits_min, config.digits_max + 1))
    log_lo, log_hi = math.log(config.digit_size_min), math.log(config.digit_size_max + 1)
    skipped = 0
    for _ in range(wanted):
        cls = int(rng.choice(NUM_CLASSES, p=probs))
        if by_class[cls].size == 0:  # cannot happen with the sklearn digits; kept for clarity
            skipped += 1
            continue
        sample = int(rng.choice(by_class[cls]))
        chosen: _Digit | None = None
        for attempt in range(SHAPE_ATTEMPTS):
            size = min(int(math.exp(rng.uniform(log_lo, log_hi))), config.digit_size_max)
            aspect = rng.uniform(0.8, 1.15)
            angle = rng.uniform(-12.0, 12.0)
            gamma = rng.uniform(0.8, 1.3)
            cut = rng.uniform(0.12, 0.32)
            if not digits and attempt == SHAPE_ATTEMPTS - 1:
                # The first digit must fit: smallest size, upright, within the canvas.
                size = max(_MIN_DIGIT_SIZE, min(config.digit_size_min, min(width, height) - 4))
                aspect, angle = 1.0, 0.0
            alpha = _digit_alpha(images[sample], size, aspect, angle, gamma, cut)
            ink = _ink_box(alpha)
            if ink is None:
                continue
            bw, bh = ink[2] - ink[0], ink[3] - ink[1]
            if bw > width - 2 or bh > height - 2:
                continue
            for _ in range(POSITION_ATTEMPTS):
                ix = int(rng.integers(1, width - 1 - bw + 1))
                iy = int(rng.integers(1, height - 1 - bh + 1))
                box = (ix, iy, ix + bw, iy + bh)
                if _overlap_ok(box, placed, config.max_box_overlap):
                    break
            else:
                continue
            local = float(luma[iy : iy + bh, ix : ix + bw].mean())
            chosen = _Digit(
                cls=cls, sample=sample, alpha=alpha, ink=ink, x=ix - ink[0], y=iy - ink[1],
                colour=_ink_colour(rng, local, config.domain),
                opacity=float(rng.uniform(0.85, 1.0)),
            )
            placed.append(box)
            break
        if chosen is None:
            skipped += 1
        else:
            digits.append(chosen)
    if not digits:  # pragma: no cover - guarded by canvas_min >= digit_size_max
        raise RuntimeError("could not place any digit; canvas too small for the digit sizes")

    strokes: list[_Stroke] = []
    mean_luma = float(luma.mean())
    side = float(min(width, height))
    for _ in range(int(rng.integers(0, config.distractors_max + 1))):
        kind = str(rng.choice(["line", "arc", "polyline"]))
        colour = _ink_colour(rng, mean_luma, config.domain)
        stroke_width = float(rng.uniform(1.0, 2.5))
        opacity = float(rng.uniform(0.5, 1.0))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if kind == "line":
            length = rng.uniform(0.35, 0.9) * side
            phi = rng.uniform(0, math.pi)
            dx, dy = 0.5 * length * math.cos(phi), 0.5 * length * math.sin(phi)
            points: tuple[float, ...] = (cx - dx, cy - dy, cx + dx, cy + dy)
            strokes.append(_Stroke(kind, points, stroke_width, colour, opacity))
        elif kind == "arc":
            rx, ry = rng.uniform(0.15, 0.5, 2) * side
            start = float(rng.uniform(0, 360))
            end = start + float(rng.uniform(60, 270))
            points = (cx - rx, cy - ry, cx + rx, cy + ry)
            strokes.append(_Stroke(kind, points, stroke_width, colour, opacity, (start, end)))
        else:
            pts = [cx, cy]
            for _ in range(int(rng.integers(2, 5))):
                step = rng.uniform(0.1, 0.3) * side
                phi = rng.uniform(0, 2 * math.pi)
                pts += [pts[-2] + step * math.cos(phi), pts[-1] + step * math.sin(phi)]
            strokes.append(_Stroke(kind, tuple(pts), stroke_width, colour, opacity))

    if config.domain == "target":
        noise, speckle = float(rng.uniform(0.005, 0.035)), 0.0
    else:
        noise, speckle = float(rng.uniform(0.015, 0.05)), float(rng.uniform(0.0, 0.01))
    blur = float(rng.uniform(0.2, 0.8)) if rng.random() < 0.5 else 0.0
    return _Scene(height, width, background, digits, strokes, noise, blur, speckle, skipped)


def _composite(
    canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, colour: np.ndarray, opacity: float
) -> None:
    """Blend ``colour`` into ``canvas`` (H, W, 3) in place with coverage ``alpha`` at (x, y)."""
    height, width = canvas.shape[:2]
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None] * np.float32(opacity)
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1.0 - a) + colour * a


def _stroke_alpha(stroke: _Stroke, height: int, width: int, dx: int, dy: int) -> np.ndarray:
    """Anti-aliased coverage of one stroke (drawn at 2x, box-downsampled): (H, W) float32."""
    mask = Image.new("L", (2 * width, 2 * height), 0)
    draw = ImageDraw.Draw(mask)
    pts = [2 * (p + (dx if i % 2 == 0 else dy)) for i, p in enumerate(stroke.points)]
    line_width = max(1, round(2 * stroke.width))
    if stroke.kind == "arc":
        x0, y0, x1, y1 = pts
        draw.arc((x0, y0, x1, y1), stroke.angles[0], stroke.angles[1], fill=255, width=line_width)
    else:
        draw.line(pts, fill=255, width=line_width, joint="curve")
    small = mask.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) * np.float32(1 / 255)


def _render(scene: _Scene, rng: np.random.Generator, *, jitter: bool) -> _Rendered:
    """Render ``scene``, drawing pixel noise from ``rng``; with ``jitter`` the frame is a
    near-duplicate: camera shift, per-digit shift and brightness/gain also come from ``rng``."""
    h, w, m = scene.height, scene.width, _BG_MARGIN
    gx, gy = 0, 0
    if jitter:
        gx, gy = (int(v) for v in rng.integers(-_CAMERA_JITTER_PX, _CAMERA_JITTER_PX + 1, 2))
    canvas = scene.background[m + gy : m + gy + h, m + gx : m + gx + w].copy()
    for stroke in scene.strokes:
        alpha = _stroke_alpha(stroke, h, w, -gx, -gy)
        rows = np.flatnonzero(alpha.any(axis=1))
        cols = np.flatnonzero(alpha.any(axis=0))
        if rows.size:
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            _composite(canvas, alpha[y0:y1, x0:x1], int(x0), int(y0), stroke.colour, stroke.opacity)

    boxes, placements = [], []
    for digit in scene.digits:
        ix0, iy0, ix1, iy1 = digit.ink
        bw, bh = ix1 - ix0, iy1 - iy0
        ix, iy = digit.x + ix0, digit.y + iy0
        if jitter:
            jx, jy = rng.integers(-_DIGIT_JITTER_PX, _DIGIT_JITTER_PX + 1, 2)
            ix = int(np.clip(ix - gx + jx, 1, w - 1 - bw))
            iy = int(np.clip(iy - gy + jy, 1, h - 1 - bh))
        x, y = ix - ix0, iy - iy0
        _composite(canvas, digit.alpha, x, y, digit.colour, digit.opacity)
        boxes.append((ix, iy, ix + bw, iy + bh))
        placements.append((digit.alpha, x, y))

    pixels = canvas * np.float32(255.0)  # from here on in 0..255 units
    if scene.blur_radius > 0:
        image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
        image = image.filter(ImageFilter.GaussianBlur(scene.blur_radius))
        pixels = np.asarray(image, dtype=np.float32)
    if jitter:
        pixels *= np.float32(rng.uniform(0.97, 1.03))
        pixels += np.float32(255.0 * rng.uniform(-0.025, 0.025))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32)
    noise *= np.float32(255.0 * scene.noise_sigma)
    pixels += noise
    if scene.speckle > 0:
        dots = rng.random((h, w)) < scene.speckle
        pixels[dots] = 255.0 * rng.random((int(dots.sum()), 1), dtype=np.float32)
    pixels += np.float32(0.5)
    out = np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)
    return _Rendered(
        image=out,
        boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        classes=np.asarray([d.cls for d in scene.digits], dtype=np.int64),
        samples=np.asarray([d.sample for d in scene.digits], dtype=np.int64),
        placements=placements,
    )


def _rng(config: DigitsConfig, split: Split, purpose: int, *index: int) -> np.random.Generator:
    """The generator of one purpose (0 scene plan, 1 frame render, 2 cluster layout)."""
    return np.random.default_rng(
        [config.seed, _DOMAIN_CODE[config.domain], _SPLIT_CODE[split], purpose, *index]
    )


def _render_example(
    config: DigitsConfig,
    split: Split = "pool",
    index: int = 0,
    *,
    jitter_seed: int | None = None,
) -> _Rendered:
    """Plan scene ``index`` of ``split`` and render it once, outside any data set (for tests and
    debugging); with ``jitter_seed`` as a jittered near-duplicate frame."""
    scene = _plan_scene(
        _rng(config, split, 0, index), config, class_probabilities(config),
        _samples_by_class(config.domain),
    )
    if jitter_seed is None:
        return _render(scene, _rng(config, split, 1, index), jitter=False)
    return _render(scene, np.random.default_rng(jitter_seed), jitter=True)


def _samples_by_class(domain: Domain) -> list[np.ndarray]:
    _, labels = _sklearn_digits()
    idx = domain_sample_indices(domain)
    return [idx[labels[idx] == c] for c in range(NUM_CLASSES)]


def _cluster_layout(
    rng: np.random.Generator, n: int, config: DigitsConfig, split: Split
) -> list[list[int]]:
    """Group image indices 0..n-1 into clusters (lists); singletons are clusters of one."""
    sizes: list[int] = []
    if split == "pool":
        goal = round(config.duplicate_cluster_fraction * n)
        total = 0
        while total < goal:
            drawn = int(rng.integers(config.cluster_size_min, config.cluster_size_max + 1))
            size = min(drawn, goal - total)
            if size < 2:
                break
            sizes.append(size)
            total += size
        sizes += [1] * (n - total)
    else:
        sizes = [1] * n
    order = [int(i) for i in rng.permutation(n)]
    clusters, start = [], 0
    for size in sizes:
        clusters.append(sorted(order[start : start + size]))
        start += size
    return clusters
