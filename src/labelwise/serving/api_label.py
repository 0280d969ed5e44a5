"""The labelling API: score-batch, thumbnails, auto-label runs, assignments, rounds.

``POST /v1/labeling/auto`` and ``POST /v1/assignments/queue`` take their fields as JSON or as a
form (urlencoded or multipart; :mod:`labelwise.serving.bodies`) and may leave ``project_id`` out
when it can be inferred (:func:`labelwise.serving.deps.inferred_project`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from labelwise.catalog import CatalogError
from labelwise.images import ImageReadError, make_thumbnail
from labelwise.labelstudio.errors import LabelStudioError, LabelStudioUnavailable
from labelwise.scorebatch import (
    NoPredictionsError,
    ScoreBatchRequest,
    build_score_batch,
)
from labelwise.serving.bodies import body_of, body_openapi
from labelwise.serving.deps import KeyDep, StateDep, authorized_project, inferred_project
from labelwise.serving.ids import IMAGE_ID_PATTERN, UnsafePathError, safe_child
from labelwise.serving.jobs import JobConflict
from labelwise.serving.responses import error_responses
from labelwise.serving.state import check_model_ref
from labelwise.strategies import STRATEGIES, get_strategy

router = APIRouter(prefix="/v1", tags=["labelling"])
MAX_LIMIT = 1000
MAX_ASSIGN = 1000
ProjectQuery = Annotated[str, Query(min_length=1, max_length=200, description="Project name.")]
ImageId = Annotated[str, Field(pattern=IMAGE_ID_PATTERN)]


def _thumbnail_url(request: Request, project: str, image_id: str) -> str:
    return f"{request.url_for('thumbnail', image_id=image_id)}?project_id={quote(project)}"


@router.get("/label/score-batch", responses=error_responses(409))
def score_batch(
    request: Request,
    state: StateDep,
    key: KeyDep,
    project_id: ProjectQuery,
    strategy: Annotated[
        str | None, Query(max_length=100, description=f"One of {sorted(STRATEGIES)}.")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
    diversity_weight: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> dict[str, Any]:
    """The CLI's ``score-batch`` JSON (not recorded as a round); thumbnails are API URLs."""
    project = authorized_project(state, key, project_id, "project_id")
    if strategy is not None:
        try:
            get_strategy(strategy)
        except ValueError as exc:
            raise HTTPException(422, f"strategy: {exc}") from None
    request_ = ScoreBatchRequest.from_settings(
        state.settings,
        project.name,
        strategy=strategy,
        limit=limit,
        diversity_weight=diversity_weight,
    )
    try:
        built = build_score_batch(state.catalog, state.settings, request_, record=False)
    except NoPredictionsError as exc:
        raise HTTPException(409, f"project_id: {exc}") from None
    except ImageReadError as exc:  # a pool file vanished or broke since it was added
        raise HTTPException(409, f"project_id: {exc}") from None
    except CatalogError as exc:  # e.g. the strategy needs embeddings the project lacks
        raise HTTPException(422, f"strategy: {exc}") from None
    batch = built.as_json()
    batch["queue"] = [{**item.as_json(), "thumbnail": _thumbnail_url(request, project.name, item.image_id)}
                      for item in built.queue]
    return batch


@router.get(
    "/thumbnails/{image_id}",
    name="thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses()},
)
def thumbnail(
    state: StateDep,
    key: KeyDep,
    project_id: ProjectQuery,
    image_id: Annotated[str, Path(pattern=IMAGE_ID_PATTERN, description="16 hex characters.")],
) -> FileResponse:
    """A JPEG thumbnail (long side ``serving.thumbnail_size`` px) of a catalogued image."""
    project = authorized_project(state, key, project_id, "project_id")
    found = state.catalog.images(project, image_ids=[image_id])
    if not found:
        raise HTTPException(404, f"image_id: project {project.name!r} has no image {image_id!r}")
    size = state.serving.thumbnail_size
    try:
        path = make_thumbnail(found[0].path, state.settings.thumbnails_dir, image_id, size)
        path = safe_child(state.settings.thumbnails_dir, path.name)
    except (ImageReadError, UnsafePathError) as exc:
        raise HTTPException(410, f"image_id: {exc}") from None
    return FileResponse(path, media_type="image/jpeg")


TaskType = Literal["detect"]
TASK_TYPES: tuple[TaskType, ...] = ("detect",)
"""What an auto-label run can produce: boxes with class vectors (and the embeddings scoring
uses). The only one today."""
_TASK_SCHEMA = {"type": "string", "enum": list(TASK_TYPES)}


def _one_or_many(value: Any) -> Any:
    """``"detect"`` and ``["detect"]`` alike (a form sends one value as a string)."""
    return [value] if isinstance(value, str) else value


Tasks = Annotated[
    list[TaskType],
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {
            "anyOf": [
                _TASK_SCHEMA,
                {"type": "array", "items": _TASK_SCHEMA, "minItems": 1, "maxItems": 10},
            ]
        }
    ),
]
_PROJECT_DOC = (
    "Project name. Optional: default the key's project when it is limited to one; with an "
    "all-projects key or a key for several projects, the one of them holding every image_ids "
    "entry (422 naming the candidates when several fit)."
)


