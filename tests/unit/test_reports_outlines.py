"""A segmentation round's contact sheet draws each kept instance's outline, not only its box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelwise.domain import Detections
from labelwise.masks import ImageSegments, Polygon, SegmentInstance
from labelwise.reports import PALETTE, contact_sheet


def _colour(value: str | tuple[int, int, int]) -> tuple[int, int, int]:
    from PIL import ImageColor

    return ImageColor.getrgb(value) if isinstance(value, str) else tuple(value)  # type: ignore[return-value]


@pytest.mark.parametrize("confidence", [0.9, 0.1])
def test_outlines_are_drawn_for_the_kept_instances(tmp_path: Path, confidence: float) -> None:
    image = tmp_path / "img.png"
    Image.new("RGB", (96, 96), "white").save(image)
    diamond = Polygon(np.array([[48, 20], [76, 48], [48, 76], [20, 48]], np.float32))
    outlines = ImageSegments(96, 96, (SegmentInstance(1, diamond),))
    dets = Detections(np.array([[20, 20, 76, 76]], np.float32), np.array([confidence]), np.array([1]),
                      np.array([[0.2, 0.8]]))
    items = [("img", image, 0.3, dets)]
    with_outline = contact_sheet(items, ["a", "b"], tmp_path / "with.png", tile=96, confidence_floor=0.5,
                                 outlines={"img": outlines})
    without = contact_sheet(items, ["a", "b"], tmp_path / "without.png", tile=96, confidence_floor=0.5)
    colour = _colour(PALETTE[1])
    vertex = (62, 34)  # on the diamond's upper-right edge, away from the box
    drawn = np.asarray(Image.open(with_outline).convert("RGB"))[vertex[1], vertex[0]].tolist()
    plain = np.asarray(Image.open(without).convert("RGB"))[vertex[1], vertex[0]].tolist()
    assert plain == [255, 255, 255]
    assert (drawn == list(colour)) is (confidence >= 0.5)  # an instance under the floor is not drawn
