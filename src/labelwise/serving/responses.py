"""The error responses each endpoint documents in ``/openapi.json`` (every status it can answer
is listed, so schema-conformance checks such as schemathesis' pass). Bodies are ``{"detail":
"<field>: <what was wrong>; expected ..."}``."""

from __future__ import annotations

from typing import Any

_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be parsed (malformed JSON encoding, multipart or form; a file "
         "part where text fields are expected)",
    401: "Missing or invalid API key",
    403: "The key has no access to the project (admin endpoints: not an all-projects key)",
    404: "Unknown project, image, round or run",
    409: "The project is not in a state that allows it (no predictions yet, a run in progress, "
         "images held by an open round)",
    413: "Upload too large",
    415: "Unsupported Content-Type: a body of fields is application/json, "
         "application/x-www-form-urlencoded or multipart/form-data",
    422: "Invalid parameters: the detail names the field (a body field: FastAPI's list of "
         "errors, each with its loc; a project that cannot be inferred: the candidates)",
    502: "Label Studio answered with an error",
    503: "The model cannot be loaded, or a service it needs (Label Studio, MLflow) is down",
}
AUTHORIZED = (401, 403, 404, 422)
"""What every endpoint that needs a key can answer besides success."""


def error_responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: :data:`AUTHORIZED` plus ``codes``; ``described`` overrides a
    description (``_422="..."``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*AUTHORIZED, *codes}):
        out[code] = {"description": described.get(f"_{code}", _DESCRIPTIONS[code])}
    return out
