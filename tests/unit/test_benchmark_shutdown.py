"""Stopping a benchmark: SIGTERM, Ctrl-C or SIGKILL of the parent leave no worker running.

Each case starts a real parent process (a small script) holding a spawn ProcessPoolExecutor whose
two workers sleep 60 s, signals the parent once both workers are running, and checks that the
parent and every worker are gone within 10 s. Each guard is tested alone: SIGTERM and SIGINT
without the workers' parent-death signal (stop_workers_on_exit must do it), SIGKILL with it only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from labelwise.benchmark.shutdown import BenchmarkInterrupted, stop_processes, stop_workers_on_exit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux only"),
]

WORKERS = 2
DEADLINE_S = 10.0
SRC = Path(__file__).resolve().parents[2] / "src"

PARENT = textwrap.dedent(
    """
    import multiprocessing
    import os
    import sys
    import time
    from concurrent.futures import ProcessPoolExecutor, wait
    from pathlib import Path

    from labelwise.benchmark.shutdown import stop_workers_on_exit, worker_dies_with_parent


    def task(folder: str) -> None:
        tmp = Path(folder, f"{os.getpid()}.tmp")
        tmp.write_text("")
        tmp.rename(Path(folder, f"{os.getpid()}.pid"))
        time.sleep(60)


    if __name__ == "__main__":
        folder, workers, guard = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        ctx = multiprocessing.get_context("spawn")
        init = worker_dies_with_parent if guard == "pdeathsig" else None
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init) as pool:
            if guard == "pdeathsig":
                wait([pool.submit(task, folder) for _ in range(workers)])
            else:
                with stop_workers_on_exit(pool, grace_s=2.0):
                    wait([pool.submit(task, folder) for _ in range(workers)])
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps yet counts as gone: it runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _start_parent(tmp_path: Path, guard: str) -> tuple[subprocess.Popen, Path, Path]:
    """The parent process, the folder its workers write ``<pid>.pid`` into, its stderr file.

    Output goes to files, not pipes: orphaned workers would hold a pipe open.
    """
    script = tmp_path / "parent.py"
    script.write_text(PARENT, encoding="utf-8")
    pids = tmp_path / "pids"
    pids.mkdir()
    stderr = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(pids), str(WORKERS), guard], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    return proc, pids, stderr


def _worker_pids(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in folder.glob("*.pid"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("signum", "guard", "stderr_says"),
    [(signal.SIGTERM, "context", "BenchmarkInterrupted: benchmark stopped by SIGTERM"),
     (signal.SIGINT, "context", "KeyboardInterrupt"),
     (signal.SIGKILL, "pdeathsig", None)],  # no Python code runs in the parent: PDEATHSIG only
    ids=["sigterm", "sigint", "sigkill"],
)
def test_signal_to_the_parent_stops_every_worker(tmp_path, signum, guard, stderr_says):
    proc, folder, stderr = _start_parent(tmp_path, guard)
    workers: list[int] = []
    try:
        started = _wait_for(lambda: len(_worker_pids(folder)) == WORKERS or proc.poll() is not None, 30)
        workers = _worker_pids(folder)
        assert started and len(workers) == WORKERS, f"workers did not start: {stderr.read_text()}"
        assert all(_alive(pid) for pid in workers)
        proc.send_signal(signum)
        try:
            proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the parent still runs {DEADLINE_S} s after {signum.name}: {stderr.read_text()}")
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), DEADLINE_S), (
            f"workers still running {DEADLINE_S} s after {signum.name}: "
            f"{[pid for pid in workers if _alive(pid)]}")
        if stderr_says is not None:
            assert stderr_says in stderr.read_text()
            assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


class _FakeProcess:
    """Stands in for a multiprocessing.Process: records the calls, optionally ignores terminate."""

    def __init__(self, stubborn: bool) -> None:
        self.stubborn, self.alive, self.calls = stubborn, True, []

    def terminate(self) -> None:
        self.calls.append("terminate")
        self.alive = self.stubborn

    def kill(self) -> None:
        self.calls.append("kill")
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        self.calls.append("join")

    def is_alive(self) -> bool:
        return self.alive


class _FakePool:
    def __init__(self, processes: list[_FakeProcess]) -> None:
        self._processes = {i: p for i, p in enumerate(processes)}
        self.shutdown_calls: list[dict] = []

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.shutdown_calls.append({"wait": wait, "cancel_futures": cancel_futures})


def test_stop_processes_kills_only_the_stubborn():
    polite, stubborn = _FakeProcess(stubborn=False), _FakeProcess(stubborn=True)
    stop_processes([polite, stubborn], grace_s=0.0)
    assert "kill" not in polite.calls and stubborn.calls[-2:] == ["kill", "join"]


def test_context_stops_workers_on_error_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    procs = [_FakeProcess(stubborn=False)]
    pool = _FakePool(procs)
    with pytest.raises(RuntimeError, match="boom"):
        with stop_workers_on_exit(pool, grace_s=0.0):  # type: ignore[arg-type]
            assert signal.getsignal(signal.SIGTERM) is not before
            raise RuntimeError("boom")
    assert procs[0].calls[0] == "terminate"
    assert pool.shutdown_calls == [{"wait": False, "cancel_futures": True}]
    assert signal.getsignal(signal.SIGTERM) is before


def test_context_turns_sigterm_into_benchmark_interrupted_and_leaves_a_clean_exit_alone():
    pool = _FakePool([_FakeProcess(stubborn=False)])
    with pytest.raises(BenchmarkInterrupted, match="SIGTERM") as info:
        with stop_workers_on_exit(pool, grace_s=0.0):  # type: ignore[arg-type]
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted by the handler
    assert info.value.signum == signal.SIGTERM and len(pool.shutdown_calls) == 1
    quiet = _FakePool([_FakeProcess(stubborn=False)])
    with stop_workers_on_exit(quiet):  # type: ignore[arg-type]
        pass
    assert quiet.shutdown_calls == [] and quiet._processes[0].calls == []
    with pytest.raises(ValueError, match="grace_s must be >= 0; got -1"):
        with stop_workers_on_exit(quiet, grace_s=-1):  # type: ignore[arg-type]
            pass
