"""closed_loop: rounds of propose -> review -> learn in one run (demo and simulated studies).

The loop holds one MLflow campaign run: started before the first round, ended after the last
(FINISHED), or FAILED with the error when a round fails.

With ``handoff_s`` (the demo), a batch the Label Studio webhook marked reviewed is left to the
learn run the webhook receiver started, and the loop reads what it learnt from the round; the
compare-and-set on the round's status keeps it to one learn run whoever gets there first.

For real reviewers use the propose deployment and let the Label Studio webhook start
learn-round: waiting for people must not hold a process for days.
"""

from __future__ import annotations

from prefect import flow

from flows.learn_round import learn_round
from flows.naming import run_name
from flows.params import LearnParams, LoopParams, ProposeParams
from flows.propose_round import propose_round
from tasks.learn import end_campaign, start_campaign
from tasks.review import annotate_simulated, wait_for_review
from tasks.rounds import wait_for_learned


def _rounds(params: LoopParams) -> list[dict]:
    table: list[dict] = []
    for _ in range(params.rounds):
        proposed = propose_round(ProposeParams(
            project=params.project, config=params.config, strategy=params.strategy, limit=params.limit,
            diversity_weight=params.diversity_weight, group=params.group, seed=params.seed))
        if params.annotator == "simulated":
            annotate_simulated(params.config, params.project, params.truth_dir, params.noise, params.seed)
        number = proposed["round"]
        reviewed = wait_for_review(params.config, params.project, number, params.review_timeout_s, params.poll_s)
        learned = None
        if params.handoff_s > 0 and not reviewed.get("transitioned"):
            # The webhook marked the batch reviewed: its learn run (a run of the learn
            # deployment) learns the round; learn here only if no run takes it in time.
            learned = wait_for_learned(params.config, params.project, number, params.review_timeout_s,
                                       params.poll_s, params.handoff_s)
        if learned is None:
            learned = learn_round(LearnParams(project=params.project, round_number=number,
                                              config=params.config, campaign=params.campaign))
            if "skipped" in learned:  # another run won the round meanwhile: read what it learnt
                learned = wait_for_learned(params.config, params.project, number,
                                           params.review_timeout_s, params.poll_s, 0.0) or learned
        table.append({**learned, "strategy": proposed["strategy"], "queued": proposed["queued"]})
        if params.stop_on_plateau and learned.get("plateau", {}).get("plateaued"):
            break
    return table


@flow(name="closed-loop", flow_run_name=run_name("closed-loop"))
def closed_loop(params: LoopParams) -> list[dict]:
    campaign = start_campaign(params.config, params.project, params.campaign,
                              {"rounds": params.rounds, "annotator": params.annotator,
                               "strategy": params.strategy or "from config", "seed": params.seed})
    try:
        table = _rounds(params)
    except BaseException as exc:
        end_campaign(params.config, params.project, campaign, f"{type(exc).__name__}: {exc}")
        raise
    end_campaign(params.config, params.project, campaign, None)
    return table
