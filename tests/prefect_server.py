"""A real Prefect server (API, UI, scheduler) and a deployment runner, for trigger tests.

Both bind 127.0.0.1, run as detached process groups and are stopped by PID, always.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


class PrefectServer:
    """``with PrefectServer(home) as server: server.api_url``; scheduler loop every 2 s."""

    def __init__(self, home: Path, start_timeout_s: float = 90.0) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.log = home / "prefect-server.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        })
        return env

    def __enter__(self) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        stop_group(self.proc)
        raise TimeoutError(f"prefect server did not answer within {self.start_timeout_s} s")

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc)


class DeploymentRunner:
    """``python -m deployments.serve_flows`` against ``server`` with the given environment."""

    def __init__(self, server: PrefectServer, env: dict[str, str], log: Path) -> None:
        self.server, self.extra_env, self.log = server, env, log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "DeploymentRunner":
        env = {**self.server.env(), **self.extra_env}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "deployments.serve_flows"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=REPO)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc)
