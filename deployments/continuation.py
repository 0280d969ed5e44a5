"""The hook the webhook receiver calls when a round's batch is fully reviewed: one learn run.

``run_deployment`` with ``timeout=0`` returns as soon as the run is created; the idempotency
key (project + round) makes Prefect hand back the same run if the hook fires twice (the webhook
receiver's learn-request worker repeats it until Prefect answers, e.g. after an outage, or
after a reply from Prefect was lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
LEARN_DEPLOYMENT = "learn-round/learn"


def idempotency_key(project: str, round_number: int) -> str:
    return f"labelwise-learn-{project}-round-{round_number}"


def start_learn_run(config: str | None, campaign: str = "default") -> Callable[[str, int], str]:
    """A hook that starts the learn deployment for (project, round) and returns the run's name
    and id; raises when Prefect cannot be reached (the caller retries)."""

    def hook(project: str, round_number: int) -> str:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        run = run_deployment(
            LEARN_DEPLOYMENT,
            parameters={"params": {"project": project, "round_number": round_number,
                                   "config": config or "", "campaign": campaign}},
            timeout=0,
            idempotency_key=idempotency_key(project, round_number),
            as_subflow=False,
        )
        if not isinstance(run, FlowRun):  # run_deployment hands back a coroutine inside an event loop
            raise TypeError("start_learn_run's hook must be called outside an event loop")
        log.info("learn run %s (%s) for %s round %s", run.name, run.id, project, round_number)
        return f"{run.name} ({run.id})"

    return hook
