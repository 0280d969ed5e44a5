"""learn_round: pull annotations -> retrain -> evaluate -> track -> promote (once per batch),
the library's use case (:func:`labelwise.rounds.learning.learn_round`) with its steps as tasks.

Logs one line per step and leaves the round's page as the artifact ``learn-<project>``
(:mod:`tasks.artifacts`); a run started without ``round_number`` renames itself
``learn-<project>-round-<n>`` once it has found the round.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.naming import current_run_name, name_after_round, run_name
from flows.params import LearnParams
from labelwise.rounds.learning import RETRYABLE_STEPS
from labelwise.rounds.learning import learn_round as learn
from tasks.artifacts import publish_learn
from tasks.rounds import round_info
from tasks.settings import task_settings
from tasks.steps import prefect_step


@flow(name="learn-round", flow_run_name=run_name("learn"))
def learn_round(params: LearnParams) -> dict:
    """The library's learn use case, each step a task run (``labelwise.rounds.learning``)."""
    cfg, project = params.config, params.project
    number = round_info(cfg, project, params.round_number)["number"]
    if params.round_number is None:
        name_after_round("learn", project, number)
    outcome = learn(task_settings(cfg), project, number, params.campaign,
                    run=prefect_step(RETRYABLE_STEPS), say=get_run_logger().info,
                    learnt_by=current_run_name())
    if outcome.skipped is None:
        publish_learn(cfg, project, outcome)
    return outcome.as_dict()
