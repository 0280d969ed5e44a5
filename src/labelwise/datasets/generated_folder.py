"""The folder a bundled data set generator writes: what it owns, and when it may write there.

Every generator of :mod:`labelwise.datasets` follows the same rules, kept here once:

* an empty or missing root is written;
* a root holding a complete set of the same config (and manifest version) is reused as it is;
* a set of another config is replaced only with ``overwrite=True``, removing only the entries
  the generator owns;
* an interrupted run of the generator (its incomplete marker, no manifest) is cleared: what it
  left is the generator's own;
* any other non-empty folder is refused, so nothing a user stored there is lost.

The manifest is written last, so its presence marks a complete set.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class GeneratedFolder:
    """One generator's ownership of its root folder.

    Attributes:
        generator: the generating function's name, for messages (``generate_digits_segment``).
        what: what the set is, for messages (``digits segmentation set``).
        manifest_format, manifest_version: the manifest's ``format`` and ``format_version``.
        owned: the entries under the root the generator writes (and may remove).
        incomplete_marker: the file that marks a run in progress.
    """

    generator: str
    what: str
    manifest_format: str
    manifest_version: int
    owned: tuple[str, ...]
    incomplete_marker: str

    def read_manifest(self, root: Path) -> dict[str, Any] | None:
        """The root's manifest when it is this generator's (any version), else None."""
        path = root / MANIFEST_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and data.get("format") == self.manifest_format else None

    def remove_owned(self, root: Path) -> None:
        """Remove what the generator owns under ``root`` (and its incomplete marker), nothing else."""
        for name in (*self.owned, self.incomplete_marker):
            target = root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()

    def holds(self, root: Path, config: Mapping[str, Any], overwrite: bool,
              is_complete: Callable[[dict[str, Any]], bool]) -> bool:
        """Whether ``root`` already holds the complete set of ``config`` (reuse it); False when
        the generator may write it (anything of its own there has been removed).

        Args:
            root: the absolute data set folder.
            config: the wanted config as the manifest records it.
            overwrite: replace a set of another config.
            is_complete: whether every file a manifest lists is present.

        Raises:
            FileExistsError: ``root`` is a file, holds a set of another config without
                ``overwrite``, or holds anything that is not the generator's.
        """
        if root.exists() and not root.is_dir():
            raise FileExistsError(f"the data set folder must be a folder; {root} exists and is not a directory")
        if not root.exists() or not any(root.iterdir()):
            return False
        wanted = dict(config)
        manifest = self.read_manifest(root)
        if manifest is not None:
            same = manifest.get("config") == wanted and manifest.get("format_version") == self.manifest_version
            if same and is_complete(manifest):
                return True
            if not same and not overwrite:
                raise FileExistsError(
                    f"{root} holds a {self.what} generated with another config "
                    f"({config_diff(manifest.get('config') or {}, wanted)}); pass overwrite=True to "
                    f"replace it, or choose another folder"
                )
            self.remove_owned(root)
            return False
        if (root / self.incomplete_marker).is_file():  # an interrupted run of ours: all ours
            self.remove_owned(root)
            return False
        even = " even with overwrite=True" if overwrite else ""
        raise FileExistsError(
            f"{root} is not empty and is not a generated {self.what} (no {MANIFEST_NAME} from "
            f"{self.generator}); refusing to write into it{even} so nothing stored there is lost. "
            f"Choose an empty or new folder."
        )


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"key: old -> new; ..."`` over the keys whose values differ (``"format version"`` when
    none does: the manifest is of another version)."""
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs) or "format version"
