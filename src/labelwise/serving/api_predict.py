"""``POST /v1/predict``: boxes, routing score and the flag decision for one uploaded image."""

from __future__ import annotations

import logging
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field, computed_field
from starlette.concurrency import run_in_threadpool

from labelwise.catalog import ProjectRecord
from labelwise.domain import Detections
from labelwise.masks import ImageSegments
from labelwise.scorebatch import scoring_rule
from labelwise.scoring import score_image
from labelwise.serving.deps import KeyDep, StateDep, authorized_project
from labelwise.serving.responses import error_responses
from labelwise.serving.state import ServingState
from labelwise.serving.uploads import (
    UploadError,
    decode_upload,
    pixel_cap,
    upload_dir,
    write_incoming,
)
from labelwise.task_types import TaskType

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["predict"])


class Box(BaseModel):
    xyxy: list[float] = Field(description="x1, y1, x2, y2 in pixels of the uploaded image.")
    class_id: int
    class_name: str
    confidence: float = Field(ge=0.0, le=1.0)


class Outline(BaseModel):
    class_id: int
    class_name: str
    confidence: float = Field(ge=0.0, le=1.0)
    points: list[list[float]] = Field(description="[[x, y], ...] polygon vertices in pixels of the "
                                      "uploaded image (at least 3).")
    mask_stability: float | None = Field(
        None, ge=0.0, le=1.0, description="How settled the mask's outline is (1 = the outline stays "
        "put however the mask threshold moves; lower = a soft, uncertain outline); None when the model "
        "gave none.")


class ClassProbability(BaseModel):
    class_id: int
    class_name: str
    probability: float = Field(ge=0.0, le=1.0)


class Prediction(BaseModel):
    project_id: str
    task: str = Field("detect", description="The project's task type: detect, classify or segment.")
    image_id: str = Field(description="Content id of the upload (16 hex characters).")
    width: int
    height: int
    model_version: str
    boxes: list[Box] = Field(description="Boxes at or above scoring.confidence_floor (empty for "
                             "a classification project).")
    classes: list[ClassProbability] | None = Field(
        None, description="A classification project's full class distribution, most probable "
        "first; None for other tasks.")
    segments: list[Outline] | None = Field(
        None, description="A segmentation project's instance outlines at or above "
        "scoring.confidence_floor (the same instances as boxes, in the same order); None for "
        "other tasks.")
    routing_strategy: str
    routing_score: float = Field(ge=0.0, le=1.0, description="Lower = more uncertain.")
    routing_threshold: float
    scores: dict[str, float]
    flagged: bool = Field(description="routing_score < routing_threshold.")
    queued_for_review: bool = Field(description="Stored in the pool and in the delivery outbox.")
    flag_suppressed_reason: str | None = Field(
        None,
        description="Why a flagged image was not queued: already_in_pool, already_flagged, "
        "rate_cap_minute, rate_cap_hour, rate_cap_day, near_duplicate or store_failed.",
    )
    upload_group: str

    # The fields' earlier names (a routing score, not the held-out evaluation), still sent so
    # clients written against them keep working; read routing_* instead.
    @computed_field(description="Deprecated: the same as routing_strategy.")  # type: ignore[prop-decorator]
    @property
    def evaluation_strategy(self) -> str:
        return self.routing_strategy

    @computed_field(description="Deprecated: the same as routing_score.")  # type: ignore[prop-decorator]
    @property
    def evaluation_score(self) -> float:
        return self.routing_score

    @computed_field(description="Deprecated: the same as routing_threshold.")  # type: ignore[prop-decorator]
    @property
    def evaluation_threshold(self) -> float:
        return self.routing_threshold


def _classes(dets: Detections, names: tuple[str, ...]) -> list[ClassProbability]:
    """The one whole-image row of a classification as its distribution, most probable first
    (ties in class order)."""
    probs = dets.probs[0]
    order = sorted(range(len(names)), key=lambda c: (-float(probs[c]), c))
    return [ClassProbability(class_id=c, class_name=names[c], probability=round(float(probs[c]), 6))
            for c in order]


def _outlines(dets: Detections, outlines: ImageSegments, names: tuple[str, ...], floor: float) -> list[Outline]:
    """The outlines of the boxes at or above ``floor`` (one per detection row), in box order."""
    keep = np.flatnonzero(dets.confidence >= np.float32(floor))
    return [Outline(class_id=int(dets.class_id[i]), class_name=names[int(dets.class_id[i])],
                    confidence=round(float(dets.confidence[i]), 6),
                    points=[[round(float(x), 2), round(float(y), 2)]
                            for x, y in outlines.instances[i].polygon.points],
                    mask_stability=(None if dets.mask_stability is None
                                    else round(float(dets.mask_stability[i]), 6))) for i in keep]


