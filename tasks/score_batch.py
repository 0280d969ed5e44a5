"""Score-batch task: score the pool and select this round's queue (recorded as a round)."""

from __future__ import annotations

from prefect import task

from tasks.artifacts import step_logger
from tasks.settings import task_settings


@task(name="score-batch")
def score_batch(
    config: str | None, project: str, strategy: str | None, limit: int | None,
    diversity_weight: float | None, model_version: str | None, seed: int = 0,
) -> dict:
    """``strategy``, ``limit``, ``diversity_weight``: None = the config's value."""
    from labelwise.round_story import score_batch_line
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    settings = task_settings(config)
    request = ScoreBatchRequest.from_settings(settings, project, strategy=strategy, limit=limit,
                                              diversity_weight=diversity_weight,
                                              model_version=model_version, seed=seed)
    batch = build_score_batch(open_catalog(settings), settings, request, record=True).as_json()
    step_logger().info(score_batch_line(batch))
    return batch
