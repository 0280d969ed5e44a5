"""Run a library use case's steps as Prefect tasks (the flows' :class:`StepRunner`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


def prefect_step(retryable: frozenset[str]) -> Callable[..., Any]:
    """A step runner: each step becomes a task run named after it; steps in ``retryable`` (safe
    to repeat) are retried twice, 5 s apart, the others never. Inputs are not cached (they hold
    settings and results, not keys)."""

    def run(name: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        step = task(name=name, retries=2 if name in retryable else 0, retry_delay_seconds=5,
                    cache_policy=NO_CACHE)(fn)
        return step(*args)

    return run
