"""ASGI middleware: upload size cap before the body is parsed, and ``X-Model-Version``.

* A request to an upload path whose body exceeds ``max_bytes`` (by its ``Content-Length``, or
  while it streams in without one) is answered 413 before multipart parsing spools it to disk.
  ``max_bytes`` is the file cap plus room for the multipart envelope; the route checks the file
  itself against the exact cap.
* Every response without an ``X-Model-Version`` header gets the default project's serving model
  version (routes that used a model set the header themselves).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_ENVELOPE_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


class ServingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_paths: frozenset[str],
        max_bytes: int,
        version: Callable[[], str | None],
    ) -> None:
        self.app = app
        self.upload_paths = upload_paths
        self.max_bytes = max_bytes
        self.version = version

    def _with_version(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        if not any(k.lower() == b"x-model-version" for k, _ in headers):
            version = self.version()
            if version:
                headers = [*headers, (b"x-model-version", version.encode())]
        return headers

    async def _reject(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"file: upload larger than {limit} bytes"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send(
            {"type": "http.response.start", "status": 413, "headers": self._with_version(headers)}
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "overflow": False, "replaced": False}

        async def send_wrapper(message: Message) -> None:
            if state["replaced"]:
                return  # the app's own answer to a body we cut off
            if message["type"] == "http.response.start":
                if state["overflow"]:
                    state["replaced"] = True
                    await self._reject(send, self.max_bytes)
                    return
                state["started"] = True
                message = {
                    **message,
                    "headers": self._with_version(list(message.get("headers") or [])),
                }
            await send(message)

        if scope.get("path") not in self.upload_paths:
            await self.app(scope, receive, send_wrapper)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send, self.max_bytes)
            return
        seen = 0

        async def receive_wrapper() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    state["overflow"] = True
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _TooLarge:
            if not state["started"] and not state["replaced"]:
                await self._reject(send, self.max_bytes)
