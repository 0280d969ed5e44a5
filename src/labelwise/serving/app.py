"""The app factory of ``labelwise serve``.

``create_app(settings, serving)`` wires everything and starts nothing; the lifespan (uvicorn, or
``with TestClient(app)``) then seeds the rate caps from the outbox, starts the outbox worker
(draining what a previous process left), loads the default project's model and starts the
champion watcher; on shutdown it stops them in reverse order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from labelwise import __version__
from labelwise.catalog import Catalog
from labelwise.config import ServingSettings, Settings
from labelwise.labelstudio.errors import LabelStudioUnavailable
from labelwise.serving import api_admin, api_label, api_predict
from labelwise.serving.holder import ChampionWatcher
from labelwise.serving.middleware import MULTIPART_ENVELOPE_BYTES, ServingMiddleware
from labelwise.serving.outbox import OutboxItem
from labelwise.serving.state import ModelSource, ServingState, build_state

log = logging.getLogger(__name__)


def serving_settings(settings: Settings, serving: ServingSettings | None = None) -> ServingSettings:
    """``serving`` if given, else the ``serving:`` section of the settings, else defaults."""
    if serving is not None:
        return serving
    found = getattr(settings, "serving", None)
    return found if isinstance(found, ServingSettings) else ServingSettings()


def _start(state: ServingState, preload: bool) -> None:
    state.seed_rate_caps()
    state.worker.start()
    if preload and state.serving.project:
        try:
            _ = state.models.holder(state.catalog.project(state.serving.project)).current  # loads it
        except Exception:  # noqa: BLE001 - requests will report it (503) and retry the load
            log.exception("loading the model of %s at start failed", state.serving.project)
    if state.serving.poll_interval_s > 0:
        state.watcher = ChampionWatcher(state.models.holders, state.serving.poll_interval_s)
        state.watcher.start()


def _stop(state: ServingState) -> None:
    if state.watcher is not None:
        state.watcher.stop()
    state.worker.stop()
    state.jobs.join(timeout_s=5.0)


def create_app(
    settings: Settings,
    serving: ServingSettings | None = None,
    *,
    catalog: Catalog | None = None,
    model_source: ModelSource | None = None,
    deliver: Callable[[OutboxItem], None] | None = None,
    preload: bool = True,
) -> FastAPI:
    """A FastAPI app serving ``settings`` with ``serving`` (a :class:`ServingSettings`).

    Args:
        catalog: share an open catalog (default: open ``settings``' catalog, closed at shutdown).
        model_source: per project, a model loader and a champion-version probe (tests).
        deliver: how one outbox item reaches Label Studio (default: ``review.queue_batch``).
        preload: load the default project's model at start-up.
    """
    from labelwise.runtime import open_catalog

    serving = serving_settings(settings, serving)
    own_catalog = catalog is None
    cat = catalog or open_catalog(settings)
    state = build_state(settings, serving, cat, model_source=model_source, deliver=deliver)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _start(state, preload)
        try:
            yield
        finally:
            _stop(state)
            if own_catalog:
                cat.close()

    app = FastAPI(
        title="Labelwise serving API",
        version=__version__,
        description="YOLO predictions with active learning: uncertain images are flagged and "
        "queued to Label Studio. Authenticate with `Authorization: Bearer <api key>`.",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.include_router(api_predict.router)
    app.include_router(api_label.router)
    app.include_router(api_admin.router)
    app.add_middleware(
        ServingMiddleware,
        upload_paths=frozenset({"/v1/predict"}),
        max_bytes=serving.max_upload_bytes + MULTIPART_ENVELOPE_BYTES,
        version=state.default_version,
    )

    @app.exception_handler(LabelStudioUnavailable)
    async def _labelstudio_down(_request: Request, exc: LabelStudioUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"labelstudio: {exc}"}, status_code=503)

    return app
