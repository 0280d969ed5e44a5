"""Flow run names that say project and round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def run_name(kind: str) -> Callable[[], str]:
    def name() -> str:
        from prefect.runtime import flow_run

        params: Any = flow_run.parameters.get("params", {})
        get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
        project = get("project", "?")
        round_number = get("round_number", None)
        suffix = f"-round-{round_number}" if round_number is not None else ""
        return f"{kind}-{project}{suffix}"

    return name
