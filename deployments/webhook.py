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
   (``fire``), that same transaction wrote the round's learn request
   (:mod:`labelwise.review.learn_requests`); the answer is immediate, and the receiver's delivery
   worker calls ``on_batch_complete(project, round)`` off the request path. A failed call (Prefect
   down) is retried with backoff (``labelstudio.learn_retry_base_s`` .. ``learn_retry_max_s``),
   pending requests are delivered again after a restart, and the hook's idempotency key keeps it
   to one learn run per batch however often Label Studio retries or the hook is repeated.

``GET /health`` also reports the learn requests: delivered and failed calls of this process, the
last error, and how many are pending.

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

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from labelwise.config import Settings
from labelwise.review.project import SECRET_HEADER

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/labelstudio"
DEFAULT_PORT = 8091
PORT_ENV = "LABELWISE_WEBHOOK_PORT"

BatchHook = Callable[[str, int], "str | None"]
"""``(project, round) -> the learn run's name (or None)``; raises when it could not start it."""


def log_batch_complete(project: str, round_number: int) -> None:
    """The default hook: log only (the Prefect wiring replaces it)."""
    log.info("batch reviewed: project %r round %d", project, round_number)
    return None


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


def create_app(
    settings: Settings,
    on_batch_complete: BatchHook = log_batch_complete,
    *,
    idle_s: float = 5.0,
) -> FastAPI:
    """The receiver app for ``settings`` (its catalog is opened here, its delivery worker started
    at startup; both closed at shutdown).

    Args:
        on_batch_complete: called as ``(project name, round number)`` by the delivery worker,
            once per batch whose review completed, until it returns without raising.
        idle_s: longest pause, in seconds, between looks at pending learn requests.

    Raises:
        ValueError: ``labelstudio.webhook_secret`` is empty (every call would be unauthenticated).
    """
    from labelwise.outbox_worker import OutboxWorker
    from labelwise.review import process_webhook
    from labelwise.review.learn_requests import LearnRequest, learn_requests
    from labelwise.runtime import open_catalog

    secret = settings.labelstudio.webhook_secret
    if not secret:
        raise ValueError("labelstudio.webhook_secret must be set; got an empty secret")
    catalog = open_catalog(settings)
    requests = learn_requests(catalog)

    def deliver(request: LearnRequest) -> dict[str, Any]:
        return {"run": on_batch_complete(request.project, request.round_number)}

    ls = settings.labelstudio
    worker = OutboxWorker(requests, deliver, base_s=ls.learn_retry_base_s,
                          max_s=ls.learn_retry_max_s, idle_s=idle_s,
                          name="labelwise-learn-requests")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            catalog.close()

    app = FastAPI(title="Labelwise webhook receiver", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "learn_requests": {
            "pending": requests.pending_count(), "delivered": worker.delivered,
            "failed_attempts": worker.failures, "last_error": worker.last_error}}

    @app.post(WEBHOOK_PATH)
    async def labelstudio_webhook(request: Request) -> JSONResponse:
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
        if outcome.fire:
            worker.wake()  # its learn request is stored: deliver it now
        return JSONResponse(outcome.as_dict())

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
    from labelwise.config import load_settings as _load

    main(start_learn_run(os.environ.get("LABELWISE_CONFIG") or None, _load().tracking.campaign))
