"""Image files: discovery, content ids, safe reading and thumbnails (Pillow only)."""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
ID_LENGTH = 16  # hex characters of the SHA-256 of the file bytes (64 bits)


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not a decodable image."""


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


def read_image_info(path: Path) -> ImageInfo:
    """Hash and fully decode one image; ImageReadError names the file and the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    try:
        with Image.open(Path(path)) as img:
            img.load()  # decodes every pixel: truncated files fail here, not in training
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    if width < 1 or height < 1:
        raise ImageReadError(f"{path}: empty image ({width}x{height})")
    return ImageInfo(content_id(data), Path(path).resolve(), width, height)


def make_thumbnail(path: Path, out_dir: Path, image_id: str, size: int = 128) -> Path:
    """A JPEG no larger than ``size`` px on its long side, written once per image id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{image_id}_{size}.jpg"
    if out.exists():
        return out
    try:
        with Image.open(path) as img:
            thumb = img.convert("RGB")
            thumb.thumbnail((size, size))
            tmp = out.with_suffix(".tmp.jpg")
            thumb.save(tmp, "JPEG", quality=85)
            tmp.replace(out)
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageReadError(f"{path}: cannot make a thumbnail ({exc})") from exc
    return out
