"""propose_round: auto-label -> score -> queue. Ends when the batch is in Label Studio.

The run renames itself ``propose-<project>-round-<n>`` once score-batch has recorded the round,
logs one line per step and leaves the queue as artifacts (``queue-<project>``,
``contact-sheet-<project>``: :mod:`tasks.artifacts`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.auto_label_pool import run_auto_label_pool
from flows.naming import name_after_round, run_name
from flows.params import ProposeParams
from labelwise.round_story import auto_label_line, model_line
from tasks.artifacts import publish_queue
from tasks.model import resolve_model
from tasks.review import queue_for_review
from tasks.rounds import record_round_figures, write_batch_artifacts
from tasks.score_batch import score_batch


def choose_strategy(requested: str | None, base_model: dict) -> str | None:
    """No trained model yet (a yaml build) -> diversity-only cold start."""
    if requested is None and base_model["source"] == "configured" and base_model["ref"].endswith((".yaml", ".yml")):
        return "cold_start"
    return requested


@flow(name="propose-round", flow_run_name=run_name("propose"))
def propose_round(params: ProposeParams) -> dict:
    cfg, project = params.config, params.project
    log = get_run_logger()
    base = resolve_model(cfg, project, params.model)
    log.info(model_line(base))
    labelled = run_auto_label_pool(cfg, project, base["ref"], params.shard_size,
                                   params.dask_address, params.dask_workers)
    log.info(auto_label_line(labelled))
    batch = score_batch(cfg, project, choose_strategy(params.strategy, base), params.limit,
                        params.diversity_weight, labelled[0]["model_version"], params.seed)
    round_number = batch["params"]["round"]
    name_after_round("propose", project, round_number)
    artifacts = write_batch_artifacts(cfg, batch)
    queued = queue_for_review(cfg, project, batch, params.group)
    record_round_figures(cfg, project, round_number, {
        "base_model": base["ref"],
        "seconds/auto_label": sum(r["seconds"] for r in labelled),
        "artifacts": artifacts,
    })
    publish_queue(batch, artifacts, queued)
    return {"round": round_number, "strategy": batch["strategy"], "model_version": batch["model_version"],
            "queued": len(batch["queue"]), "labelstudio": queued}
