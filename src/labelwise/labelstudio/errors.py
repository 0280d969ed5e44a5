"""Exceptions raised by the Label Studio adapter.

Every message names the server URL and what was expected, so a failed pipeline step says which
service to look at without a traceback dive.
"""

from __future__ import annotations

from typing import Any


class LabelStudioError(RuntimeError):
    """Base class of every Label Studio adapter error."""


class LabelStudioUnavailable(LabelStudioError):
    """The server is unreachable or kept failing (connection errors, HTTP 5xx) after retries."""


class LabelStudioAuthError(LabelStudioError):
    """The server answered 401/403: the API key is wrong or lacks the permission."""


class LabelStudioRequestError(LabelStudioError):
    """The server rejected a request with a 4xx other than 401/403 (not retried).

    Attributes:
        status_code: the HTTP status.
        body: the decoded response body (usually a dict with the server's validation errors).
    """

    def __init__(self, message: str, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class LabelStudioMaybeApplied(LabelStudioUnavailable):
    """A request that changes state was sent, then the connection was lost before the reply
    (server disconnected, read timeout): Label Studio may or may not have applied it, so it is
    not repeated blindly. Callers that can look the result up (a keyed task import, find-or-create
    calls) reconcile; the message says so for the others."""
