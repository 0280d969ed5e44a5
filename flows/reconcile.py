"""reconcile: the cron safety net for lost webhooks.

For every queued round whose review is complete in Label Studio, mark it reviewed and learn it.
learn_round's compare-and-set keeps this from training a batch the webhook already started.
"""

from __future__ import annotations

from prefect import flow

from flows.learn_round import learn_round
from flows.naming import run_name
from flows.params import LearnParams, ReconcileParams
from labelwise.rounds import QUEUED, REVIEWED
from tasks.review import review_status
from tasks.rounds import list_rounds, move_round


@flow(name="reconcile", flow_run_name=run_name("reconcile"))
def reconcile(params: ReconcileParams) -> list[dict]:
    cfg, project = params.config, params.project
    learned = []
    for number in list_rounds(cfg, project, QUEUED):
        status = review_status(cfg, project, number)
        if status["complete"]:
            move_round(cfg, project, number, [QUEUED], REVIEWED)
    for number in list_rounds(cfg, project, REVIEWED):
        learned.append(learn_round(LearnParams(project=project, round_number=number, config=cfg,
                                               campaign=params.campaign)))
    return learned
