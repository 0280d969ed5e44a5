"""Auto-label tasks: plan shards of the pool, then predict each shard (mapped)."""

from __future__ import annotations

from prefect import task

from tasks.artifacts import step_logger
from tasks.settings import task_settings


@task(name="plan-auto-label-shards")
def plan_shards(config: str | None, project: str, shard_size: int) -> list[list[str]]:
    """:func:`labelwise.rounds.proposing.pool_shards` (reads only)."""
    from labelwise.rounds.proposing import pool_shards

    shards = pool_shards(task_settings(config), project, shard_size)
    step_logger().info(f"auto-label plan: {sum(len(s) for s in shards)} images of project "
                       f"{project} in {len(shards)} shard(s) of up to {shard_size}")
    return shards


@task(name="auto-label", task_run_name="auto-label-{project}-{shard_index}")
def auto_label(config: str | None, project: str, model: str, image_ids: list[str], shard_index: int = 0) -> dict:
    """:func:`labelwise.rounds.proposing.auto_label_shard` (resumable: a rerun skips what an
    earlier run stored)."""
    from labelwise.round_story import shard_line
    from labelwise.rounds.proposing import auto_label_shard

    done = auto_label_shard(task_settings(config), project, model, image_ids)
    step_logger().info(shard_line(done, shard_index))
    return done
