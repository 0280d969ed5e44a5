"""The ``labelwise`` command line: each command parses arguments and calls one library function."""

from labelwise.cli.main import app, main

__all__ = ["app", "main"]
