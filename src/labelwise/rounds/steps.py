"""How a use case runs its steps: a :class:`StepRunner` gets each step's name and library call.

The round's use cases (:mod:`.proposing`, :mod:`.learning`) are written as a sequence of named
steps, each one library call. :func:`run_directly` calls them (the CLI, a notebook); the Prefect
flows pass a runner that makes each step a task run of the same name (``tasks.steps``), so the
command and the flow run the same code in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class StepRunner(Protocol):
    """Runs one named step of a use case: ``runner(name, fn, *args) -> fn(*args)``."""

    def __call__(self, name: str, fn: Callable[..., Any], /, *args: Any) -> Any: ...


def run_directly(name: str, fn: Callable[..., Any], /, *args: Any) -> Any:
    """The plain step runner: call ``fn(*args)``."""
    return fn(*args)
