"""Background auto-label runs started over HTTP (one thread per run, one run per project).

Run ids are generated here (``uuid4`` hex); the status of every run of this process is kept in
memory (:meth:`AutoLabelJobs.get`). Orchestrated runs (Prefect deployments) are wired elsewhere.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class JobConflict(RuntimeError):
    """A run for that project is already running."""


@dataclass
class AutoLabelRun:
    """Status of one run: ``running`` -> ``completed`` | ``failed``; times in epoch seconds."""

    run_id: str
    project_id: str
    model: str | None
    tasks: tuple[str, ...] = ("detect",)
    status: str = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project_id": self.project_id,
            "model": self.model,
            "tasks": list(self.tasks),
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "report": self.report,
            "error": self.error,
        }


class AutoLabelJobs:
    """Starts ``work(project, model) -> report dict`` in daemon threads and tracks them."""

    def __init__(self, work: Callable[[str, str | None], dict[str, Any]]) -> None:
        self._work = work
        self._runs: dict[str, AutoLabelRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(
        self, project: str, model: str | None, tasks: tuple[str, ...] = ("detect",)
    ) -> AutoLabelRun:
        """Start a run of ``tasks`` (validated by the route; ``detect`` is what ``work`` does);
        JobConflict when the project already has one running."""
        with self._lock:
            busy = [
                r for r in self._runs.values() if r.project_id == project and r.status == "running"
            ]
            if busy:
                raise JobConflict(
                    f"project_id: auto-label run {busy[0].run_id} for {project!r} is "
                    "still running; poll it or wait for it to finish"
                )
            run = AutoLabelRun(uuid.uuid4().hex, project, model, tasks)
            self._runs[run.run_id] = run
            thread = threading.Thread(
                target=self._run,
                args=(run,),
                daemon=True,
                name=f"labelwise-auto-label-{run.run_id[:8]}",
            )
            self._threads[run.run_id] = thread
        thread.start()
        return run

    def _run(self, run: AutoLabelRun) -> None:
        try:
            report = self._work(run.project_id, run.model)
        except Exception as exc:  # noqa: BLE001 - reported through the status endpoint
            run.error, run.status = f"{type(exc).__name__}: {exc}", "failed"
        else:
            run.report, run.status = report, "completed"
        run.finished_at = time.time()

    def get(self, run_id: str) -> AutoLabelRun | None:
        return self._runs.get(run_id)

    def join(self, timeout_s: float = 30.0) -> None:
        """Wait for running threads (used at shutdown and in tests)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
