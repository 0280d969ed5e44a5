"""Measure bulk task import into Label Studio (goal: 1,000 tasks with predictions in <= 10 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelwise.domain import Detections
from labelwise.labelstudio.boxes import detections_to_ls_result
from labelwise.labelstudio.client import IMPORT_CHUNK_SIZE, LabelStudioClient
from labelwise.labelstudio.label_config import build_label_config


def _random_detections(rng: np.random.Generator, n: int, width: int, height: int,
                       num_classes: int) -> Detections:
    xy = rng.uniform(0, 0.7, size=(n, 2)) * [width, height]
    wh = rng.uniform(0.05, 0.3, size=(n, 2)) * [width, height]
    probs = rng.dirichlet(np.ones(num_classes), size=n)
    return Detections(
        xyxy=np.concatenate([xy, xy + wh], axis=1),
        confidence=rng.uniform(0.05, 0.95, size=n),
        class_id=probs.argmax(axis=1),
        probs=probs,
    )


def bench_import(
    client: LabelStudioClient,
    n_tasks: int = 1000,
    *,
    boxes_per_task: int = 3,
    class_names: Sequence[str] = ("cat", "dog", "bird"),
    chunk_size: int = IMPORT_CHUNK_SIZE,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
) -> dict[str, Any]:
    """Import ``n_tasks`` tasks, each with one prediction of ``boxes_per_task`` boxes, into a
    throw-away project (deleted afterwards) and time the import calls only.

    Image URLs point at files that need not exist: the server does not fetch them on import.

    Returns:
        ``{"n_tasks", "boxes_per_task", "chunk_size", "seconds", "tasks_per_s"}``; seconds is
        wall time of :meth:`LabelStudioClient.import_tasks`.
    """
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        dets = _random_detections(rng, boxes_per_task, width, height, len(class_names))
        tasks.append({
            "data": {"image": f"/data/local-files/?d=bench/{i:06d}.png", "group": "bench",
                     "image_id": f"bench-{i:06d}"},
            "predictions": [{
                "model_version": "bench",
                "score": float(dets.confidence.min()),
                "result": detections_to_ls_result(dets, class_names, width, height),
            }],
        })
    project_id = client.ensure_project(
        f"labelwise-bench-{uuid.uuid4().hex[:8]}", build_label_config(class_names)
    )
    try:
        start = time.perf_counter()
        ids = client.import_tasks(project_id, tasks, key="image_id",
                                  chunk_size=chunk_size).task_ids
        seconds = time.perf_counter() - start
    finally:
        client.delete_project(project_id)
    if len(ids) != n_tasks:
        raise RuntimeError(f"bench imported {len(ids)} tasks; expected {n_tasks}")
    return {
        "n_tasks": n_tasks,
        "boxes_per_task": boxes_per_task,
        "chunk_size": chunk_size,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n_tasks / seconds, 1) if seconds > 0 else float("inf"),
    }
