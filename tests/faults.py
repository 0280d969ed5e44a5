"""Fault injection helpers: run the real CLI in a child process and kill -9 it at a chosen call.

``run_killed_at("labelwise.catalog:Catalog.mark_queued", 1, args)`` runs ``labelwise <args>``
in a fresh interpreter in which the ``nth`` call of that function sends SIGKILL to its own
process before it runs: a crash at an exact point of the command, with nothing cleaned up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_KILL_AT = """
import importlib, os, signal, sys
target, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
module, _, path = target.partition(":")
owner = importlib.import_module(module)
*parents, name = path.split(".")
for part in parents:
    owner = getattr(owner, part)
original = getattr(owner, name)
calls = [0]
def killer(*a, **k):
    calls[0] += 1
    if calls[0] >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*a, **k)
setattr(owner, name, killer)
from labelwise.cli.main import main
sys.argv = ["labelwise", *args]
main()
"""


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without a config file, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "LABELWISE_CONFIG"}
    env.update(extra or {})
    return env


def run_killed_at(target: str, nth: int, args: Sequence[str], *, env: Mapping[str, str],
                  cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``labelwise *args``, SIGKILLed at the ``nth`` call of ``target``
    (``"module:Owner.function"``); asserts that it died by SIGKILL."""
    done = subprocess.run([sys.executable, "-c", _KILL_AT, target, str(nth), *args], env=dict(env),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == -signal.SIGKILL, (
        f"expected the command to die by SIGKILL at call {nth} of {target}; it exited "
        f"{done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}")
    return done


def run_cli(args: Sequence[str], *, env: Mapping[str, str], cwd: Path,
            timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``labelwise *args`` in a child process (not checked)."""
    return subprocess.run([sys.executable, "-c", "from labelwise.cli.main import main; main()",
                           *args], env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)
