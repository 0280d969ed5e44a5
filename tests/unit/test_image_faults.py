"""Hostile and awkward images (issue 12, items 3 and 4), with the fault injected for real.

* Item 3: a decompression bomb (a 30000x30000 single-colour PNG), an image over the configured
  pixel cap, and the usual bad files, each among good ones: ``add_images`` skips and reports
  it, keeps the good ones; ``/v1/predict`` answers 422 naming the cap, never 500.
* Item 4: an EXIF-rotated image: the catalog's size, the detector's reader, the serving decoder
  and the thumbnail agree on the oriented image, and a box found on the oriented pixels becomes
  Label Studio percentages that cover the object as a browser displays it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from labelwise.catalog import Catalog
from labelwise.config import ImageSettings, Settings
from labelwise.domain import Detections
from labelwise.images import (
    DEFAULT_MAX_PIXELS,
    PIL_HARD_LIMIT,
    ImageTooLarge,
    make_thumbnail,
    read_image_info,
)
from labelwise.labelstudio import detections_to_ls_result
from labelwise.serving import ServingSettings, create_app
from labelwise.serving.auth import create_api_key
from labelwise.serving.holder import ServingModel
from labelwise.serving.uploads import UploadError, decode_upload
from tests.conftest import solid_png, write_png

pytestmark = pytest.mark.faults


# ------------------------------------------------------------------------------ fault makers
def test_solid_png_is_a_valid_image(tmp_path):
    with Image.open(solid_png(tmp_path / "s.png", 37, 5)) as img:
        img.load()
        assert img.size == (37, 5) and img.getextrema() == (0, 0)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """The issue's file: 30000 x 30000 = 900 Mpx, over Pillow's hard limit (it raises
    DecompressionBombError)."""
    path = solid_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 30000, 30000)
    assert path.stat().st_size < 1_000_000
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """12000 x 12000 = 144 Mpx: Pillow only warns, so it used to enter the pool."""
    return solid_png(tmp_path_factory.mktemp("big") / "big.png", 12000, 12000)


def test_the_bomb_is_the_fault_of_the_issue(bomb):
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)


# ------------------------------------------------------------------------------ item 3: the pool
def _zero_bytes(folder: Path) -> Path:
    (folder / "empty.png").write_bytes(b"")
    return folder / "empty.png"


def _truncated(folder: Path) -> Path:
    whole = write_png(folder / "truncated.png", seed=50)
    whole.write_bytes(whole.read_bytes()[:200])
    return folder / "truncated.png"


def _not_an_image(folder: Path) -> Path:
    (folder / "notes.png").write_text("not an image")
    return folder / "notes.png"


# id, make the bad file (folder, bomb, big) -> path, cap, what the reason must say
BAD_FILES = [
    ("bomb-30000x30000", lambda d, bomb, big: bomb, DEFAULT_MAX_PIXELS,
     f"decompression bomb to Pillow (Image size (900000000 pixels) exceeds limit of "
     f"{PIL_HARD_LIMIT} pixels"),
    ("over-default-cap-12000x12000", lambda d, bomb, big: big, DEFAULT_MAX_PIXELS,
     f"12000x12000 = 144000000 pixels; expected at most {DEFAULT_MAX_PIXELS} pixels "
     "(images.max_pixels)"),
    ("over-a-configured-cap", lambda d, bomb, big: solid_png(d / "wide.png", 200, 100), 19_999,
     "200x100 = 20000 pixels; expected at most 19999 pixels (images.max_pixels)"),
    ("zero-bytes", lambda d, bomb, big: _zero_bytes(d), DEFAULT_MAX_PIXELS, "not a readable image"),
    ("truncated", lambda d, bomb, big: _truncated(d), DEFAULT_MAX_PIXELS, "not a readable image"),
    ("not-an-image", lambda d, bomb, big: _not_an_image(d), DEFAULT_MAX_PIXELS,
     "not a readable image"),
]


@pytest.mark.parametrize(
    ("make", "cap", "reason"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_one_bad_file_is_skipped_and_reported_the_good_ones_added(
    catalog, tmp_path, bomb, big, make, cap, reason
):
    project = catalog.create_project("p", ["a"])
    folder = tmp_path / "pool"
    good = [write_png(folder / f"good_{i}.png", seed=i, size=100) for i in range(3)]  # 10000 px
    bad = make(folder, bomb, big)
    report = catalog.add_images(project, [good[0], bad, *good[1:]], max_pixels=cap)
    assert len(report.added) == 3, (
        f"expected the 3 good files added despite {bad.name}; got {report.added}, "
        f"failed {report.failed}"
    )
    assert [p for p, _ in report.failed] == [str(bad)], (
        f"expected exactly {bad.name} reported as failed; got {report.failed}"
    )
    assert reason in report.failed[0][1], (
        f"expected the reason to say {reason!r}; got {report.failed[0][1]!r}"
    )
    assert str(bad) in report.failed[0][1]  # the reason names the file
    assert catalog.status_counts(project)["unlabelled"] == 3


def test_the_cap_is_inclusive_and_none_means_pillows_limit_only(tmp_path, big):
    exact = solid_png(tmp_path / "exact.png", 200, 100)
    assert read_image_info(exact, max_pixels=20_000).width == 200
    with pytest.raises(ImageTooLarge, match="expected at most 19999 pixels"):
        read_image_info(exact, max_pixels=19_999)
    assert (read_image_info(big, max_pixels=None).width, read_image_info(big, None).height) == (
        12000,
        12000,
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "greater than or equal to 1"),
        (PIL_HARD_LIMIT + 1, f"less than or equal to {PIL_HARD_LIMIT}"),
    ],
)
def test_the_cap_setting_is_bounded(value, message):
    with pytest.raises(ValueError, match=message):
        ImageSettings(max_pixels=value)
    assert Settings().images.max_pixels == DEFAULT_MAX_PIXELS


def test_the_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LABELWISE_IMAGES__MAX_PIXELS", "1234")
    assert Settings().images.max_pixels == 1234


# ------------------------------------------------------------------------------ item 3: serving
class FakeDetector:
    version = "fake-v1"

    def predict(self, sources):
        return [Detections.empty(2) for _ in sources]


def _serving_client(tmp_path: Path, catalog: Catalog, serving: ServingSettings, **settings):
    catalog.create_project("p", ["a", "b"])
    key, _ = create_api_key(catalog, ["p"])

    def source(project):
        return (lambda: ServingModel(FakeDetector(), "fake.pt", "explicit")), None

    app = create_app(
        Settings(state_dir=tmp_path / "state", **settings),
        serving,
        catalog=catalog,
        model_source=source,
        deliver=lambda item: None,
    )
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


# id, the upload, serving.max_image_pixels, images.max_pixels, what the 422 must say
SERVING_CASES = [
    ("bomb", lambda bomb, big: bomb.read_bytes(), 40_000_000, DEFAULT_MAX_PIXELS,
     "file: more than 178956970 pixels, a decompression bomb to Pillow"),
    ("over-serving-cap", lambda bomb, big: big.read_bytes(), 40_000_000, DEFAULT_MAX_PIXELS,
     "file: 12000x12000 = 144000000 pixels; expected at most 40000000 pixels "
     "(serving.max_image_pixels)"),
    ("over-pool-cap", lambda bomb, big: big.read_bytes(), PIL_HARD_LIMIT, DEFAULT_MAX_PIXELS,
     f"file: 12000x12000 = 144000000 pixels; expected at most {DEFAULT_MAX_PIXELS} pixels "
     "(images.max_pixels)"),
    ("over-a-small-pool-cap", lambda bomb, big: _png_bytes((300, 300)), 40_000_000, 50_000,
     "file: 300x300 = 90000 pixels; expected at most 50000 pixels (images.max_pixels)"),
]


def _png_bytes(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "serving_cap", "pool_cap", "message"),
    [c[1:] for c in SERVING_CASES],
    ids=[c[0] for c in SERVING_CASES],
)
def test_predict_refuses_too_many_pixels_with_422(
    tmp_path, catalog, bomb, big, make, serving_cap, pool_cap, message
):
    serving = ServingSettings(
        project="p", max_upload_bytes=2_000_000, max_image_pixels=serving_cap, poll_interval_s=0
    )
    client = _serving_client(tmp_path, catalog, serving, images=ImageSettings(max_pixels=pool_cap))
    with client:
        upload = {"file": ("x.png", make(bomb, big), "image/png")}
        response = client.post("/v1/predict", files=upload)
        assert response.status_code == 422, (
            f"expected 422 for too many pixels; got {response.status_code}: {response.text[:300]}"
        )
        assert message in response.json()["detail"], response.json()
        good = {"file": ("ok.png", _png_bytes((20, 10)), "image/png")}
        ok = client.post("/v1/predict", files=good)
        assert ok.status_code == 200 and (ok.json()["width"], ok.json()["height"]) == (20, 10)


# ------------------------------------------------------------------------------ item 4: EXIF
STORED = (314, 133)  # width, height as stored in the file (landscape)
OBJECT = (20, 30, 80, 60)  # x1, y1, x2, y2 of a red rectangle in the STORED pixels


def exif_image(path: Path, orientation: int, fmt: str) -> Path:
    """A STORED-size grey image with a red OBJECT, saved with EXIF Orientation ``orientation``."""
    img = Image.new("RGB", STORED, (90, 90, 90))
    img.paste((230, 20, 20), OBJECT)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def red_box(bgr: np.ndarray) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 (exclusive) of the red pixels of a BGR array."""
    mask = (bgr[:, :, 2] > 150) & (bgr[:, :, 1] < 100)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def displayed(path: Path) -> np.ndarray:
    """BGR of the image as a browser (Label Studio's editor) shows it: EXIF applied."""
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))[:, :, ::-1]


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """The detector's file reader (ultralytics' imread), ultralytics prepared project-locally."""
    from labelwise.ultralytics_env import ensure_ultralytics

    ensure_ultralytics(tmp_path_factory.mktemp("ultralytics"), threads=1)
    from labelwise.yolo_inference import read_bgr

    return read_bgr


