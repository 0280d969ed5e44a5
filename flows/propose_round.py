"""propose_round: auto-label -> score -> queue. Ends when the batch is in Label Studio.

The library's use case (:func:`labelwise.rounds.proposing.propose_round`) with its steps as
tasks and the pool's shards mapped over Prefect's task runner (:mod:`flows.auto_label_pool`).
The run renames itself ``propose-<project>-round-<n>`` once score-batch has recorded the round,
logs one line per step and leaves the queue as artifacts (``queue-<project>``,
``contact-sheet-<project>``: :mod:`tasks.artifacts`).
"""

from __future__ import annotations

from functools import partial

from prefect import flow, get_run_logger

from flows.auto_label_pool import run_auto_label_pool
from flows.naming import name_after_round, run_name
from flows.params import ProposeParams
from labelwise.rounds.proposing import RETRYABLE_STEPS, ProposeRequest
from labelwise.rounds.proposing import propose_round as propose
from tasks.artifacts import publish_queue
from tasks.settings import task_settings
from tasks.steps import prefect_step


@flow(name="propose-round", flow_run_name=run_name("propose"))
def propose_round(params: ProposeParams) -> dict:
    """The library's propose use case, each step a task run (``labelwise.rounds.proposing``)."""
    cfg, project = params.config, params.project
    request = ProposeRequest(project, params.strategy, params.limit, params.diversity_weight,
                             params.model, params.group, params.seed)
    label_pool = partial(run_auto_label_pool, cfg, project, shard_size=params.shard_size,
                         dask_address=params.dask_address, dask_workers=params.dask_workers)
    outcome = propose(task_settings(cfg), request, run=prefect_step(RETRYABLE_STEPS),
                      label_pool=label_pool, say=get_run_logger().info,
                      on_round=partial(name_after_round, "propose", project))
    publish_queue(outcome.batch.as_json(), outcome.artifacts, outcome.queued)
    return outcome.as_dict()
