"""Ids and paths from the network: id validation, path containment, upload decoding."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from labelwise.catalog import ProjectRecord
from labelwise.serving.ids import (
    UnsafePathError,
    check_image_id,
    folder_name,
    is_image_id,
    safe_child,
)
from labelwise.serving.uploads import UploadError, decode_upload, keep, upload_dir, write_incoming


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0123456789abcdef", True),
        ("0123456789ABCDEF", False),  # ids are lower-case
        ("0123456789abcde", False),
        ("0123456789abcdef0", False),
        ("../../etc/passwd", False),
        ("0123456789abcde/", False),
        ("0123456789abcdeg", False),
        ("0123456789abcdef\n", False),
        ("", False),
        (None, False),
        (1234567890123456, False),
    ],
)
def test_image_ids(value, ok):
    assert is_image_id(value) is ok
    if not ok:
        with pytest.raises(ValueError, match="image_id must be 16 lower-case hex characters"):
            check_image_id(value)


@pytest.mark.parametrize(
    ("parts", "inside"),
    [
        (("a.jpg",), True),
        (("sub", "a.jpg"), True),
        (("..", "a.jpg"), False),
        (("sub", "..", "..", "a.jpg"), False),
        (("/etc/passwd",), False),
        (("link", "x.jpg"), False),  # a symlink pointing outside
        (("sub", "..", "a.jpg"), True),
    ],
)
def test_safe_child(tmp_path, parts, inside):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    os.symlink(tmp_path, root / "link")
    if inside:
        assert root.resolve() in safe_child(root, *parts).parents
    else:
        with pytest.raises(UnsafePathError, match="must stay inside"):
            safe_child(root, *parts)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("digits", "digits"),
        ("my-proj_1.v2", "my-proj_1.v2"),
        ("../x", "project-7"),
        ("..", "project-7"),
        ("a b", "project-7"),
        (".hidden", "project-7"),
        ("", "project-7"),
    ],
)
def test_upload_folders_stay_in_the_store(tmp_path, name, folder):
    assert folder_name(name, "project-7") == folder
    path = upload_dir(tmp_path, ProjectRecord(7, name, ("a",)))
    assert path == (tmp_path / "uploads" / folder).resolve()


def _image_bytes(fmt: str, size=(20, 10)) -> bytes:
    """A noisy image (so that its compressed data is long enough to cut)."""
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "got an empty upload"),
        (b"hello, not an image", "not a known image format"),
        (_image_bytes("PNG", (64, 64))[:-400], "truncated"),
        (_image_bytes("JPEG", (64, 64))[:-400], "truncated"),
        (_image_bytes("GIF"), r"expected one of \['BMP', 'JPEG', 'PNG', 'TIFF', 'WEBP'\]; got GIF"),
        (
            _image_bytes("PNG", (300, 300)),
            r"file: 300x300 = 90000 pixels; expected at most 50000 pixels "
            r"\(serving.max_image_pixels\)",
        ),
    ],
    ids=["empty", "text", "truncated-png", "truncated-jpeg", "gif", "too-many-pixels"],
)
def test_bad_uploads_are_refused(data, message):
    with pytest.raises(UploadError, match=message):
        decode_upload(data, max_pixels=50_000)


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("WEBP", ".webp")]
)
def test_good_uploads_keep_their_bytes(tmp_path, fmt, suffix):
    data = _image_bytes(fmt)
    up = decode_upload(data, max_pixels=50_000)
    assert (up.width, up.height, up.suffix) == (20, 10, suffix)
    assert len(up.image_id) == 16
    incoming = write_incoming(tmp_path, up)
    kept = keep(tmp_path, incoming, up)
    assert kept == (tmp_path / f"{up.image_id}{suffix}").resolve()
    assert kept.read_bytes() == data and not incoming.exists()
    again = write_incoming(tmp_path, up)
    assert keep(tmp_path, again, up) == kept and not again.exists()


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGB"), ("PNG", "L"), ("PNG", "P"), ("PNG", "RGBA"), ("BMP", "RGB"), ("BMP", "L")],
)
def test_decoded_pixels_are_what_the_detector_reads_from_the_file(tmp_path, mode, fmt):
    """The API predicts on ``pixels``; they must equal OpenCV's colour read of the same bytes
    (what ultralytics' reader, and so the detector on a file, sees)."""
    import cv2

    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (10, 20, 3), dtype=np.uint8), "RGB")
    img = rgb.convert(mode) if mode != "P" else rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    img.save(buf, fmt)
    up = decode_upload(buf.getvalue(), max_pixels=50_000)
    path = tmp_path / f"img{up.suffix}"
    path.write_bytes(up.data)
    assert up.pixels.shape == (10, 20, 3) and up.pixels.dtype == np.uint8
    np.testing.assert_array_equal(up.pixels, cv2.imread(str(path), cv2.IMREAD_COLOR))
