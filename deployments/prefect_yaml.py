"""Read prefect.yaml (the one description of Labelwise's deployments) for ``serve``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ENV_TEMPLATE = re.compile(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
REPO_ROOT = Path(__file__).resolve().parent.parent


def substitute_env(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``{{ $VAR }}`` in every string of a YAML tree; a missing variable is an error."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise KeyError(f"prefect.yaml needs environment variable {name}; it is not set")
            return env[name]

        return ENV_TEMPLATE.sub(repl, value)
    if isinstance(value, list):
        return [substitute_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: substitute_env(v, env) for k, v in value.items()}
    return value


def load_deployments(path: Path | None = None, env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The ``deployments:`` entries of prefect.yaml with environment values filled in."""
    data = yaml.safe_load((path or REPO_ROOT / "prefect.yaml").read_text())
    return substitute_env(data.get("deployments", []), dict(os.environ if env is None else env))
