"""Auto-label tasks: plan shards of the pool, then predict each shard (mapped)."""

from __future__ import annotations

from prefect import task

from tasks.artifacts import step_logger
from tasks.settings import task_settings


@task(name="plan-auto-label-shards")
def plan_shards(config: str | None, project: str, shard_size: int) -> list[list[str]]:
    """Ids of ALL the project's images, cut into shards of ``shard_size``: unlabelled ones get
    predictions, and every image gets an embedding from the current model (diversity is measured
    against queued and labelled images too); auto-label skips what is already done."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(task_settings(config))
    ids = [img.image_id for img in catalog.images(catalog.project(project))]
    shards = [ids[i : i + shard_size] for i in range(0, len(ids), shard_size)] or [[]]
    step_logger().info(f"auto-label plan: {len(ids)} images of project {project} in "
                       f"{len(shards)} shard(s) of up to {shard_size}")
    return shards


@task(name="auto-label", task_run_name="auto-label-{project}-{shard_index}")
def auto_label(config: str | None, project: str, model: str, image_ids: list[str], shard_index: int = 0) -> dict:
    """Predict + embed one shard (resumable: done images are skipped)."""
    from labelwise.autolabel import auto_label as run
    from labelwise.round_story import shard_line
    from labelwise.runtime import load_detector, load_embedder, open_catalog

    settings = task_settings(config)
    catalog = open_catalog(settings)
    record = catalog.project(project)
    detector = load_detector(settings, record.class_names, model)
    report = run(catalog, record, detector, load_embedder(settings, detector),
                 settings.detector.batch, image_ids=image_ids or None)
    done = report.as_dict()
    step_logger().info(shard_line(done, shard_index))
    return done
