"""Stopping a benchmark: no training worker outlives the process that started it.

Two ways a run ends early, and what makes the workers stop with it:

* **Ctrl-C or SIGTERM** (``kill``, a Prefect cancel, a container stop) reaches the main process:
  :func:`stop_workers_on_exit` turns SIGTERM into :class:`BenchmarkInterrupted` (Ctrl-C is already
  ``KeyboardInterrupt``), and on any exception leaving the block terminates every worker process,
  SIGKILLs those still alive after ``grace_s`` and shuts the pool down without waiting.
* **SIGKILL** (or a crash) of the main process runs no Python code at all: each worker asks the
  kernel to send it SIGTERM when its parent goes away, by calling :func:`worker_dies_with_parent`
  first thing in the pool initializer.

Usage::

    with ProcessPoolExecutor(..., initializer=init) as pool:   # init calls worker_dies_with_parent()
        with stop_workers_on_exit(pool):
            ...  # submit and wait
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_KILL_JOIN_S = 2.0


class BenchmarkInterrupted(BaseException):
    """The run was stopped by a signal (SIGTERM); a BaseException, like KeyboardInterrupt, so
    ``except Exception`` blocks on the way up do not swallow it.

    Attributes:
        signum: the signal number; a CLI exits with ``128 + signum`` by convention.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"benchmark stopped by {signal_name(self.signum)}")


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``signal 99`` for a number without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise BenchmarkInterrupted(signum)


def worker_processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's live ``multiprocessing.Process`` objects (none once it is shut down).

    Reads the private ``_processes`` mapping (pid -> Process) of CPython's executor: the public
    API offers no way to stop a running task.
    """
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())


def stop_processes(processes: list[Any], grace_s: float = 3.0) -> None:
    """SIGTERM each process, wait up to ``grace_s`` in all, then SIGKILL the ones still alive."""
    for proc in processes:
        with contextlib.suppress(Exception):  # already gone, or never started
            proc.terminate()
    deadline = time.monotonic() + max(grace_s, 0.0)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(deadline - time.monotonic(), 0.0))
    for proc in processes:
        with contextlib.suppress(Exception):
            if proc.is_alive():
                proc.kill()
                proc.join(_KILL_JOIN_S)


@contextlib.contextmanager
def _signals_ignored(signums: tuple[int, ...]) -> Iterator[None]:
    """Ignore ``signums`` while cleaning up (a second Ctrl-C must not cut it short); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def stop_workers_on_exit(pool: ProcessPoolExecutor, grace_s: float = 3.0) -> Iterator[ProcessPoolExecutor]:
    """Within the block SIGTERM raises :class:`BenchmarkInterrupted`; any exception leaving it
    stops the pool's workers.

    On a BaseException (Ctrl-C, SIGTERM, an error in the caller's loop): SIGTERM every worker,
    wait up to ``grace_s`` seconds, SIGKILL the rest, ``pool.shutdown(wait=False,
    cancel_futures=True)``, then re-raise. Further SIGINT / SIGTERM are ignored during that
    (bounded) cleanup. A normal exit leaves the pool alone.

    The SIGTERM handler is installed only when called from the main thread (Python delivers
    signals there only) and the previous handler is restored on exit.

    Args:
        pool: the executor whose worker processes must not outlive the block on error.
        grace_s: seconds the workers get to exit after SIGTERM before being killed.

    Yields:
        ``pool``.
    """
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0; got {grace_s}")
    in_main = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main else None
    try:
        yield pool
    except BaseException:
        with _signals_ignored((signal.SIGINT, signal.SIGTERM)):
            stop_processes(worker_processes(pool), grace_s)
            with contextlib.suppress(Exception):
                pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def worker_dies_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux; a no-op elsewhere).

    Call it first in a process pool's ``initializer``: it covers the one case
    :func:`stop_workers_on_exit` cannot, the parent being SIGKILLed (or crashing), which would
    otherwise leave the trainings running as orphans. Uses ``prctl(PR_SET_PDEATHSIG, SIGTERM)``
    through ctypes; if the parent is already gone when it runs, the process SIGTERMs itself.

    Caveat (from prctl(2)): the signal is sent when the *thread* that started the worker exits.
    ``ProcessPoolExecutor`` (spawn) starts workers from the thread calling ``submit``, the main
    thread in the benchmark runner; submitting from a short-lived thread would kill the worker
    when that thread ends. Failures (no libc, a sandbox refusing prctl) are ignored: the guard
    is best-effort.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None and os.getppid() != parent.pid:
        os.kill(os.getpid(), signal.SIGTERM)  # the parent died before prctl took effect
