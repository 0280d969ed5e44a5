"""Shared CLI plumbing: settings from the context, uniform error exits, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from labelwise.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2


def settings_from(ctx: typer.Context) -> Settings:
    """Settings for this invocation (the root callback stored the --config path)."""
    obj = ctx.find_root().obj or {}
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("config"))
        ctx.find_root().obj = obj
    return obj["settings"]


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def friendly_errors(fn: F) -> F:
    """Turn expected failures (bad input, unknown names, unreachable services) into exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from labelwise.errors import is_expected

        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_expected(exc):
                fail(str(exc))
            raise

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def existing_path(value: Path) -> Path:
    if not value.exists():
        raise typer.BadParameter(f"{value} does not exist")
    return value


# Options shared by several commands (one definition, one help text).
def project_option() -> Any:
    return typer.Option(..., "--project", "-p", help="Project name.")


def strategy_option() -> Any:
    return typer.Option(None, "--strategy", "-s", help="Selection strategy (default from config).")


def limit_option() -> Any:
    return typer.Option(None, "--limit", "-n", help="Queue length (>= 1).")


def diversity_weight_option() -> Any:
    return typer.Option(None, "--diversity-weight", "-w", help="0 = pure uncertainty, 1 = pure diversity.")
