"""URLs of images that Label Studio serves from its local-files document root.

The server is started with ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=R``; an image at ``R/a/b.png``
is then served at ``/data/local-files/?d=a/b.png`` to users of a project that has a local import
storage on a folder containing it (a SUBFOLDER of R, never R itself).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

LOCAL_FILES_PREFIX = "/data/local-files/?d="


def relative_to_root(path: Path, document_root: Path) -> Path:
    """``path`` relative to ``document_root`` after resolving both.

    Raises:
        ValueError: ``path`` is not inside ``document_root``.
    """
    root = Path(document_root).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    try:
        return target.relative_to(root)
    except ValueError:
        raise ValueError(
            f"{target} is outside the Label Studio document root {root}; expected a path under it "
            "(set labelstudio.document_root / LW_LS_DOCUMENT_ROOT to a common parent)"
        ) from None


def local_files_url(path: Path, document_root: Path) -> str:
    """The server-relative URL Label Studio serves ``path`` at.

    Returns:
        ``/data/local-files/?d=<path relative to document_root, URL-quoted, '/' separators>``.

    Raises:
        ValueError: ``path`` is outside ``document_root`` or is the root itself.
    """
    rel = relative_to_root(path, document_root)
    if rel == Path("."):
        raise ValueError(f"{path} is the document root itself; expected a file inside it")
    return LOCAL_FILES_PREFIX + quote(rel.as_posix(), safe="/")


def check_storage_path(path: Path, document_root: Path) -> Path:
    """Validate a local import storage folder: a strict subfolder of the document root.

    Returns:
        The resolved absolute folder path.

    Raises:
        ValueError: ``path`` is the document root or outside it.
    """
    rel = relative_to_root(path, document_root)
    if rel == Path("."):
        raise ValueError(
            f"local storage path {Path(path).resolve()} equals the document root; Label Studio "
            "expects a SUBFOLDER of the document root"
        )
    return Path(path).expanduser().resolve()
