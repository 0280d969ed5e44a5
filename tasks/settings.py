"""Settings inside a task: the flow passes the config file path, never a settings object."""

from __future__ import annotations

from labelwise.config import Settings, load_settings


def task_settings(config: str | None) -> Settings:
    """Settings from ``config`` (empty string = none given, as templated deployments pass it)."""
    return load_settings(config or None)
