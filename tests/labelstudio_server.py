"""A real, throw-away Label Studio server for tests, driven through ``scripts/labelstudio.sh``.

Usage (e.g. in a session-scoped fixture)::

    if not LabelStudioServer.installed():
        pytest.skip(LabelStudioServer.NOT_INSTALLED)
    with LabelStudioServer(tmp_path_factory.mktemp("ls")) as server:
        yield server          # server.url, server.token, server.document_root

The server binds 127.0.0.1 on a free port with its data (sqlite) in a temporary folder; the first
start takes ~40-60 s (migrations). It is stopped by PID in ``__exit__`` even if start-up failed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "labelstudio.sh"
VENV = REPO_ROOT / ".venv-labelstudio"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LabelStudioServer:
    """One Label Studio server under ``base_dir`` (``data/`` and ``files/``, the document root).

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        token: the admin's legacy API token.
        document_root: the local-files serving root; put images in a SUBFOLDER of it.
        startup_seconds: wall time of the last ``start`` (None before).
    """

    NOT_INSTALLED = (
        f"Label Studio is not installed in {VENV}; run: bash scripts/labelstudio.sh install"
    )

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        token: str = "labelwise-test-token",
        username: str = "admin@labelwise.local",
        password: str = "labelwise-test-password",
        start_timeout_s: int = 240,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.document_root = self.base_dir / "files"
        self.port = port or free_port()
        self.token = token
        self.username = username
        self.password = password
        self.start_timeout_s = start_timeout_s
        self.startup_seconds: float | None = None

    @staticmethod
    def installed() -> bool:
        return (VENV / "bin" / "label-studio").exists()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            LW_LS_PORT=str(self.port),
            LW_LS_DATA_DIR=str(self.data_dir),
            LW_LS_DOCUMENT_ROOT=str(self.document_root),
            LW_LS_USERNAME=self.username,
            LW_LS_PASSWORD=self.password,
            LW_LS_TOKEN=self.token,
            LW_LS_START_TIMEOUT=str(self.start_timeout_s),
        )
        return env

    def _run(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> "LabelStudioServer":
        """Start (or find running) and wait until the API accepts the token."""
        self.document_root.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        done = self._run("start", self.start_timeout_s + 30)
        self.startup_seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(
                f"scripts/labelstudio.sh start exited {done.returncode}; expected 0.\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return self

    def stop(self) -> None:
        """Stop by PID (TERM, then KILL after the script's timeout)."""
        done = self._run("stop", 60)
        if done.returncode != 0:
            raise RuntimeError(
                f"scripts/labelstudio.sh stop exited {done.returncode}; expected 0: {done.stderr}"
            )

    def status(self) -> str:
        return self._run("status", 30).stdout.strip()

    def __enter__(self) -> "LabelStudioServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
