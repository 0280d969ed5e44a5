"""A real, throwaway PostgreSQL server for the tests: its own data folder, 127.0.0.1 only.

Debian's ``postgresql`` package (``scripts/system-deps.sh`` installs it) ships ``initdb`` and
``postgres`` under ``/usr/lib/postgresql/<version>/bin``. The server refuses to run as root, so
when the tests run as root it runs as the package's ``postgres`` user (``setpriv``, which
``exec``s: the PID we hold is the server's own). Each test gets a fresh database
(:meth:`PostgresServer.new_database`), dropped when it ends; :meth:`stop` shuts the server down by
its PID (SIGINT: PostgreSQL's fast shutdown) and removes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, else the folder of
    ``initdb`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: expected /usr/lib/postgresql/<version>/bin/"
                       "initdb (Debian's postgresql package; run `make setup`, which installs it)")


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1:<free port>, trust authentication, user ``labelwise``."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="labelwise-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "labelwise"
        self.process: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")  # Debian's package creates it
            self._as = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def start(self) -> "PostgresServer":
        log = self.root / "server.log"
        subprocess.run([*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                        "--auth=trust", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", str(self.root), "-c", "fsync=off",
                 "-c", "max_connections=100"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.process.returncode} at start: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                self.execute("SELECT 1")
                return self
            except Exception:  # noqa: BLE001 - not accepting connections yet
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"PostgreSQL did not accept connections within {START_TIMEOUT_S:.0f} s")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database,
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh, empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
