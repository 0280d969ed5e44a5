"""Retries, error mapping and paging for Label Studio SDK calls (used by
:class:`~labelwise.labelstudio.client.LabelStudioClient`; see its module docstring for the
error policy).

Delays are in seconds; nothing happens at import time.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from label_studio_sdk.core.api_error import ApiError

from labelwise.labelstudio.errors import (
    LabelStudioAuthError,
    LabelStudioMaybeApplied,
    LabelStudioRequestError,
    LabelStudioUnavailable,
)

# The client's logger, so retry warnings keep the logger name they always had.
log = logging.getLogger("labelwise.labelstudio.client")

T = TypeVar("T")

PAGE_SIZE = 100
DEFAULT_RETRY_BASE_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0

# Transport errors after which the request certainly did not reach the application: always
# safe to repeat.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# Transport errors after the request was (or may have been) sent: the server may have applied
# it and the reply was lost ("Server disconnected without sending a response", a read timeout, a
# connection reset while reading). Repeated only for idempotent calls.
_LOST_REPLY_ERRORS: tuple[type[Exception], ...] = (
    httpx.RemoteProtocolError,
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.WriteTimeout,
    httpx.WriteError,
)


def call_with_retries(
    action: str,
    fn: Callable[[], T],
    *,
    url: str,
    retries: int,
    retry_base_delay_s: float,
    idempotent: bool = True,
) -> T:
    """Run one SDK call ``fn`` with retries and error mapping.

    Args:
        action: what the call does, for messages and log lines.
        fn: the SDK call, without arguments.
        url: the server's base URL, named in error messages.
        retries: retries after the first try (>= 0).
        retry_base_delay_s: first backoff delay in seconds; doubles each retry, capped at
            :data:`MAX_RETRY_DELAY_S`.
        idempotent: whether the call may be repeated after the reply was lost (a read timeout,
            the server disconnecting); a state-changing call is not, because the server may
            have applied it.

    Raises:
        LabelStudioAuthError: HTTP 401/403, at once.
        LabelStudioRequestError: any other HTTP 4xx, at once, with the server's body.
        LabelStudioMaybeApplied: a non-idempotent call lost its reply after it was sent (the
            server may have applied it), at once.
        LabelStudioUnavailable: when the retries run out, or on another transport error.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except ApiError as exc:
            status = exc.status_code or 0
            if status in (401, 403):
                raise LabelStudioAuthError(
                    f"{action}: Label Studio at {url} refused the API key "
                    f"(HTTP {status}); "
                    "expected a valid token (legacy tokens need "
                    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true on the server)"
                ) from exc
            if 400 <= status < 500:
                raise LabelStudioRequestError(
                    f"{action}: Label Studio at {url} rejected the request "
                    f"(HTTP {status}): {exc.body}",
                    status_code=status,
                    body=exc.body,
                ) from exc
            reason = f"HTTP {status}: {str(exc.body)[:200]}"
            last: Exception = exc
        except _CONNECT_ERRORS as exc:
            reason, last = f"{type(exc).__name__}: {exc}", exc
        except _LOST_REPLY_ERRORS as exc:
            if not idempotent:
                raise LabelStudioMaybeApplied(
                    f"{action}: the connection to Label Studio at {url} was lost after the "
                    f"request was sent ({type(exc).__name__}: {exc}); the import or change may "
                    "have gone through, so it was not repeated blindly: check the project "
                    "before sending it again"
                ) from exc
            reason, last = f"{type(exc).__name__}: {exc}", exc
        except httpx.TransportError as exc:
            raise LabelStudioUnavailable(
                f"{action}: Label Studio at {url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if attempt >= retries:
            raise LabelStudioUnavailable(
                f"{action}: Label Studio at {url} is unavailable after "
                f"{attempt + 1} attempt(s) ({reason}); is the server running "
                "(scripts/labelstudio.sh status)?"
            ) from last
        delay = min(retry_base_delay_s * 2**attempt, MAX_RETRY_DELAY_S)
        log.warning("%s: %s; retry %d/%d in %.2fs", action, reason, attempt + 1,
                    retries, delay)
        time.sleep(delay)
        attempt += 1


def all_pages(
    action: str,
    fetch: Callable[[int], Any],
    call: Callable[[str, Callable[[], Any]], Any],
    page_size: int = PAGE_SIZE,
) -> list[Any]:
    """Every item of a page-numbered SDK list; each page is one ``call(action, fn)``.

    ``fetch(page)`` returns the SDK pager of that page (1-based); only its first page
    (``.items``) and ``.response`` are read, so the SDK never fetches pages on its own.
    ``call`` runs one page's request with retries (the client's ``_call``).
    """
    items: list[Any] = []
    page = 1
    while True:
        try:
            pager = call(f"{action} (page {page})", functools.partial(fetch, page))
        except LabelStudioRequestError as exc:
            if exc.status_code == 404 and page > 1:  # Label Studio's "past the last page"
                break
            raise
        got = list(pager.items or [])
        items.extend(got)
        # The server's total ("total" for tasks, "count" for projects) decides; a server
        # that caps page_size below ours must not end the listing early.
        response = getattr(pager, "response", None)
        total = getattr(response, "total", None)
        if total is None:
            total = getattr(response, "count", None)
        if not got or (total is not None and len(items) >= total):
            break
        if total is None and len(got) < page_size:
            break
        page += 1
    return items