# orientation -> displayed (width, height): 5-8 swap the axes
ORIENTATIONS = [(1, STORED), (3, STORED), (6, STORED[::-1]), (8, STORED[::-1]), (5, STORED[::-1])]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(
    ("orientation", "size"), ORIENTATIONS, ids=[f"o{o}" for o, _ in ORIENTATIONS]
)
def test_every_reader_sees_the_oriented_image(tmp_path, catalog, reader, fmt, orientation, size):
    path = exif_image(tmp_path / f"photo.{fmt.lower()}", orientation, fmt)
    project = catalog.create_project("p", ["obj"])
    (image_id,) = catalog.add_images(project, [path]).added
    record = catalog.image(project, image_id)
    pixels = reader(path)
    upload = decode_upload(path.read_bytes(), 40_000_000)
    with Image.open(make_thumbnail(path, tmp_path / "thumbs", image_id, 64)) as thumb:
        thumb_size = thumb.size
    sizes = {
        "catalog": (record.width, record.height),
        "detector reader": (pixels.shape[1], pixels.shape[0]),
        "serving decode": (upload.width, upload.height),
        "serving pixels": (upload.pixels.shape[1], upload.pixels.shape[0]),
    }
    assert all(s == size for s in sizes.values()), (
        f"expected every reader to see the oriented {size[0]}x{size[1]} image; got {sizes}"
    )
    long_side = max(size)
    assert thumb_size == (round(size[0] * 64 / long_side), round(size[1] * 64 / long_side))
    # Same pixels, not just the same size: the object is where the browser shows it.
    shown = red_box(displayed(path))
    for name, bgr in (("detector reader", pixels), ("serving decode", upload.pixels)):
        assert np.abs(np.subtract(red_box(bgr), shown)).max() <= 1, (
            f"{name}: expected the object at {shown} as displayed; got {red_box(bgr)}"
        )
    if fmt == "PNG":  # lossless: the two decoders agree exactly
        np.testing.assert_array_equal(pixels, upload.pixels)


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_box_on_the_oriented_pixels_lands_on_the_object_in_label_studio(
    tmp_path, catalog, reader, orientation
):
    """A perfect detector on the reader's pixels -> Label Studio percentages from the
    catalog's size -> the region covers the object in the image as Label Studio displays it."""
    path = exif_image(tmp_path / "phone.jpg", orientation, "JPEG")
    project = catalog.create_project("p", ["obj"])
    (image_id,) = catalog.add_images(project, [path]).added
    record = catalog.image(project, image_id)
    box = red_box(reader(path))  # what auto-label's reader sees
    dets = Detections(np.array([box], np.float32), np.array([0.9]), np.array([0]),
                      np.array([[1.0]], np.float32))
    (region,) = detections_to_ls_result(dets, ["obj"], record.width, record.height)
    shown = displayed(path)
    height, width = shown.shape[:2]
    v = region["value"]
    assert (region["original_width"], region["original_height"]) == (width, height), (
        f"expected Label Studio's original size to be the displayed {width}x{height}; got "
        f"{region['original_width']}x{region['original_height']}"
    )
    x1, y1 = v["x"] / 100 * width, v["y"] / 100 * height
    x2, y2 = x1 + v["width"] / 100 * width, y1 + v["height"] / 100 * height
    ox1, oy1, ox2, oy2 = red_box(shown)
    inter = max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1))
    iou = inter / ((x2 - x1) * (y2 - y1) + (ox2 - ox1) * (oy2 - oy1) - inter)
    assert iou > 0.95, (
        f"expected the region ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) to cover the object at "
        f"{(ox1, oy1, ox2, oy2)} in the displayed {width}x{height} image; IoU {iou:.2f}"
    )