def _boxes(dets: Detections, names: tuple[str, ...], floor: float) -> list[Box]:
    kept = dets.above(floor)
    return [
        Box(
            xyxy=[round(float(v), 2) for v in kept.xyxy[i]],
            class_id=int(kept.class_id[i]),
            class_name=names[int(kept.class_id[i])],
            confidence=round(float(kept.confidence[i]), 6),
        )
        for i in range(len(kept))
    ]


@router.post(
    "/predict",
    response_model=Prediction,
    responses=error_responses(400, 413, 503, _422="Not an image, truncated, too many pixels, "
                              "more than one file part, or bad parameters"),
)
async def predict(
    request: Request,
    state: StateDep,
    key: KeyDep,
    file: Annotated[UploadFile, File(description="One PNG/JPEG/BMP/TIFF/WEBP image.")],
    project_form: Annotated[str | None, Form(alias="project")] = None,
    project_query: Annotated[str | None, Query(alias="project", max_length=200)] = None,
) -> Response:
    """Predict one image; flag it for review when its routing score is below the threshold.

    Delivery of a flagged image to Label Studio happens in the background (outbox worker), so
    a Label Studio outage never fails or slows this request. The CPU work (decode, model,
    scoring, flag guards) runs in ONE worker-thread hop, and the answer is serialised once from
    the validated :class:`Prediction` (FastAPI's second validation pass is skipped).
    """
    await _one_part_each(request)
    serving = state.serving
    name = project_form or project_query or serving.project
    project = authorized_project(state, key, name, "project")
    data = await file.read(serving.max_upload_bytes + 1)
    if len(data) > serving.max_upload_bytes:
        raise HTTPException(413, f"file: upload larger than {serving.max_upload_bytes} bytes")
    prediction = await run_in_threadpool(_predict, state, project, data)
    return Response(
        prediction.model_dump_json(),
        media_type="application/json",
        headers={"X-Model-Version": prediction.model_version},
    )


SINGLE_PARTS = ("file", "project")  # form fields a request may carry at most once


async def _one_part_each(request: Request) -> None:
    """422 when the form repeats ``file`` or ``project``: one upload is one image, and which of
    two parts FastAPI would bind (the last) is not the client's choice to leave implicit.
    (The form is already parsed for the ``file`` parameter: this reads Starlette's cache.)"""
    form = await request.form()
    for name in SINGLE_PARTS:
        count = len(form.getlist(name))
        if count > 1:
            raise HTTPException(
                422, f"{name}: expected one {name!r} part per request; got {count}"
            )


def _predict(state: ServingState, project: ProjectRecord, data: bytes) -> Prediction:
    """Decode, predict, score and (when flagged) store one upload; runs in a worker thread."""
    serving = state.serving
    try:
        upload = decode_upload(data, *pixel_cap(state.settings, serving))
    except UploadError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        model = state.models.holder(project).current
    except Exception as exc:  # noqa: BLE001 - a broken model ref is the operator's to fix
        log.exception("loading the model of %s failed", project.name)
        raise HTTPException(
            503,
            f"model: cannot load the model of project {project.name!r}: "
            f"{type(exc).__name__}: {exc}",
        ) from None
    answer = model.predict_instances(upload.pixels, (upload.width, upload.height))
    dets = answer.detections
    rule = scoring_rule(state.settings, project.task_type)
    classify = project.task_type is TaskType.CLASSIFY
    floor = state.settings.scoring.confidence_floor
    score = score_image(upload.image_id, dets, rule)
    strategy = serving.routing_strategy
    value = (
        score.uncertainty_score if strategy == "weighted_combination" else score.scores[strategy]
    )
    flagged = value < serving.routing_threshold
    decision = None
    if flagged:  # only a flagged image is written (for the embedder and the pool's copy)
        incoming = write_incoming(upload_dir(state.settings.state_dir, project), upload)
        try:
            decision = state.flags.consider(
                project, model, upload, incoming, dets, value, dict(score.scores), answer.outlines
            )
        finally:
            incoming.unlink(missing_ok=True)
    queued = bool(decision and decision.queued)
    state.stats.add(
        project.name,
        "predictions",
        *(["flagged"] if flagged else []),
        *(["queued"] if queued else []),
        *([f"suppressed:{decision.reason}"] if decision and decision.reason else []),
    )
    return Prediction(
        project_id=project.name,
        image_id=upload.image_id,
        width=upload.width,
        height=upload.height,
        model_version=model.version,
        task=project.task_type.value,
        boxes=[] if classify else _boxes(dets, project.class_names, floor),
        classes=_classes(dets, project.class_names) if classify else None,
        segments=(_outlines(dets, answer.outlines, project.class_names, floor)
                  if answer.outlines is not None else None),
        routing_strategy=strategy,
        routing_score=round(float(value), 6),
        routing_threshold=serving.routing_threshold,
        scores={k: round(float(v), 6) for k, v in score.scores.items()},
        flagged=flagged,
        queued_for_review=queued,
        flag_suppressed_reason=decision.reason if decision else None,
        upload_group=serving.upload_group,
    )
