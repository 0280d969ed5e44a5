"""Uploaded image bytes: validation and where they are written.

An upload is decoded completely with Pillow before any model sees it (truncated and non-image
files are refused) and its pixel count is capped from the header, before decoding, at
:func:`pixel_cap` (``serving.max_image_pixels``, and never above the pool's
``images.max_pixels``, since a flagged upload joins the pool): a decompression bomb is a 422 like
any bad file. Its EXIF orientation is applied (:func:`labelwise.images.oriented`, the rule of
every reader), so ``width``/``height`` and the boxes are the oriented image's, as auto-label's
reader and the catalog see it. The model predicts on those decoded pixels (no second decode, no
file). Only a flagged image is written, under
``<state_dir>/uploads/<project folder>/``: first to a temporary name (for the embedder), then
atomically renamed to ``<content id>.<ext>`` (the pool's durable copy).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from labelwise.catalog import ProjectRecord
from labelwise.images import ImageTooLarge, content_id, open_capped, oriented
from labelwise.serving.ids import folder_name, safe_child

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.config import ServingSettings, Settings

FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


class UploadError(ValueError):
    """The upload is not an acceptable image; the message names the ``file`` field."""


@dataclass(frozen=True)
class DecodedUpload:
    """A validated upload: its bytes, content id, size in pixels, file suffix and pixels.

    Attributes:
        width, height: of the EXIF-oriented image.
        pixels: (height, width, 3) uint8 BGR of the EXIF-oriented image, the channel order and
            orientation ultralytics reads files in.
    """

    data: bytes
    image_id: str
    width: int
    height: int
    suffix: str
    pixels: np.ndarray


def pixel_cap(settings: "Settings", serving: "ServingSettings") -> tuple[int, str]:
    """(the most pixels an upload may have, the setting that sets it): the smaller of
    ``serving.max_image_pixels`` and the pool's ``images.max_pixels``."""
    pool = settings.images.max_pixels
    if serving.max_image_pixels <= pool:
        return serving.max_image_pixels, "serving.max_image_pixels"
    return pool, "images.max_pixels"


def decode_upload(
    data: bytes, max_pixels: int, setting: str = "serving.max_image_pixels"
) -> DecodedUpload:
    """Check that ``data`` is one complete PNG/JPEG/BMP/TIFF/WEBP image of at most
    ``max_pixels`` pixels (``setting`` names where that cap comes from, for the message) and
    decode it, EXIF orientation applied.

    Raises:
        UploadError: empty, not an image, an unsupported format, truncated, or too large.
    """
    if not data:
        raise UploadError("file: expected an image file; got an empty upload")
    try:
        with open_capped(io.BytesIO(data), max_pixels, "file", setting) as img:
            fmt = img.format or "unknown"
            width, height = img.size
            if fmt not in FORMAT_SUFFIX:
                raise UploadError(f"file: expected one of {sorted(FORMAT_SUFFIX)}; got {fmt}")
            if width < 1 or height < 1:
                raise UploadError(f"file: expected 1 to {max_pixels} pixels; got {width}x{height}")
            img.load()  # decodes every pixel: truncated files fail here
            shown = oriented(img)
            width, height = shown.size
            pixels = _bgr(shown)
    except UploadError:
        raise
    except ImageTooLarge as exc:
        raise UploadError(str(exc)) from None
    except UnidentifiedImageError:
        raise UploadError(
            f"file: expected one of {sorted(FORMAT_SUFFIX)}; got {len(data)} bytes "
            "that are not a known image format"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UploadError(
            f"file: expected a complete image; got a broken or truncated one ({exc})"
        ) from exc
    return DecodedUpload(data, content_id(data), width, height, FORMAT_SUFFIX[fmt], pixels)


def _bgr(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 BGR of a loaded image (greyscale, palette and alpha images become RGB
    first, as OpenCV's colour reader does; the caller applies the EXIF orientation first, as
    OpenCV's reader does)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    raw = bytearray(rgb.tobytes("raw", "BGR"))  # one pass to BGR; bytearray keeps it writeable
    return np.frombuffer(raw, np.uint8).reshape(rgb.height, rgb.width, 3)


def upload_dir(state_dir: Path, project: ProjectRecord) -> Path:
    """``<state_dir>/uploads/<project name, or project-<id> when unsafe as a folder name>``."""
    name = folder_name(project.name, f"project-{project.id}")
    return safe_child(Path(state_dir) / "uploads", name)


def write_incoming(folder: Path, upload: DecodedUpload) -> Path:
    """Write the bytes to a fresh temporary file in ``folder/.incoming`` (for inference)."""
    incoming = folder / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{uuid.uuid4().hex}{upload.suffix}"
    path.write_bytes(upload.data)
    return path


def keep(folder: Path, incoming: Path, upload: DecodedUpload) -> Path:
    """Move the temporary file to ``folder/<content id><suffix>`` (kept when it exists)."""
    target = safe_child(folder, f"{upload.image_id}{upload.suffix}")
    if target.is_file():
        incoming.unlink(missing_ok=True)
        return target
    os.replace(incoming, target)
    return target
