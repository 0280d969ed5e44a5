"""The exceptions a user can cause: commands and the API turn these into clear messages."""

from __future__ import annotations

import functools

from pydantic import ValidationError


@functools.cache
def expected_errors() -> tuple[type[BaseException], ...]:
    """Bad input, unknown names, unreachable services and an unwritable thumbnail folder
    (imported lazily: adapters are heavy)."""
    from labelwise.images import ThumbnailWriteError
    from labelwise.labelstudio.errors import LabelStudioError

    return (ValueError, FileNotFoundError, FileExistsError, ValidationError, LabelStudioError,
            TimeoutError, ThumbnailWriteError)


def is_expected(exc: BaseException) -> bool:
    return isinstance(exc, expected_errors())
