"""auto_label_pool: the pool cut into shards, one mapped auto-label task per shard.

The same flow runs on threads (default), on a local Dask cluster or on a team's Dask cluster
(prefect-dask's DaskTaskRunner): see :func:`task_runner_for`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.auto_label import auto_label, plan_shards


def task_runner_for(dask_address: str | None, dask_workers: int) -> Any:
    """None (Prefect's default thread pool), or a DaskTaskRunner for an address or N local workers."""
    if not dask_address and dask_workers <= 0:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": dask_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@flow(name="auto-label-pool", flow_run_name="auto-label-{project}")
def auto_label_pool(config: str | None, project: str, model: str, shard_size: int = 256) -> list[dict]:
    shards = plan_shards(config, project, shard_size)
    return auto_label.map(config, project, model, shards, list(range(len(shards)))).result()


def run_auto_label_pool(config: str | None, project: str, model: str, shard_size: int,
                        dask_address: str | None = None, dask_workers: int = 0) -> list[dict]:
    runner = task_runner_for(dask_address, dask_workers)
    flow_fn = auto_label_pool if runner is None else auto_label_pool.with_options(task_runner=runner)
    return flow_fn(config, project, model, shard_size)
