"""Bundled detection data set: real handwritten digits from scikit-learn placed on synthetic scenes.

The 1797 8x8 digits of :func:`sklearn.datasets.load_digits` (classes ``"0"`` .. ``"9"``) are
upsampled with bicubic interpolation to 14-48 px, slightly stretched and rotated, tinted with a
random ink colour and contrast, and composited onto 96-160 px canvases with gradient, blob,
stripe or grid backgrounds, distractor strokes (lines, arcs, scribbles that are not digits),
blur and pixel noise. The result is written in Ultralytics YOLO format::

    <root>/
      data.yaml                 ultralytics data file, absolute paths (see below)
      manifest.json             seed, config, class counts, per-image cluster id and box count
      pool/images/pool_000000.png ...   the unlabelled pool: NO labels folder beside it
      pool_truth/labels/pool_000000.txt  the pool's ground truth, for a simulated annotator
      val/images/val_000000.png,   val/labels/val_000000.txt
      test/images/test_000000.png, test/labels/test_000000.txt

Images are 8-bit RGB PNGs. A label line is ``cls cx cy w h``: the class id and the box centre and
size normalised by the image width/height, 6 decimals. Boxes are tight around the digit's ink
(pixels whose interpolated ink coverage reaches :data:`INK_THRESHOLD`), not its 8x8 cell.

Class distribution (long tail): the ``rare_classes`` share ``rare_fraction`` of the expected digit
instances; the other ("common") classes share the rest. Within each group the classes are ranked
by a permutation drawn from ``seed`` and the class of rank r (1-based) gets weight
``r ** -long_tail_exponent`` (0 = uniform within the group). The defaults give the most frequent
class about 24 % of the digits, the least frequent common class about 9 % and the three rare
classes about 2.2 %, 1.6 % and 1.3 %. ``rare_classes=None`` lets ``seed`` choose
``num_rare_classes`` rare classes. The resolved probabilities are recorded in the manifest.

Near-duplicates: ``duplicate_cluster_fraction`` of the pool belongs to clusters of
``cluster_size_min``..``cluster_size_max`` images rendered from one base scene with small jitter
(camera shift of up to 2 px, per-digit shift of up to 1 px, brightness/gain, fresh noise), like
frames of a video. Cluster members get scattered file names. val and test have no clusters. Every
image has a ``cluster_id`` in the manifest; images sharing it (within a split) are near-duplicates.

Domains: the ``"target"`` domain uses the sklearn digits with an even index, the ``"source"``
domain those with an odd index (:func:`domain_sample_indices`), so the two never share a digit
sample. The source domain also draws its backgrounds from another style (dark, cool, vignetted,
gridded, blocky texture and speckle instead of light, warm, blobs and stripes).

Determinism: every image is drawn from a :class:`numpy.random.Generator` seeded with
``(seed, domain, split, cluster/image index)``, so the same config writes byte-identical PNGs
(on the same platform and numpy/Pillow versions). Nothing is read or written at import time;
scikit-learn is imported on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Domain = Literal["target", "source"]
Split = Literal["pool", "val", "test"]
Box = tuple[int, int, int, int]
"""Pixel corners x0, y0, x1, y1 with exclusive ends."""

NUM_CLASSES = 10
CLASS_NAMES: tuple[str, ...] = tuple(str(i) for i in range(NUM_CLASSES))
SPLITS: tuple[Split, ...] = ("pool", "val", "test")
DOMAINS: tuple[Domain, ...] = ("target", "source")
DOMAIN_RULE: dict[str, str] = {
    "target": "sklearn load_digits index % 2 == 0",
    "source": "sklearn load_digits index % 2 == 1",
}

MANIFEST_FORMAT = "labelwise.datasets.digits"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_YAML_NAME = "data.yaml"
INCOMPLETE_MARKER = ".digits-incomplete"
OWNED_ENTRIES = ("pool", "pool_truth", "val", "test", DATA_YAML_NAME, MANIFEST_NAME)

INK_THRESHOLD = 0.35
"""Interpolated ink coverage (0..1) from which a pixel counts as the digit's ink for its box."""
SHAPE_ATTEMPTS = 3
POSITION_ATTEMPTS = 6
PLACEMENT_ATTEMPTS = SHAPE_ATTEMPTS * POSITION_ATTEMPTS
"""Tries per digit (SHAPE_ATTEMPTS sizes/shapes x POSITION_ATTEMPTS positions each) before it
is skipped for overlapping too much."""
LABEL_DECIMALS = 6
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs: 1 writes noisy images about 1.5x faster than 6 for ~10 % more bytes."""
_WRITER_THREADS = 2
_MAX_PENDING_WRITES = 32

_MIN_DIGIT_SIZE = 8
_CAMERA_JITTER_PX = 2
_DIGIT_JITTER_PX = 1
_BG_MARGIN = _CAMERA_JITTER_PX
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SPLIT_CODE = {"pool": 1, "val": 2, "test": 3}
_DOMAIN_CODE = {"target": 0, "source": 1}
_CLASS_SEED_TAG = 0x5EED


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_fraction(name: str, value: object, *, upper_open: bool = False) -> None:
    bound = "1)" if upper_open else "1]"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.floating, np.integer))
        and math.isfinite(float(value))
        and 0.0 <= float(value) <= 1.0
        and not (upper_open and float(value) >= 1.0)
    )
    if not ok:
        raise ValueError(f"{name} must be a number in [0, {bound}; got {value!r}")


def _check_order(low_name: str, low: int, high_name: str, high: int) -> None:
    if low > high:
        raise ValueError(
            f"{low_name} must be <= {high_name}; got {low_name}={low}, {high_name}={high}"
        )


@dataclass(frozen=True)
class DigitsConfig:
    """Every knob of the digits generator. Sizes are in pixels.

    Attributes:
        pool_images: unlabelled pool images (>= 1).
        val_images: validation images (>= 1; ultralytics needs a val set).
        test_images: test images (>= 0).
        canvas_min, canvas_max: each image's width and height are drawn independently,
            uniformly from this inclusive range. ``canvas_min >= digit_size_max``.
        digits_min, digits_max: digits attempted per image (uniform, inclusive). A digit that
            cannot be placed without heavy overlap after :data:`PLACEMENT_ATTEMPTS` tries is
            skipped; every image keeps at least one.
        digit_size_min, digit_size_max: side of the upsampled 8x8 cell, drawn log-uniformly.
            The ink box is usually smaller (the digits rarely fill their cell); a digit is then
            stretched horizontally by 0.8-1.15 and rotated by up to 12 degrees.
        rare_classes: the rare digit classes (distinct, in 0..9, at most 9 of them), or None to
            let ``seed`` choose ``num_rare_classes`` of them.
        num_rare_classes: how many rare classes ``seed`` chooses when ``rare_classes`` is None.
        rare_fraction: expected share of digit instances from the rare classes, in [0, 1).
        long_tail_exponent: power-law exponent of the class weights within the common and
            within the rare group (rank r gets ``r ** -exponent``), >= 0.
        max_box_overlap: largest allowed intersection of two digit boxes, as a fraction of the
            smaller box's area, in [0, 1].
        duplicate_cluster_fraction: share of pool images that belong to near-duplicate
            clusters, in [0, 1].
        cluster_size_min, cluster_size_max: images per near-duplicate cluster (>= 2).
        distractors_max: distractor strokes per image are drawn uniformly from 0..this.
        domain: ``"target"`` (even sklearn indices, light backgrounds) or ``"source"`` (odd
            indices, dark gridded backgrounds).
        seed: non-negative integer; the same config writes byte-identical files.
    """

    pool_images: int = 400
    val_images: int = 80
    test_images: int = 120
    canvas_min: int = 96
    canvas_max: int = 160
    digits_min: int = 1
    digits_max: int = 6
    digit_size_min: int = 14
    digit_size_max: int = 48
    rare_classes: tuple[int, ...] | None = (2, 5, 8)
    num_rare_classes: int = 3
    rare_fraction: float = 0.05
    long_tail_exponent: float = 0.5
    max_box_overlap: float = 0.1
    duplicate_cluster_fraction: float = 0.3
    cluster_size_min: int = 3
    cluster_size_max: int = 8
    distractors_max: int = 3
    domain: Domain = "target"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("pool_images", self.pool_images, 1)
        _check_int("val_images", self.val_images, 1)
        _check_int("test_images", self.test_images, 0)
        _check_int("canvas_min", self.canvas_min, 16)
        _check_int("canvas_max", self.canvas_max, 16)
        _check_order("canvas_min", self.canvas_min, "canvas_max", self.canvas_max)
        _check_int("digits_min", self.digits_min, 1)
        _check_int("digits_max", self.digits_max, 1)
        _check_order("digits_min", self.digits_min, "digits_max", self.digits_max)
        _check_int("digit_size_min", self.digit_size_min, _MIN_DIGIT_SIZE)
        _check_int("digit_size_max", self.digit_size_max, _MIN_DIGIT_SIZE)
        _check_order("digit_size_min", self.digit_size_min, "digit_size_max", self.digit_size_max)
        if self.canvas_min < self.digit_size_max:
            raise ValueError(
                f"canvas_min must be >= digit_size_max ({self.digit_size_max}) so the largest "
                f"digit fits; got canvas_min={self.canvas_min}"
            )
        if self.rare_classes is not None:
            rare = self.rare_classes
            if isinstance(rare, (str, bytes)) or not isinstance(rare, (tuple, list)):
                raise ValueError(
                    f"rare_classes must be a tuple of distinct class ids in 0..9 or None; "
                    f"got {rare!r}"
                )
            bad = [c for c in rare if isinstance(c, bool) or not isinstance(c, (int, np.integer))
                   or not 0 <= c < NUM_CLASSES]
            if bad or len(set(rare)) != len(rare) or len(rare) >= NUM_CLASSES:
                raise ValueError(
                    f"rare_classes must be distinct class ids in 0..9, at most 9 of them; "
                    f"got {tuple(rare)!r}"
                )
            object.__setattr__(self, "rare_classes", tuple(int(c) for c in rare))
        _check_int("num_rare_classes", self.num_rare_classes, 0)
        if self.num_rare_classes >= NUM_CLASSES:
            raise ValueError(
                f"num_rare_classes must be < {NUM_CLASSES} (one class must stay common); "
                f"got {self.num_rare_classes}"
            )
        _check_fraction("rare_fraction", self.rare_fraction, upper_open=True)
        if (
            isinstance(self.long_tail_exponent, bool)
            or not isinstance(self.long_tail_exponent, (int, float, np.floating, np.integer))
            or not math.isfinite(float(self.long_tail_exponent))
            or self.long_tail_exponent < 0
        ):
            raise ValueError(
                f"long_tail_exponent must be a finite number >= 0; got {self.long_tail_exponent!r}"
            )
        _check_fraction("max_box_overlap", self.max_box_overlap)
        _check_fraction("duplicate_cluster_fraction", self.duplicate_cluster_fraction)
        _check_int("cluster_size_min", self.cluster_size_min, 2)
        _check_int("cluster_size_max", self.cluster_size_max, 2)
        _check_order(
            "cluster_size_min", self.cluster_size_min, "cluster_size_max", self.cluster_size_max
        )
        _check_int("distractors_max", self.distractors_max, 0)
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)}; got {self.domain!r}")
        _check_int("seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["rare_classes"] is not None:
            out["rare_classes"] = list(out["rare_classes"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DigitsConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown DigitsConfig field(s) {unknown}; expected from {sorted(known)}"
            )
        values = dict(values)
        if values.get("rare_classes") is not None:
            values["rare_classes"] = tuple(values["rare_classes"])
        return cls(**values)


def resolve_rare_classes(config: DigitsConfig) -> tuple[int, ...]:
    """The rare classes: ``config.rare_classes``, else ``num_rare_classes`` chosen by the seed."""
    if config.rare_classes is not None:
        return tuple(sorted(config.rare_classes))
    rng = np.random.default_rng([config.seed, _CLASS_SEED_TAG, 0])
    chosen = rng.choice(NUM_CLASSES, size=config.num_rare_classes, replace=False)
    return tuple(sorted(int(c) for c in chosen))


def class_probabilities(config: DigitsConfig) -> np.ndarray:
    """Probability of each class for one digit instance: (10,) float64 summing to 1.

    See the module docstring for the rule. Depends on ``seed`` but not on ``domain``, so the
    source and target domains of one seed share their label prior.
    """
    rare = set(resolve_rare_classes(config))
    order = np.random.default_rng([config.seed, _CLASS_SEED_TAG, 1]).permutation(NUM_CLASSES)
    common_ids = [int(c) for c in order if int(c) not in rare]
    rare_ids = [int(c) for c in order if int(c) in rare]
    probs = np.zeros(NUM_CLASSES, dtype=np.float64)
    rare_mass = config.rare_fraction if rare_ids else 0.0
    for ids, mass in ((common_ids, 1.0 - rare_mass), (rare_ids, rare_mass)):
        if not ids:
            continue
        weights = np.arange(1, len(ids) + 1, dtype=np.float64) ** -float(config.long_tail_exponent)
        probs[ids] = mass * weights / weights.sum()
    return probs


# --------------------------------------------------------------------------------------------
# The scikit-learn digits
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) float32 ink in [0, 1] and (1797,) int64 labels, read-only."""
    from sklearn.datasets import load_digits  # heavy import, first use only

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).clip(0.0, 1.0)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def domain_sample_indices(domain: Domain) -> np.ndarray:
    """Indices into ``load_digits()`` a domain draws from: (K,) int64, sorted (see DOMAIN_RULE)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {list(DOMAINS)}; got {domain!r}")
    images, _ = _sklearn_digits()
    return np.arange(_DOMAIN_CODE[domain], images.shape[0], 2, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------
def _upsample(low: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """(h, w, C) float32 -> (height, width, C) float32, channel by channel through PIL."""
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(low[..., c])).resize((width, height), resample)
        )
        for c in range(low.shape[2])
    ]
    return np.stack(chans, axis=-1).astype(np.float32, copy=False)


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, channels: int
) -> np.ndarray:
    """Band-limited noise, roughly in [-1, 1]: (height, width, channels) float32."""
    ch = max(2, int(math.ceil(height / cell)) + 1)
    cw = max(2, int(math.ceil(width / cell)) + 1)
    low = rng.uniform(-1.0, 1.0, size=(ch, cw, channels)).astype(np.float32)
    return _upsample(low, height, width, Image.Resampling.BICUBIC)


def _background(rng: np.random.Generator, height: int, width: int, domain: Domain) -> np.ndarray:
    """A textured background: (height, width, 3) float32 RGB in [0, 1]."""
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    if domain == "target":
        # Light, warm "paper": gradient and soft coloured blobs (built on a coarse grid and
        # upsampled once), sometimes stripes, fine fibre texture.
        lum = rng.uniform(0.42, 0.95)
        warm = rng.uniform(0.0, 0.08)
        c0 = lum + np.array([warm, 0.4 * warm, -warm]) + rng.normal(0.0, 0.02, 3)
        c1 = c0 + rng.normal(0.0, 0.1, 3)
        theta = rng.uniform(0.0, 2 * math.pi)
        cos, sin = math.cos(theta), math.sin(theta)
        cell = rng.uniform(16.0, 40.0)
        ch = max(2, int(math.ceil(height / cell)) + 1)
        cw = max(2, int(math.ceil(width / cell)) + 1)
        # Coarse grid points in full-resolution pixel coordinates (PIL maps pixel centres).
        gy = (np.arange(ch) + 0.5) * height / ch - 0.5
        gx = (np.arange(cw) + 0.5) * width / cw - 0.5
        corners = [x * cos + y * sin for x in (0, width - 1) for y in (0, height - 1)]
        span = max(max(corners) - min(corners), 1e-6)
        t = (gx[None, :] * cos + gy[:, None] * sin - min(corners)) / span
        amp = rng.uniform(0.03, 0.14)
        low = (
            c0 + (c1 - c0) * t[..., None]
            + amp * rng.uniform(-1.0, 1.0, size=(ch, cw, 1))
            + 0.3 * amp * rng.uniform(-1.0, 1.0, size=(ch, cw, 3))
        ).astype(np.float32)
        img = _upsample(low, height, width, Image.Resampling.BICUBIC)
        detail = rng.uniform(0.01, 0.03) * _smooth_noise(rng, height, width, 2.5, 1)[..., 0]
        if rng.random() < 0.45:
            period = rng.uniform(5.0, 24.0)
            phi = rng.uniform(0.0, math.pi)
            wave = np.sin(2 * math.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / period
                          + rng.uniform(0, 2 * math.pi))
            detail += rng.uniform(0.015, 0.06) * wave
        img += detail[..., None]
    else:
        # Dark, cool "screen": vignette, grid lines, blocky sensor texture, weak blobs.
        lum = rng.uniform(0.06, 0.42)
        cool = rng.uniform(0.02, 0.1)
        c0 = lum + np.array([-cool, 0.2 * cool, cool]) + rng.normal(0.0, 0.02, 3)
        img = np.broadcast_to(c0.astype(np.float32), (height, width, 3)).copy()
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / ((height**2 + width**2) / 4.0)
        img *= (1.0 - rng.uniform(0.1, 0.45) * r2)[..., None]
        if rng.random() < 0.7:
            period = int(rng.integers(8, 21))
            ox, oy = rng.integers(0, period, 2)
            lines = ((np.arange(width) + ox) % period == 0)[None, :] | (
                (np.arange(height) + oy) % period == 0
            )[:, None]
            colour = rng.uniform(0.04, 0.12) * (1.0 + rng.normal(0.0, 0.3, 3))
            img += lines[..., None] * colour.astype(np.float32)
        block = int(rng.integers(3, 9))
        low = rng.uniform(-1.0, 1.0, size=(height // block + 1, width // block + 1, 1))
        blocky = np.repeat(np.repeat(low, block, axis=0), block, axis=1)[:height, :width]
        img += rng.uniform(0.015, 0.05) * blocky.astype(np.float32)
        blob_cell = rng.uniform(20.0, 50.0)
        img += rng.uniform(0.02, 0.08) * _smooth_noise(rng, height, width, blob_cell, 3)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _ink_colour(rng: np.random.Generator, background_luma: float, domain: Domain) -> np.ndarray:
    """An ink colour contrasting with ``background_luma``: (3,) float32 RGB in [0, 1]."""
    low, high = (0.3, 0.85) if domain == "target" else (0.25, 0.7)
    contrast = rng.uniform(low, high)
    if 0.35 < background_luma < 0.65:
        darker = bool(rng.random() < 0.5)
    else:
        darker = background_luma >= 0.5
    target = background_luma - contrast if darker else background_luma + contrast
    if not 0.0 <= target <= 1.0 and abs(np.clip(target, 0, 1) - background_luma) < 0.25:
        target = background_luma + contrast if darker else background_luma - contrast
    tint = rng.normal(0.0, 0.12, 3)
    tint -= tint.mean()
    return np.clip(np.clip(target, 0.0, 1.0) + tint, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# YOLO labels
# --------------------------------------------------------------------------------------------
def _format_labels(boxes: np.ndarray, classes: np.ndarray, width: int, height: int) -> str:
    lines = []
    for (x0, y0, x1, y1), cls in zip(boxes.tolist(), classes.tolist()):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        bw, bh = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{cls} {cx:.{LABEL_DECIMALS}f} {cy:.{LABEL_DECIMALS}f} "
                     f"{bw:.{LABEL_DECIMALS}f} {bh:.{LABEL_DECIMALS}f}")
    return "".join(line + "\n" for line in lines)


def read_yolo_labels(path: Path | str) -> np.ndarray:
    """Read one YOLO label file: (N, 5) float64 rows ``[cls, cx, cy, w, h]``, normalised.

    An empty (or blank-lines-only) file gives a (0, 5) array. Each line must hold exactly five
    numbers: a non-negative integer class id, then cx, cy, w, h in [0, 1] with w, h > 0.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming the file, the 1-based line number, what was expected and the line.
    """
    path = Path(path)
    rows: list[list[float]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{number}"
        parts = line.split()
        if len(parts) != 5:
            raise ValueError(
                f"{where}: expected 5 fields 'cls cx cy w h'; got {len(parts)} in {line!r}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{where}: expected 5 numbers 'cls cx cy w h'; got {line!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: expected finite numbers; got {line!r}")
        cls = values[0]
        if cls < 0 or cls != int(cls):
            raise ValueError(f"{where}: expected a non-negative integer class id; got {parts[0]!r}")
        if any(not 0.0 <= v <= 1.0 for v in values[1:]):
            raise ValueError(f"{where}: expected cx, cy, w, h normalised to [0, 1]; got {line!r}")
        if values[3] <= 0 or values[4] <= 0:
            raise ValueError(f"{where}: expected box width and height > 0; got {line!r}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


# --------------------------------------------------------------------------------------------
# The data set on disk
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitsDataset:
    """A generated digits data set (see the module docstring for the layout). Paths are absolute.

    Attributes:
        root: the data set folder.
        data_yaml: ultralytics data file. ``path`` is ``root``; ``val`` and ``test`` point at the
            val/test images; ``train`` is a placeholder pointing at val/images because
            ultralytics requires the key (the trainer writes its own data file for the labelled
            set). The pool is not listed in it.
        pool_images: ``root/pool/images``; no labels folder beside it.
        pool_truth: ``root/pool_truth/labels``, one YOLO file per pool image, same stem.
        val_images, test_images: ``root/<split>/images`` with ``root/<split>/labels`` beside.
        class_names: ``("0", ..., "9")``.
        manifest: ``root/manifest.json``.
        config: the configuration the data set was generated with.
    """

    root: Path
    data_yaml: Path
    pool_images: Path
    pool_truth: Path
    val_images: Path
    test_images: Path
    class_names: tuple[str, ...]
    manifest: Path
    config: DigitsConfig

    @property
    def val_labels(self) -> Path:
        return self.val_images.parent / "labels"

    @property
    def test_labels(self) -> Path:
        return self.test_images.parent / "labels"

    def image_dir(self, split: Split) -> Path:
        """The images folder of ``split``."""
        dirs = {"pool": self.pool_images, "val": self.val_images, "test": self.test_images}
        if split not in dirs:
            raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return dirs[split]

    def label_dir(self, split: Split) -> Path:
        """Where the ground truth of ``split`` lives (``pool_truth`` for the pool)."""
        dirs = {"pool": self.pool_truth, "val": self.val_labels, "test": self.test_labels}
        if split not in dirs:
            raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return dirs[split]

    def image_paths(self, split: Split) -> list[Path]:
        """The PNGs of ``split``, sorted by name."""
        return sorted(self.image_dir(split).glob("*.png"))

    def truth_path(self, image: Path | str, split: Split = "pool") -> Path:
        """The ground-truth label file of ``image`` (same stem, ``.txt``)."""
        return self.label_dir(split) / f"{Path(image).stem}.txt"

    def read_manifest(self) -> dict[str, Any]:
        """The parsed manifest.json."""
        return json.loads(self.manifest.read_text(encoding="utf-8"))


def _dataset_for(root: Path, config: DigitsConfig) -> DigitsDataset:
    return DigitsDataset(
        root=root,
        data_yaml=root / DATA_YAML_NAME,
        pool_images=root / "pool" / "images",
        pool_truth=root / "pool_truth" / "labels",
        val_images=root / "val" / "images",
        test_images=root / "test" / "images",
        class_names=CLASS_NAMES,
        manifest=root / MANIFEST_NAME,
        config=config,
    )


def _data_yaml_text(root: Path) -> str:
    import yaml  # pyyaml is a project dependency; imported on use

    body = {
        "path": str(root),
        "train": str(root / "val" / "images"),
        "val": str(root / "val" / "images"),
        "test": str(root / "test" / "images"),
        "nc": NUM_CLASSES,
        "names": {i: name for i, name in enumerate(CLASS_NAMES)},
    }
    header = (
        "# Written by labelwise.datasets.digits. Paths are absolute.\n"
        "# `train` is a placeholder (val/images): ultralytics requires the key; the trainer\n"
        "# writes its own data file for the labelled images. The unlabelled pool is deliberately\n"
        "# absent; its ground truth is in pool_truth/labels, for the simulated annotator only.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """The parsed manifest when ``root`` holds one of ours, else None."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    return data


