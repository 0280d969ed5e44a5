"""Operations: health, hot reload of the served model, and serving statistics.

Reload and statistics are admin endpoints: they need an all-projects key (``labelwise api-key
create --all``); a single-project key gets 403 (:func:`~labelwise.serving.deps.require_admin`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from labelwise.serving import outbox
from labelwise.serving.deps import KeyDep, StateDep, authorized_project, require_admin
from labelwise.serving.responses import error_responses

router = APIRouter(tags=["operations"])
OptionalProject = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Default: the served project.")
]


@router.get("/healthz")
def health() -> dict[str, str]:
    """Liveness (no key needed)."""
    return {"status": "ok"}


ADMIN_RESPONSES = error_responses(503, _403="Not an all-projects key")


@router.post("/v1/admin/reload", responses=ADMIN_RESPONSES)
def reload_model(
    state: StateDep,
    key: KeyDep,
    response: Response,
    project_id: OptionalProject = None,
) -> dict[str, Any]:
    """Load the project's model again from its source (the registry champion, or the file)
    and swap it in; requests in flight finish on the model they started with. Needs an
    all-projects key."""
    require_admin(key, "POST /v1/admin/reload")
    project = authorized_project(state, key, project_id or state.serving.project, "project_id")
    holder = state.models.holder(project)
    try:
        result = holder.reload("POST /v1/admin/reload")
    except Exception as exc:  # noqa: BLE001 - the loaded model keeps serving
        holder.last_error = f"{type(exc).__name__}: {exc}"
        raise HTTPException(
            503,
            f"model: reload of project {project.name!r} failed, the "
            f"previous model keeps serving: {holder.last_error}",
        ) from None
    response.headers["X-Model-Version"] = result.current
    return {"project_id": project.name, **result.as_json(), **holder.current.describe()}


@router.get("/v1/serving/stats", responses=ADMIN_RESPONSES)
def serving_stats(
    state: StateDep, key: KeyDep, project_id: OptionalProject = None
) -> dict[str, Any]:
    """Counters of this process, the flag guards' state and the delivery outbox. Needs an
    all-projects key."""
    require_admin(key, "GET /v1/serving/stats")
    project = authorized_project(state, key, project_id or state.serving.project, "project_id")
    holder = state.models.get(project.name)
    s = state.serving
    return {
        "project_id": project.name,
        "model": holder.current.describe() if holder is not None and holder.loaded else None,
        "model_reloads": holder.reloads if holder is not None else 0,
        "model_last_error": holder.last_error if holder is not None else None,
        "evaluation": {
            "strategy": s.routing_strategy,
            "threshold": s.routing_threshold,
            "upload_group": s.upload_group,
        },
        "counts": state.stats.snapshot(project.name),
        "rate_caps": state.caps.usage(project.name),
        "near_duplicate": {
            "distance_threshold": s.near_duplicate_distance,
            "enabled": state.guard.enabled,
        },
        "outbox": {
            **outbox.outbox_counts(state.catalog, project),
            "worker_delivered": state.worker.delivered,
            "worker_failures": state.worker.failures,
            "worker_last_error": state.worker.last_error,
        },
    }
