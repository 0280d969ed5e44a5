"""Session fixtures for integration tests: ONE real Label Studio server for the whole session.

The first start takes ~40-60 s (migrations), so every integration module shares it; each test
keeps to its own Label Studio projects (unique titles) and its own state folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labelwise.config import LabelStudioSettings, Settings
from tests.labelstudio_server import LabelStudioServer


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """The session's Label Studio server (127.0.0.1, free port, data in a session temp dir);
    stopped by PID at the end of the session."""
    if not LabelStudioServer.installed():
        pytest.skip(LabelStudioServer.NOT_INSTALLED)
    with LabelStudioServer(tmp_path_factory.mktemp("labelstudio")) as server:
        print(f"\nLabel Studio first start: {server.startup_seconds:.1f} s at {server.url}")
        yield server


@pytest.fixture(scope="session")
def labelstudio(labelstudio_server: LabelStudioServer) -> tuple[str, str, Path]:
    """``(url, token, document_root)`` of the session's server."""
    server = labelstudio_server
    return server.url, server.token, server.document_root


@pytest.fixture(scope="session")
def make_ls_settings(labelstudio: tuple[str, str, Path]) -> Callable[..., Settings]:
    """Factory of Settings talking to the session's server.

    ``make(name=None, **labelstudio_overrides)``: ``state_dir`` is a fresh folder INSIDE the
    document root (so queued media can be served), ``webhook_url`` is empty unless overridden,
    retries are few and quick.
    """
    url, token, root = labelstudio

    def make(name: str | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"url": url, "api_key": token, "document_root": root,
                                  "webhook_url": "", "retries": 2, "timeout_s": 30.0}
        values.update(overrides)
        state = root / f"state-{name or uuid.uuid4().hex[:8]}"
        return Settings(state_dir=state, labelstudio=LabelStudioSettings(**values))

    return make


@pytest.fixture
def ls_settings(make_ls_settings: Callable[..., Settings]) -> Settings:
    """Settings for one test: its own state folder, the session's server, no webhook."""
    return make_ls_settings()
