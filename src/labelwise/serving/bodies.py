"""Bodies of fields in JSON or form encoding: one validation, one error shape.

The POST endpoints that take a body of fields (``/v1/labeling/auto``, ``/v1/assignments/queue``)
accept it as

* ``application/json`` (also ``application/*+json``): an object of the fields;
* ``application/x-www-form-urlencoded`` or ``multipart/form-data``: one form field per model
  field; a list field (``image_ids``, ``tasks``) repeats its key (``image_ids=a&image_ids=b``, as
  ``requests.post(..., data={"image_ids": [a, b]})`` sends it). Multipart bodies carry text
  fields only: a file part is 400 (it is never spooled).

An empty body (no ``Content-Type`` needed) is an empty set of fields. Any other content type is
415, naming the accepted ones. Whatever the encoding, the fields are validated by the same
pydantic model and a bad field is FastAPI's own 422 (``{"detail": [{"loc": ["body", "<field>"],
"msg": ..., "type": ...}]}``), exactly what a JSON body got before forms were accepted.
:func:`body_openapi` documents the three media types in ``/openapi.json``.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_origin

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
ACCEPTED_TYPES: tuple[str, ...] = (JSON, FORM, MULTIPART)
MAX_FORM_FIELDS = 4096
"""Form fields one body may carry (a list field repeats its key: 1,000 image ids fit)."""

M = TypeVar("M", bound=BaseModel)


def media_type(content_type: str | None) -> str | None:
    """``type/subtype`` of a ``Content-Type`` header in lower case, without parameters."""
    if content_type is None or not content_type.strip():
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    return f"{message.get_content_maintype()}/{message.get_content_subtype()}".lower()


def is_json(kind: str) -> bool:
    """``application/json`` or a structured ``application/*+json`` type."""
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def list_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields of ``model`` typed as lists: a form gives them every value of their key."""
    return frozenset(
        name for name, field in model.model_fields.items() if get_origin(field.annotation) is list
    )


def form_fields(form: FormData, lists: frozenset[str]) -> dict[str, Any]:
    """The form as the dict a JSON body would be: list fields get all values of their key, other
    fields their value (all values when the key repeats, which the model then rejects). The
    form holds text only (:func:`read_fields` parses it with ``max_files=0``)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(form.keys()):
        values = form.getlist(name)
        out[name] = values if name in lists or len(values) > 1 else values[0]
    return out


def unsupported(kind: str | None) -> HTTPException:
    """415 naming what was sent and what is accepted."""
    got = f"{kind!r}" if kind else "none (a body without a Content-Type)"
    return HTTPException(
        415,
        f"Content-Type: expected one of {list(ACCEPTED_TYPES)} for a body of fields; got {got}",
    )


async def read_fields(request: Request, lists: frozenset[str]) -> Any:
    """The request's body as a JSON value (a dict for forms); 400 when it does not parse, 415 for
    a content type that is not accepted. An empty body is ``{}``."""
    kind = media_type(request.headers.get("content-type"))
    if kind in (FORM, MULTIPART):
        try:
            form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        except StarletteHTTPException as exc:  # starlette's MultiPartException, as a 400
            why = str(exc.detail)
            if why.startswith("Too many files"):
                why = "a file part; only POST /v1/predict takes a file"
            raise HTTPException(
                400, f"body: cannot parse the {kind} body ({why}); expected text fields only"
            ) from None
        except Exception as exc:  # noqa: BLE001 - the parser's own error: the body is bad
            raise HTTPException(
                400, f"body: cannot parse the {kind} body ({type(exc).__name__}: {exc}); "
                "expected text fields only"
            ) from None
        return form_fields(form, lists)
    raw = await request.body()
    if not raw:
        if kind is None or is_json(kind):
            return {}
        raise unsupported(kind)
    if kind is None or not is_json(kind):
        raise unsupported(kind)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:  # FastAPI's own error for a JSON body parameter
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from None
    except UnicodeDecodeError as exc:
        raise HTTPException(
            400, f"body: not UTF-8 JSON ({exc.reason}); expected a JSON object"
        ) from None


def validate_fields(model: type[M], data: Any) -> M:
    """``model`` from ``data``; a RequestValidationError (FastAPI's 422) locating each error
    under ``body``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=data) from None


def body_of(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A FastAPI dependency: ``model`` read from a JSON or form body (see the module doc)."""
    lists = list_fields(model)

    async def read(request: Request) -> M:
        return validate_fields(model, await read_fields(request, lists))

    read.__doc__ = f"{model.__name__} from a JSON, urlencoded or multipart body."
    return read


def body_openapi(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` for a route reading ``model`` with :func:`body_of`: the request body in
    each accepted media type, one schema (inlined; the models are flat)."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise ValueError(
            f"{model.__name__}: expected a flat model (no nested models) to inline in the "
            f"OpenAPI request body; got $defs {sorted(schema['$defs'])}"
        )
    arrays = sorted(list_fields(model))
    form_encoding = {name: {"style": "form", "explode": True} for name in arrays}
    return {
        "requestBody": {
            "required": required,
            "description": "The fields as a JSON object, or as form fields (urlencoded or "
            "multipart; a list field repeats its key). Other content types: 415.",
            "content": {
                JSON: {"schema": schema},
                FORM: {"schema": schema, **({"encoding": form_encoding} if arrays else {})},
                MULTIPART: {"schema": schema},
            },
        }
    }
