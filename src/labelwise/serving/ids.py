"""Ids and paths that come from the network.

Image ids are the catalog's content ids: exactly 16 lower-case hex characters
(:data:`labelwise.images.ID_LENGTH`). Anything else is refused before it is looked up, and every
path built from request data is resolved and checked to stay inside its root folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from labelwise.images import ID_LENGTH

IMAGE_ID_PATTERN = rf"^[0-9a-f]{{{ID_LENGTH}}}$"
_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class UnsafePathError(ValueError):
    """A path built from request data would leave its root folder."""


def is_image_id(value: object) -> bool:
    return isinstance(value, str) and _IMAGE_ID.fullmatch(value) is not None


def check_image_id(value: object, field: str = "image_id") -> str:
    """``value`` if it is a content id; ValueError naming ``field`` otherwise."""
    if not is_image_id(value):
        shown = repr(value)[:40]
        raise ValueError(f"{field} must be {ID_LENGTH} lower-case hex characters; got {shown}")
    return str(value)


def safe_child(root: Path, *parts: str) -> Path:
    """``root / parts...`` resolved, guaranteed to lie inside ``root`` (also resolved).

    Raises:
        UnsafePathError: the result escapes ``root`` (``..``, an absolute part, a symlink out).
    """
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"path {'/'.join(parts)!r} must stay inside {base}; got {target}")
    return target


def folder_name(name: str, fallback: str) -> str:
    """``name`` when it is a safe single path segment, else ``fallback`` (e.g. ``project-3``)."""
    return name if _SAFE_NAME.fullmatch(name) and name not in {".", ".."} else fallback
