"""Run a library use case's steps as Prefect tasks (the flows' :class:`StepRunner`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

STEP_RETRIES = 3
"""Retries of a step that is safe to repeat (the use case names them)."""

STEP_RETRY_DELAYS_S: list[float] = [2, 5, 10]
"""Seconds before each retry (Label Studio and MLflow are services that restart)."""


def prefect_step(retryable: frozenset[str]) -> Callable[..., Any]:
    """A step runner: each step becomes a task run named after it; steps in ``retryable`` (safe
    to repeat) are retried :data:`STEP_RETRIES` times after :data:`STEP_RETRY_DELAYS_S`, the
    others never. Inputs are not cached (they hold settings and results, not keys)."""

    def run(name: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        retries = STEP_RETRIES if name in retryable else 0
        step = task(name=name, retries=retries, retry_delay_seconds=list(STEP_RETRY_DELAYS_S),
                    cache_policy=NO_CACHE)(fn)
        return step(*args)

    return run
