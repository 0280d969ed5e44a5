"""``python -m labelwise.catalog.migrations revision "what changed"``: autogenerate the next
revision of the catalog's schema from the models (a developer's tool; review what it writes)."""

from __future__ import annotations

import argparse

from labelwise.catalog.migrations import new_revision


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and write the revision; prints its path."""
    parser = argparse.ArgumentParser(prog="python -m labelwise.catalog.migrations")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="autogenerate the next revision from the models")
    revision.add_argument("message", help="what the revision changes, e.g. 'images: add note'")
    args = parser.parse_args(argv)
    print(new_revision(args.message))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
