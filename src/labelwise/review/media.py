"""Where queued images live so Label Studio can serve them.

Label Studio serves local files only under its document root, through a local storage on a
SUBFOLDER of it. Pool images may live anywhere, so each queued image is placed at
``<state_dir>/media/<project folder>/<image_id><suffix>``: a hard link when the file system allows
it (no extra disk), else a copy. Placement is atomic (a temporary name, then ``os.replace``), and
an existing file is kept: image ids are content hashes, so the same name means the same bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from labelwise.catalog import ImageRecord, ProjectRecord
from labelwise.config import Settings

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def project_folder_name(project: ProjectRecord) -> str:
    """The project's name when it is file-name safe, else a slug plus ``-<catalog id>``."""
    slug = _SAFE.sub("_", project.name)
    if slug == project.name and slug not in {".", ".."}:
        return slug
    return f"{slug.strip('.') or 'project'}-{project.id}"


def media_dir(settings: Settings, project: ProjectRecord) -> Path:
    """``<state_dir>/media/<project folder>`` (absolute; not created)."""
    return settings.state_dir / "media" / project_folder_name(project)


def media_path(settings: Settings, project: ProjectRecord, image: ImageRecord) -> Path:
    """Where ``image`` is served from: ``media_dir / <image_id><lower-case suffix>``."""
    return media_dir(settings, project) / f"{image.image_id}{image.path.suffix.lower()}"


def check_sources(images: Sequence[ImageRecord]) -> None:
    """Every image file still exists.

    Raises:
        FileNotFoundError: naming the missing files (first 10) and their image ids.
    """
    missing = [(img.image_id, str(img.path)) for img in images if not img.path.is_file()]
    if missing:
        listed = ", ".join(f"{path} (image {image_id})" for image_id, path in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(
            f"{len(missing)} queued image file(s) vanished since they were added: {listed}{more}; "
            "expected every selected image to exist (restore the files, or remove them from the "
            "pool and score again)"
        )


def place(source: Path, target: Path) -> Path:
    """Hard-link (else copy) ``source`` to ``target`` atomically; an existing target is kept."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def place_all(
    settings: Settings, project: ProjectRecord, images: Sequence[ImageRecord]
) -> dict[str, Path]:
    """Place every image; ``{image_id: served path}``. Checks all sources first."""
    check_sources(images)
    return {img.image_id: place(img.path, media_path(settings, project, img)) for img in images}
