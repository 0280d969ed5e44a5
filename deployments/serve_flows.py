"""Serve every deployment of prefect.yaml from this process (no work pool needed).

    python -m deployments.serve_flows        # what `make up` runs

Schedules stay active when this process stops (``pause_on_shutdown=False``), so a restart
does not silently switch the cron schedule off.
"""

from __future__ import annotations

import importlib
from typing import Any

from deployments.prefect_yaml import load_deployments


def import_flow(entrypoint: str) -> Any:
    """``flows/propose_round.py:propose_round`` -> the flow object."""
    path, _, name = entrypoint.partition(":")
    module = path.removesuffix(".py").replace("/", ".")
    return getattr(importlib.import_module(module), name)


def runner_deployments(entries: list[dict[str, Any]]) -> list[Any]:
    from prefect.client.schemas.schedules import CronSchedule

    out = []
    for entry in entries:
        flow = import_flow(entry["entrypoint"])
        schedules = [CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC"))
                     for s in entry.get("schedules") or [] if s.get("active", True) and s.get("cron")]
        out.append(flow.to_deployment(
            name=entry["name"],
            description=entry.get("description"),
            tags=entry.get("tags"),
            parameters=entry.get("parameters"),
            schedules=schedules or None,
            concurrency_limit=entry.get("concurrency_limit"),
        ))
    return out


def main() -> None:
    from prefect import serve

    serve(*runner_deployments(load_deployments()), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
