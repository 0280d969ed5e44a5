"""Scene backgrounds and ink colours of the digits generator.

All images are float32 RGB in [0, 1], shaped (height, width, 3); every random choice is drawn
from the caller's :class:`numpy.random.Generator`, in a fixed order (determinism).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .config import Domain


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
        texture = rng.uniform(-1.0, 1.0, size=(height // block + 1, width // block + 1, 1))
        blocky = np.repeat(np.repeat(texture, block, axis=0), block, axis=1)[:height, :width]
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