def _is_complete(root: Path, manifest: dict[str, Any]) -> bool:
    for entry in manifest.get("images", []):
        if not (root / entry["file"]).is_file() or not (root / entry["labels"]).is_file():
            return False
    return (root / DATA_YAML_NAME).is_file()


def _remove_owned(root: Path) -> None:
    for name in (*OWNED_ENTRIES, INCOMPLETE_MARKER):
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs) or "format version"


def _prepare_root(root: Path, config: DigitsConfig, overwrite: bool) -> DigitsDataset | None:
    """Check ``root`` may be written; return the existing data set when it already is this one."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"out must be a folder; {root} exists and is not a directory")
    if not root.exists() or not any(root.iterdir()):
        return None
    wanted = config.to_dict()
    manifest = _read_manifest(root)
    if manifest is not None:
        same = (
            manifest.get("config") == wanted
            and manifest.get("format_version") == MANIFEST_VERSION
        )
        if same and _is_complete(root, manifest):
            return _dataset_for(root, config)
        if not same and not overwrite:
            raise FileExistsError(
                f"{root} holds a digits data set generated with another config "
                f"({_config_diff(manifest.get('config', {}), wanted)}); pass overwrite=True to "
                f"replace it, or choose another folder"
            )
        _remove_owned(root)
        return None
    marker = root / INCOMPLETE_MARKER
    if marker.is_file():  # an interrupted run of ours
        try:
            started = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            started = None
        if started != wanted and not overwrite:
            raise FileExistsError(
                f"{root} holds an interrupted digits generation with another config; pass "
                f"overwrite=True to replace it, or choose another folder"
            )
        _remove_owned(root)
        return None
    even = " even with overwrite=True" if overwrite else ""
    raise FileExistsError(
        f"{root} is not empty and is not a generated digits data set (no {MANIFEST_NAME} from "
        f"generate_digits); refusing to write into it{even} so nothing stored there is lost. "
        f"Choose an empty or new folder."
    )


def generate_digits(
    out: Path | str,
    config: DigitsConfig = DigitsConfig(),
    *,
    overwrite: bool = False,
) -> DigitsDataset:
    """Write the digits data set described by ``config`` into ``out`` and return it.

    ``out`` may be missing or empty. When it already holds a complete data set generated with the
    same config, that data set is returned without rewriting anything. When it holds one made
    with another config (or an interrupted run), it is replaced only with ``overwrite=True``;
    only the entries this generator owns (pool/, pool_truth/, val/, test/, data.yaml,
    manifest.json) are removed. A non-empty folder that is not a generated data set is refused
    even with ``overwrite=True``.

    Raises:
        TypeError: when ``config`` is not a :class:`DigitsConfig`.
        FileExistsError: when ``out`` may not be written (see above).
    """
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"config must be a DigitsConfig; got {type(config).__name__}")
    root = Path(out).expanduser().resolve()
    existing = _prepare_root(root, config, overwrite)
    if existing is not None:
        return existing

    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / INCOMPLETE_MARKER, json.dumps(config.to_dict(), sort_keys=True))
    dataset = _dataset_for(root, config)
    for directory in (dataset.pool_images, dataset.pool_truth, dataset.val_images,
                      dataset.val_labels, dataset.test_images, dataset.test_labels):
        directory.mkdir(parents=True, exist_ok=True)

    probs = class_probabilities(config)
    by_class = _samples_by_class(config.domain)
    entries: list[dict[str, Any]] = []
    split_stats: dict[str, Any] = {}
    # PNG encoding and file writes release the GIL: overlap them with rendering. The bytes do
    # not depend on the order the threads finish in.
    writer = ThreadPoolExecutor(max_workers=_WRITER_THREADS, thread_name_prefix="digits-writer")
    pending: list[Future[None]] = []
    try:
        _generate_splits(config, dataset, probs, by_class, writer, pending, entries, split_stats)
        for future in pending:
            future.result()  # re-raises a failed write
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
    _write_atomic(dataset.data_yaml, _data_yaml_text(root))
    return _finish(config, dataset, probs, entries, split_stats)


def _write_example(image: np.ndarray, image_path: Path, label_path: Path, labels: str) -> None:
    Image.fromarray(image).save(image_path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    label_path.write_text(labels, encoding="utf-8")


def _generate_splits(
    config: DigitsConfig,
    dataset: DigitsDataset,
    probs: np.ndarray,
    by_class: list[np.ndarray],
    writer: ThreadPoolExecutor,
    pending: list[Future[None]],
    entries: list[dict[str, Any]],
    split_stats: dict[str, Any],
) -> None:
    """Plan, render and queue the writes of every image; fill ``entries`` and ``split_stats``."""
    root = dataset.root
    counts = {"pool": config.pool_images, "val": config.val_images, "test": config.test_images}
    for split in SPLITS:
        clusters = _cluster_layout(_rng(config, split, 2), counts[split], config, split)
        split_entries: dict[int, dict[str, Any]] = {}
        for cluster_id, members in enumerate(clusters):
            scene = _plan_scene(_rng(config, split, 0, cluster_id), config, probs, by_class)
            for index in members:
                rendered = _render(scene, _rng(config, split, 1, index), jitter=len(members) > 1)
                stem = f"{split}_{index:06d}"
                image_path = dataset.image_dir(split) / f"{stem}.png"
                label_path = dataset.label_dir(split) / f"{stem}.txt"
                pending.append(writer.submit(
                    _write_example, rendered.image, image_path, label_path,
                    _format_labels(rendered.boxes, rendered.classes, scene.width, scene.height),
                ))
                if len(pending) >= _MAX_PENDING_WRITES:  # bound the images held in memory
                    pending.pop(0).result()
                split_entries[index] = {
                    "file": image_path.relative_to(root).as_posix(),
                    "labels": label_path.relative_to(root).as_posix(),
                    "split": split,
                    "width": scene.width,
                    "height": scene.height,
                    "boxes": int(rendered.boxes.shape[0]),
                    "classes": rendered.classes.tolist(),
                    "digit_samples": rendered.samples.tolist(),
                    "digits_skipped": scene.skipped,
                    "cluster_id": cluster_id,
                    "cluster_size": len(members),
                }
        ordered = [split_entries[i] for i in range(counts[split])]
        entries += ordered
        class_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        for entry in ordered:
            np.add.at(class_counts, entry["classes"], 1)
        split_stats[split] = {
            "images": counts[split],
            "boxes": int(class_counts.sum()),
            "class_box_counts": {name: int(n) for name, n in zip(CLASS_NAMES, class_counts)},
            "near_duplicate_clusters": sum(1 for c in clusters if len(c) > 1),
            "images_in_clusters": sum(len(c) for c in clusters if len(c) > 1),
        }


def _finish(
    config: DigitsConfig,
    dataset: DigitsDataset,
    probs: np.ndarray,
    entries: list[dict[str, Any]],
    split_stats: dict[str, Any],
) -> DigitsDataset:
    """Write the manifest (last: its presence marks a complete data set) and drop the marker."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "seed": config.seed,
        "domain": config.domain,
        "config": config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "rare_classes": list(resolve_rare_classes(config)),
        "class_probabilities": [round(float(p), 6) for p in probs],
        "sklearn_samples": {
            "rule": DOMAIN_RULE[config.domain],
            "count": int(domain_sample_indices(config.domain).size),
        },
        "ink_threshold": INK_THRESHOLD,
        "splits": split_stats,
        "images": entries,
    }
    _write_atomic(dataset.manifest, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (dataset.root / INCOMPLETE_MARKER).unlink()
    return dataset


def load_dataset(root: Path | str) -> DigitsDataset:
    """Re-open a data set written by :func:`generate_digits` from its manifest.

    When the folder was moved (data.yaml's ``path`` is not ``root``) or data.yaml is missing,
    data.yaml is rewritten for the current location; nothing else is touched.

    Raises:
        FileNotFoundError: when ``root`` does not exist.
        ValueError: when ``root`` holds no manifest written by :func:`generate_digits`.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data set root {root} does not exist; expected a folder written by generate_digits"
        )
    manifest = _read_manifest(root)
    if manifest is None:
        exists = (root / MANIFEST_NAME).exists()
        found = "a different or unreadable file" if exists else "no such file"
        raise ValueError(
            f"{root} is not a generated digits data set: expected {root / MANIFEST_NAME} with "
            f"format {MANIFEST_FORMAT!r}; got {found}"
        )
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{root / MANIFEST_NAME} has format_version {manifest.get('format_version')!r}; "
            f"expected {MANIFEST_VERSION}"
        )
    config = DigitsConfig.from_dict(manifest["config"])
    dataset = _dataset_for(root, config)
    if _data_yaml_root(dataset.data_yaml) != str(root):
        _write_atomic(dataset.data_yaml, _data_yaml_text(root))
    return dataset


def _data_yaml_root(path: Path) -> str | None:
    """The ``path`` entry of a data.yaml, or None when it is missing or unreadable."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(data.get("path")) if isinstance(data, dict) else None
