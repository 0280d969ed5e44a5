"""Request plumbing shared by the routers: the state, the API key, project access, errors.

Error bodies are FastAPI's ``{"detail": ...}``; every message starts with the field it is about
(``project_id: unknown project 'x'; known projects: [...]``).

Where a body may leave ``project_id`` out, :func:`inferred_project` applies the inference rule:
the key's project when the key is limited to one; else (an all-projects key, or a key for
several projects) the one project among those the key may use that holds the request's image
ids; else 422 naming the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _usable_projects(state: ServingState, key: ApiKey) -> list[ProjectRecord]:
    """The existing projects ``key`` may use, by name (every project for an all-projects key)."""
    if key.all_projects:
        return state.catalog.projects()
    found: list[ProjectRecord] = []
    for name in sorted(key.projects):
        try:
            found.append(state.project(name))
        except ProjectNotFound:
            continue  # deleted since the key was made
    return found


def inferred_project(
    state: ServingState,
    key: ApiKey,
    name: str | None,
    field: str = "project_id",
    image_ids: Sequence[str] = (),
) -> ProjectRecord:
    """The project a request means: ``name`` when given (:func:`authorized_project`), else
    inferred.

    * A key limited to one project: that project.
    * Otherwise (an all-projects key, or a key for several projects), with ``image_ids``: the
      one usable project holding every id; when no usable project holds them all but exactly
      one holds some, that one (its missing ids are then the route's 404).
    * Otherwise 422 naming the candidates (no ids, ids from several projects, or ids that are
      in each of several projects); 404 when no usable project holds any of the ids.
    """
    if name is not None:
        return authorized_project(state, key, name, field)
    if not key.all_projects and len(key.projects) == 1:
        return authorized_project(state, key, key.projects[0], field)
    candidates = _usable_projects(state, key)
    names = [p.name for p in candidates]
    scope = "every project" if key.all_projects else f"projects {sorted(key.projects)}"
    if not image_ids:
        raise HTTPException(
            422,
            f"{field}: expected a project name: API key {key.key_id} may use {scope}, so the "
            f"project cannot be inferred; candidates: {names}",
        )
    wanted = list(dict.fromkeys(image_ids))
    holding = {
        p.name: (p, {r.image_id for r in state.catalog.images(p, image_ids=wanted)})
        for p in candidates
    }
    holding = {n: v for n, v in holding.items() if v[1]}
    complete = [n for n, (_, ids) in holding.items() if len(ids) == len(wanted)]
    if len(complete) == 1:
        return holding[complete[0]][0]
    if len(complete) > 1:
        raise HTTPException(
            422,
            f"{field}: expected a project name: every image id is in each of projects "
            f"{complete}; candidates: {complete}",
        )
    if len(holding) == 1:
        return next(iter(holding.values()))[0]
    if not holding:
        raise HTTPException(
            404,
            f"image_ids: no project API key {key.key_id} may use ({scope}) has image(s) "
            f"{wanted[:10]}; known candidates: {names}",
        )
    where = {n: sorted(ids)[:5] for n, (_, ids) in sorted(holding.items())}
    raise HTTPException(
        422,
        f"{field}: expected a project name: the image ids belong to several projects "
        f"({where}); candidates: {sorted(holding)}",
    )
