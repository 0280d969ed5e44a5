"""Flow run names that say project and round.

A run whose round is a parameter is named at once (``learn-<project>-round-<n>``); a run that
only learns its round on the way (propose: score-batch records it; learn without a
``round_number``) renames itself with :func:`name_after_round` once it knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID


def round_run_name(kind: str, project: str, round_number: int | None) -> str:
    """``<kind>-<project>``, plus ``-round-<n>`` when the round is known."""
    suffix = f"-round-{round_number}" if round_number is not None else ""
    return f"{kind}-{project}{suffix}"


def run_name(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: the run's name from its ``params`` parameter."""

    def name() -> str:
        from prefect.runtime import flow_run

        params: Any = flow_run.parameters.get("params", {})
        get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
        return round_run_name(kind, get("project", "?"), get("round_number", None))

    return name


def name_after_round(kind: str, project: str, round_number: int) -> str | None:
    """Rename the current flow run to ``<kind>-<project>-round-<n>``; returns the new name, or
    None outside a flow run (nothing to rename)."""
    from prefect import get_client, get_run_logger
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return None
    name = round_run_name(kind, project, round_number)
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(str(run_id)), name=name)
    get_run_logger().info(f"run named {name} (round {round_number})")
    return name


def current_run_name() -> str:
    """``<flow run name>``, plus `` (deployment <name>)`` for a run of a deployment (e.g. the
    learn run the webhook started), or ``"local"`` outside a flow run."""
    from prefect.runtime import deployment, flow_run

    name = flow_run.get_name() if flow_run.get_id() else None
    if not name:
        return "local"
    return f"{name} (deployment {deployment.get_name()})" if deployment.get_id() else str(name)