def test_readding_corrects_a_size_stored_before_the_orientation_rule(tmp_path, catalog):
    path = exif_image(tmp_path / "old.jpg", 6, "JPEG")
    project = catalog.create_project("p", ["obj"])
    (image_id,) = catalog.add_images(project, [path]).added
    from sqlalchemy import update

    from labelwise.catalog.models import ImageRow

    with catalog.session() as s, s.begin():  # what an older Labelwise recorded: the stored size
        s.execute(update(ImageRow).values(width=STORED[0], height=STORED[1]))
    again = catalog.add_images(project, [path])
    assert (again.added, again.existing, again.resized) == ([], [image_id], [image_id])
    record = catalog.image(project, image_id)
    assert (record.width, record.height) == STORED[::-1]
    assert catalog.add_images(project, [path]).resized == []


def test_decode_upload_of_a_rotated_photo_reports_the_oriented_size():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", STORED, (1, 2, 3)).save(buf, "JPEG", exif=exif)
    up = decode_upload(buf.getvalue(), 40_000_000)
    assert (up.width, up.height, up.pixels.shape) == (133, 314, (314, 133, 3))
    with pytest.raises(UploadError, match=r"314x133 = 41762 pixels; expected at most 41761"):
        decode_upload(buf.getvalue(), 41_761)


def test_embedders_and_contact_sheets_see_the_oriented_image(tmp_path):
    """The same photo stored rotated with an EXIF tag, and stored already upright: the pixel
    embedding is the same, and the contact sheet draws the oriented image."""
    from labelwise.embedder import PixelEmbedder
    from labelwise.reports import contact_sheet

    tagged = exif_image(tmp_path / "tagged.png", 6, "PNG")
    with Image.open(tagged) as img:
        ImageOps.exif_transpose(img).save(tmp_path / "upright.png")
    vectors = PixelEmbedder(8).embed([tagged, tmp_path / "upright.png"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    sheet = contact_sheet(
        [("a", tagged, 0.5, None), ("b", tmp_path / "upright.png", 0.5, None)],
        ["obj"], tmp_path / "sheet.png", tile=64, columns=2,
    )
    with Image.open(sheet) as img:
        grid = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(grid[:64, :64], grid[:64, 64:128])
