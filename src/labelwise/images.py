"""Image files: discovery, content ids, safe reading and thumbnails (Pillow only).

Orientation rule (one for every reader)
---------------------------------------
An image is what it looks like once its EXIF ``Orientation`` tag is applied
(:func:`PIL.ImageOps.exif_transpose`): a phone photo stored 314x133 with orientation 6 is a
133x314 image everywhere in Labelwise. :func:`read_image_info` (the catalog's width/height),
:func:`make_thumbnail`, the serving upload decoder (:mod:`labelwise.serving.uploads`), the
embedders and the contact sheets apply it through :func:`oriented` / :func:`oriented_size`; the
detector reads files with ultralytics' ``imread`` (OpenCV ``imdecode`` with ``IMREAD_COLOR``),
which applies it too, and so does ultralytics' training loader, while browsers (Label Studio's
editor) display images oriented. Boxes are therefore always in the oriented image's pixels, and
Label Studio percentages computed from the catalog's size land on the object. Measured: Pillow's
transpose and OpenCV's reader give identical pixels for orientations 1-8 in PNG, WEBP and TIFF
and the same size for JPEG (tests/unit/test_image_faults.py keeps them in agreement).

Pixel cap
---------
:func:`open_capped` refuses an image of more than ``max_pixels`` pixels (``images.max_pixels``
in the settings, default :data:`DEFAULT_MAX_PIXELS`, Pillow's own warning limit) from its header,
before any pixel is decoded, with :class:`ImageTooLarge`: a decompression bomb is one more bad
file, reported and skipped like a truncated one. Pillow itself refuses anything above twice its
limit (:data:`PIL_HARD_LIMIT`), so caps go no higher.
"""

from __future__ import annotations

import glob
import hashlib
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
ID_LENGTH = 16  # hex characters of the SHA-256 of the file bytes (64 bits)
DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS: Pillow warns above this
PIL_HARD_LIMIT = 2 * DEFAULT_MAX_PIXELS  # Pillow raises DecompressionBombError above this
ORIENTATION_TAG = 0x0112  # EXIF Orientation
_SWAPS_AXES = frozenset({5, 6, 7, 8})  # orientations that turn width into height


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not a decodable image."""


class ImageTooLarge(ImageReadError):
    """An image with more pixels than the cap (a decompression bomb, or just too big)."""


class ThumbnailWriteError(OSError):
    """A thumbnail that could not be written (its folder, not the pool image, is the problem)."""


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1-8) of an opened image; 1 when absent or unreadable."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is treated as no orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as displayed: axes swapped for orientations 5-8."""
    width, height = img.size
    return (height, width) if exif_orientation(img) in _SWAPS_AXES else (width, height)


def oriented(img: Image.Image) -> Image.Image:
    """``img`` with its EXIF orientation applied (``img`` itself when there is none)."""
    if exif_orientation(img) == 1:
        return img
    return ImageOps.exif_transpose(img)


def check_pixels(
    width: int, height: int, max_pixels: int | None, what: str, setting: str = "images.max_pixels"
) -> None:
    """ImageTooLarge naming ``what`` and the ``setting`` of the cap when width x height exceeds
    ``max_pixels`` (None: no cap)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"{what}: {width}x{height} = {width * height} pixels; expected at most "
            f"{max_pixels} pixels ({setting})"
        )


def open_capped(
    fp: "str | Path | IO[bytes]",
    max_pixels: int | None,
    what: str,
    setting: str = "images.max_pixels",
) -> Image.Image:
    """``Image.open`` that refuses more than ``max_pixels`` pixels before decoding any of them.

    The pixel count comes from the header. Pillow's own decompression-bomb error (above
    :data:`PIL_HARD_LIMIT`) becomes :class:`ImageTooLarge` too, and its warning (above its
    default limit) is silenced: the cap here is the one that applies. The caller closes the image.

    Raises:
        ImageTooLarge: over the cap. Pillow's own errors (UnidentifiedImageError, OSError, ...)
            pass through.
    """
    try:
        # catch_warnings is process-wide: a race between threads can at worst leave this same
        # "ignore" filter installed, which changes nothing here (the cap below applies).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            f"{what}: more than {PIL_HARD_LIMIT} pixels, a decompression bomb to Pillow "
            f"({exc}); expected at most {max_pixels or PIL_HARD_LIMIT} pixels ({setting})"
        ) from None
    try:
        check_pixels(*img.size, max_pixels, what, setting)
    except ImageTooLarge:
        img.close()
        raise
    return img


@dataclass(frozen=True)
class ImageInfo:
    """What the catalog keeps of an image file."""

    image_id: str
    path: Path
    width: int
    height: int


def content_id(data: bytes) -> str:
    """Stable image id: the first 16 hex characters of SHA-256 of the file's bytes."""
    return hashlib.sha256(data).hexdigest()[:ID_LENGTH]


def expand_sources(source: str | Path) -> list[Path]:
    """Image files named by a file, a folder (searched recursively) or a glob pattern.

    Returns absolute paths, sorted. Raises FileNotFoundError when nothing matches.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file():
        files = [path]
    elif glob.has_magic(text):
        files = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
    else:
        raise FileNotFoundError(f"{text} is neither an image file, a folder nor a glob pattern")
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {text}")
    return sorted(p.resolve() for p in files)


def read_image_info(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Hash and fully decode one image; ImageReadError names the file and the problem.

    Width and height are the oriented image's (see the module docstring). ``max_pixels``
    (None: only Pillow's hard limit) is checked from the header, before decoding.

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels.
        ImageReadError: missing, unreadable, not an image, truncated or empty.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    try:
        with open_capped(Path(path), max_pixels, str(path)) as img:
            img.load()  # decodes every pixel: truncated files fail here, not in training
            width, height = oriented_size(img)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    if width < 1 or height < 1:
        raise ImageReadError(f"{path}: empty image ({width}x{height})")
    return ImageInfo(content_id(data), Path(path).resolve(), width, height)


def make_thumbnail(path: Path, out_dir: Path, image_id: str, size: int = 128) -> Path:
    """A JPEG no larger than ``size`` px on its long side, written once per image id (of the
    oriented image: see the module docstring).

    Safe with other processes and threads making the same thumbnail: each writes its own
    temporary file in ``out_dir`` (a pid + random suffix) and renames it over the thumbnail
    atomically (``os.replace``), so the thumbnail is always a whole JPEG, whoever wins.

    Raises:
        ImageTooLarge, ImageReadError: the pool image ``path`` cannot be read (its path named).
        ThumbnailWriteError: the thumbnail cannot be written (the thumbnail's path named); the
            pool image is fine.
    """
    out = out_dir / f"{image_id}_{size}.jpg"
    if out.is_file():
        return out
    try:
        with open_capped(path, PIL_HARD_LIMIT, str(path)) as img:
            thumb = oriented(img).convert("RGB")
            thumb.thumbnail((size, size))
    except ImageTooLarge:
        raise
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot make a thumbnail ({exc})") from exc
    tmp = out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as fh:  # exclusive: never another writer's file
            thumb.save(fh, "JPEG", quality=85)
        os.replace(tmp, out)
    except (OSError, ValueError) as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the folder itself is the problem: nothing was left in it
            pass
        raise ThumbnailWriteError(
            f"{out}: cannot write the thumbnail of {path} ({exc}); expected a writable "
            f"folder {out_dir} where {out.name} is a file or absent"
        ) from exc
    return out
