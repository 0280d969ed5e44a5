"""Shared fixtures: tiny real images and a catalog on a real SQLite file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelwise.catalog import Catalog


def write_png(path: Path, seed: int, size: int = 64) -> Path:
    """A small random RGB PNG (distinct content per seed)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def solid_png(path: Path, width: int, height: int) -> Path:
    """A single-colour (all black) 1-bit greyscale PNG of any size, streamed row by row.

    Written with zlib rather than PIL: PIL would hold the whole 30000x30000 image in memory
    (900 MB, one byte per pixel even in mode "1") just to write a ~110 KB file.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte 0 + packed bits
    packer = zlib.compressobj(9)
    body = bytearray()
    for _ in range(height):
        body += packer.compress(row)
    body += packer.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", bytes(body))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for i in range(6):
        write_png(folder / f"img_{i}.png", seed=i)
    return folder


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog.open(f"sqlite:///{tmp_path / 'state' / 'catalog.db'}")
    yield cat
    cat.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLI environment: state in ``tmp_path/state`` (returned), no config file, cwd = tmp_path."""
    state = tmp_path / "state"
    monkeypatch.setenv("LABELWISE_STATE_DIR", str(state))
    monkeypatch.delenv("LABELWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return state


#: The catalog backends the catalog suites run against (parametrised ``catalog`` fixtures).
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (started on first use, stopped by PID)."""
    from tests.postgres_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The SQLAlchemy URL of a fresh database on the session's PostgreSQL server (dropped after)."""
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def backend_catalog(request: pytest.FixtureRequest, tmp_path: Path):
    """A catalog on ``request.param``: a SQLite file under ``tmp_path`` or a fresh PostgreSQL
    database (for ``@pytest.fixture(params=BACKENDS)`` fixtures)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    cat = Catalog.open(url)
    yield cat
    cat.close()
