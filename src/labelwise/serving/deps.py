"""Request plumbing shared by the routers: the state, the API key, project access, errors.

Error bodies are FastAPI's ``{"detail": ...}``; every message starts with the field it is about
(``project_id: unknown project 'x'; known projects: [...]``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from labelwise.catalog import ProjectNotFound, ProjectRecord
from labelwise.serving.auth import ApiKey
from labelwise.serving.state import ServingState

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A key from `labelwise api-key create`, sent as `Authorization: Bearer <key>`.",
)


async def get_state(request: Request) -> ServingState:
    """(async: FastAPI runs sync dependencies in a thread, one hop per request.)"""
    return request.app.state.serving


async def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The caller's key; 401 when missing or invalid (a cache hit costs no database query)."""
    state: ServingState = request.app.state.serving
    key = state.keys.verify(state.catalog, credentials.credentials if credentials else None)
    if key is None:
        raise HTTPException(
            401,
            "Authorization: expected 'Bearer <api key>' with a valid, unrevoked key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


StateDep = Annotated[ServingState, Depends(get_state)]
KeyDep = Annotated[ApiKey, Depends(require_key)]


def require_admin(key: ApiKey, endpoint: str) -> None:
    """403 unless ``key`` is an all-projects key: admin endpoints (``/v1/admin/*`` and
    ``/v1/serving/stats``) act on the whole deployment, so a single-project key may not call
    them (see :class:`~labelwise.serving.auth.ApiKey`)."""
    if not key.all_projects:
        raise HTTPException(
            403,
            f"Authorization: {endpoint} needs an all-projects API key "
            f"(`labelwise api-key create --all`); key {key.key_id} is limited to projects "
            f"{list(key.projects)}",
        )


def authorized_project(
    state: ServingState, key: ApiKey, name: str | None, field: str
) -> ProjectRecord:
    """The project ``name`` if the key may use it: 403 without access, 404 when unknown."""
    if name is None or not name.strip():
        raise HTTPException(422, f"{field}: expected a project name; got none")
    if not key.can_access(name):
        raise HTTPException(403, f"{field}: API key {key.key_id} has no access to project {name!r}")
    try:
        return state.project(name)
    except ProjectNotFound as exc:
        raise HTTPException(404, f"{field}: {exc}") from None
