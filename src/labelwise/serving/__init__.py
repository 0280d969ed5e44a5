"""Serving: the model as an HTTP API with active learning enabled.

``create_app(settings, serving)`` builds the FastAPI app (``labelwise serve`` runs it under
uvicorn on 127.0.0.1). Importing this package does no I/O and does not import FastAPI.
"""

from typing import TYPE_CHECKING, Any

from labelwise.config import ServingSettings

if TYPE_CHECKING:
    from labelwise.serving.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from labelwise.serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ServingSettings", "create_app"]
