"""The Label Studio webhook receiver: a small FastAPI app of Labelwise's own.

    POST /webhooks/labelstudio   Label Studio's annotation webhooks
    GET  /health                 liveness

Label Studio sends every annotation event of a Labelwise project here (registered by
``labelwise.review.ensure_ls_project`` with the header ``X-Labelwise-Secret``). Each call:

1. checks the secret header against ``labelstudio.webhook_secret`` (constant-time) -> 401, and
   nothing recorded, when it does not match;
2. validates and records the event (:func:`labelwise.review.process_webhook`) -> 422 naming the
   field and the problem for a malformed payload (an id that is not a positive 63-bit integer,
   such as ``1e23`` or ``2**63``, included); unknown actions/projects are answered 200
   ``handled: false``;
3. when the event completed a batch and won the round's ``queued -> reviewed`` compare-and-set
   (``fire``), schedules ``on_batch_complete(project, round)`` as a background task, so the
   answer is immediate; the hook runs once per batch however often Label Studio retries.

Run it with ``python -m deployments.webhook`` (127.0.0.1, port ``$LABELWISE_WEBHOOK_PORT`` or
8091). Nothing is read at import time: :func:`create_app` is the factory.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from labelwise.config import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/labelstudio"
SECRET_HEADER = "X-Labelwise-Secret"
DEFAULT_PORT = 8091
PORT_ENV = "LABELWISE_WEBHOOK_PORT"

BatchHook = Callable[[str, int], None]


def log_batch_complete(project: str, round_number: int) -> None:
    """The default hook: log only (the Prefect wiring replaces it)."""
    log.info("batch reviewed: project %r round %d", project, round_number)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]


def _summary(errors: list[dict[str, Any]]) -> str:
    """``field: message; ...`` of validation errors (pydantic's "Value error, " dropped)."""
    parts = []
    for e in errors:
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def create_app(settings: Settings, on_batch_complete: BatchHook = log_batch_complete) -> FastAPI:
    """The receiver app for ``settings`` (its catalog is opened here, closed at shutdown).

    Args:
        on_batch_complete: called as ``(project name, round number)`` in the background, once
            per batch whose review just completed.

    Raises:
        ValueError: ``labelstudio.webhook_secret`` is empty (every call would be unauthenticated).
    """
    from labelwise.review import process_webhook
    from labelwise.runtime import open_catalog

    secret = settings.labelstudio.webhook_secret
    if not secret:
        raise ValueError("labelstudio.webhook_secret must be set; got an empty secret")
    catalog = open_catalog(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            catalog.close()

    app = FastAPI(title="Labelwise webhook receiver", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(WEBHOOK_PATH)
    async def labelstudio_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"detail": f"missing or wrong {SECRET_HEADER} header"}, 401)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"detail": "body must be a JSON object (a Label Studio webhook "
                                           "payload); got invalid JSON"}, 422)
        if not isinstance(payload, dict):
            return JSONResponse({"detail": "body must be a JSON object (a Label Studio webhook "
                                           f"payload); got {type(payload).__name__}"}, 422)
        try:
            outcome = await run_in_threadpool(process_webhook, settings, catalog, payload)
        except ValidationError as exc:
            errors = _errors(exc)
            return JSONResponse({"detail": "invalid Label Studio webhook payload: "
                                           f"{_summary(errors)}", "errors": errors}, 422)
        if outcome.fire and outcome.project is not None:
            for number in outcome.fired_rounds or (outcome.round_number,):
                background.add_task(on_batch_complete, outcome.project, int(number))
        return JSONResponse(outcome.as_dict(), background=background)

    return app


def main(on_batch_complete: BatchHook | None = None) -> None:
    """Serve the receiver on 127.0.0.1 (port ``$LABELWISE_WEBHOOK_PORT``, default 8091) with
    settings from ``load_settings()``; ``on_batch_complete`` defaults to a hook that logs."""
    import uvicorn

    from labelwise.config import load_settings

    logging.basicConfig(level=logging.INFO)
    port = int(os.environ.get(PORT_ENV, DEFAULT_PORT))
    app = create_app(load_settings(), on_batch_complete or log_batch_complete)
    uvicorn.run(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    from deployments.continuation import start_learn_run

    main(start_learn_run(os.environ.get("LABELWISE_CONFIG") or None))