class AutoLabelStart(BaseModel):
    """``POST /v1/labeling/auto`` fields (JSON or form)."""

    project_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Project name. Optional when the API key is limited to one project "
        "(422 naming the candidates otherwise).",
    )
    tasks: Tasks = Field(
        default_factory=lambda: list(TASK_TYPES),
        min_length=1,
        max_length=10,
        description=f"Task types to run, one or a list; accepted: {list(TASK_TYPES)} "
        "(the default).",
    )
    model: str | None = Field(
        None,
        max_length=500,
        description=(
            "models:/<name>@champion, a model yaml name, or a .pt under state_dir/models; "
            "default: the champion, else detector.model."
        ),
    )


class AutoLabelStatus(BaseModel):
    run_id: str
    project_id: str
    model: str | None
    tasks: list[str] = Field(description="The task types of the run.")
    status: str = Field(description="running, completed or failed.")
    started_at: float
    finished_at: float | None
    report: dict[str, Any] | None
    error: str | None


AutoLabelBody = Annotated[AutoLabelStart, Depends(body_of(AutoLabelStart))]


@router.post(
    "/labeling/auto",
    status_code=202,
    response_model=AutoLabelStatus,
    responses=error_responses(400, 409, 415, 503),
    openapi_extra=body_openapi(AutoLabelStart, required=False),
)
def start_auto_label(body: AutoLabelBody, state: StateDep, key: KeyDep) -> dict[str, Any]:
    """Start auto-label (predict + embed the unlabelled pool) in the background.

    The fields come as JSON or as a form; ``project_id`` may be left out with a key limited to
    one project."""
    project = inferred_project(state, key, body.project_id, "project_id")
    try:
        model = check_model_ref(state.settings, body.model)
        run = state.jobs.start(project.name, model, tasks=tuple(dict.fromkeys(body.tasks)))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except JobConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return run.as_json()


@router.get("/labeling/auto/{run_id}", response_model=AutoLabelStatus,
            responses=error_responses())
def auto_label_status(
    state: StateDep,
    key: KeyDep,
    run_id: Annotated[
        str, Path(pattern=r"^[0-9a-f]{32}$", description="From POST /v1/labeling/auto.")
    ],
) -> dict[str, Any]:
    run = state.jobs.get(run_id)
    if run is None or not key.can_access(run.project_id):
        raise HTTPException(404, f"run_id: no auto-label run {run_id!r}")
    return run.as_json()


class AssignmentRequest(BaseModel):
    """``POST /v1/assignments/queue`` fields (JSON or form)."""

    project_id: str | None = Field(None, min_length=1, max_length=200, description=_PROJECT_DOC)
    image_ids: list[ImageId] = Field(min_length=1, max_length=MAX_ASSIGN)
    group: str | None = Field(None, min_length=1, max_length=200)


AssignmentBody = Annotated[AssignmentRequest, Depends(body_of(AssignmentRequest))]


@router.post(
    "/assignments/queue",
    responses=error_responses(400, 409, 415, 502, 503),
    openapi_extra=body_openapi(AssignmentRequest, required=True),
)
def queue_assignments(body: AssignmentBody, state: StateDep, key: KeyDep) -> dict[str, Any]:
    """Queue exactly these images to Label Studio, with their stored predictions.

    The fields come as JSON or as a form; ``project_id`` may be left out when it can be
    inferred from the key or the image ids. The use case is
    :func:`labelwise.review.queue_assignments`; here its errors become statuses: unknown
    images 404, images that cannot be queued 409, Label Studio unreachable 503, another Label
    Studio failure 502."""
    from labelwise.review import NotAssignable, UnknownImages
    from labelwise.review import queue_assignments as queue

    project = inferred_project(state, key, body.project_id, "project_id", body.image_ids)
    try:
        done = queue(state.settings, state.catalog, project, body.image_ids, body.group,
                     thumbnail_size=state.serving.thumbnail_size)
    except UnknownImages as exc:
        raise HTTPException(404, f"image_ids: {exc}") from None
    except NotAssignable as exc:
        raise HTTPException(409, f"image_ids: {exc}") from None
    except LabelStudioUnavailable as exc:
        raise HTTPException(503, f"labelstudio: {exc}") from None
    except LabelStudioError as exc:
        raise HTTPException(502, f"labelstudio: {exc}") from None
    return {
        "project_id": done.project,
        "group": done.group,
        "model_version": done.model_version,
        "round": done.round_number,
        "image_ids": list(done.image_ids),
        "result": done.queued,
    }


@router.get("/rounds", responses=error_responses())
def rounds(state: StateDep, key: KeyDep, project_id: ProjectQuery) -> dict[str, Any]:
    """Metrics per round from MLflow (one child run per round)."""
    from labelwise.learn import tracker_for

    project = authorized_project(state, key, project_id, "project_id")
    try:
        found = tracker_for(state.settings, project.name).round_metrics()
    except Exception as exc:  # noqa: BLE001 - the tracking store is a service
        raise HTTPException(
            503,
            f"tracking: cannot read MLflow at " f"{state.settings.resolved_tracking_uri}: {exc}",
        ) from None
    return {"project_id": project.name, "rounds": found}
