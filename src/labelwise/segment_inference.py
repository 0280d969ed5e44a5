"""The segmentation predictor: ultralytics' NMS and masks with each kept box's class-score row
and its mask stability, and the masks' way to the original image size.

See :mod:`labelwise.segmenter` (the adapter) for the conventions: the masks are those of
ultralytics' ``process_mask(upsample=True)`` route, taken to the image by ``scale_masks``.
ultralytics and torch are imported on first use only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.yolo_inference import RawBoxes, class_vector_predictor, kept_class_rows

if TYPE_CHECKING:  # pragma: no cover
    import torch

MASK_THRESHOLD = 0.5
"""A resized 0/1 mask is kept where its bilinear value reaches this."""
STABILITY_OFFSET = 1.0
"""Logit offset of :func:`mask_stability` (sigmoid 0.27 and 0.73 around the mask threshold 0)."""
_MASK_CHUNK_PIXELS = 32_000_000  # float32 pixels resized at once (128 MB)


# --------------------------------------------------------------------------------------------
# Predictor: class vectors and masks
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class RawSegments(RawBoxes):
    """One image's kept instances as numpy, before conversion (see :func:`segment_predictor`):
    the boxes of :class:`~labelwise.yolo_inference.RawBoxes` and their masks."""

    image_hw: tuple[int, int]  # original image (H, W) in pixels
    input_masks: np.ndarray | None  # (N, h, w) bool at the letterboxed input size, or None
    stability: np.ndarray  # (N,) float32 in [0, 1], :func:`mask_stability` of each mask


def _split_outputs(preds: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(raw head output (B, 4 + C + M, A), prototypes (B, M, h, w)) of a segmentation forward:
    ``[(raw, protos), loss dict]`` from a torch model, ``[raw, protos]`` from an export (the two
    layouts ``SegmentationPredictor.postprocess`` reads)."""
    first = preds[0]
    if isinstance(first, (list, tuple)):
        return first[0], first[1]
    return preds[0], preds[1]


@functools.lru_cache(maxsize=1)
def segment_predictor() -> type:
    """Build the predictor class (deferred so ultralytics is imported lazily).

    It derives from the detector's class-vector predictor (:func:`class_vector_predictor`: the
    forward hook that keeps ``feature_layer``'s pooled output) and replaces its postprocess.
    """
    from ultralytics.utils import ops

    base: Any = class_vector_predictor()

    class SegmentVectorPredictor(base):  # type: ignore[misc]
        """NMS and masks as ultralytics' SegmentationPredictor makes them, plus each kept box's
        class-score row. ``keep_masks=False`` drops the masks after the empty-mask filter."""

        keep_masks: bool = True

        def postprocess(self, preds: Any, img: "torch.Tensor", orig_imgs: Any, **kwargs: Any) -> list:
            raw, protos = _split_outputs(preds)
            nc = len(self.model.names)
            kept, indices, orig_imgs, pooled = self._kept(
                raw, nc, int(protos.shape[1]), orig_imgs,
                "segmentation head output must be (B, 4 + nc + nm, anchors)",
                "End-to-end heads without a one-to-many branch carry no class distribution.")
            input_hw = (int(img.shape[2]), int(img.shape[3]))
            out = []
            for b, (det, idx) in enumerate(zip(kept, indices)):
                rows = kept_class_rows(raw, b, idx, nc, det)
                masks, stability = masks_and_stability(protos[b], det[:, 6:], det[:, :4], input_hw)
                keep = masks.amax((-2, -1)) > 0  # YOLO.predict drops boxes whose mask is empty
                det, rows, masks, stability = det[keep], rows[keep], masks[keep], stability[keep]
                boxes = ops.scale_boxes(input_hw, det[:, :4].clone(), orig_imgs[b].shape)
                xyxy = boxes if isinstance(boxes, np.ndarray) else boxes.cpu().numpy()
                out.append(
                    RawSegments(
                        xyxy=xyxy.astype(np.float32).reshape(-1, 4),
                        confidence=det[:, 4].cpu().numpy().astype(np.float32),
                        class_id=det[:, 5].cpu().numpy().astype(np.int64),
                        scores=rows.cpu().numpy().astype(np.float32).reshape(-1, nc),
                        image_hw=(int(orig_imgs[b].shape[0]), int(orig_imgs[b].shape[1])),
                        input_masks=masks.bool().cpu().numpy() if self.keep_masks else None,
                        stability=stability.cpu().numpy().astype(np.float32).reshape(-1),
                        pooled=None if pooled is None else pooled[b],
                    )
                )
            return out

    return SegmentVectorPredictor


def masks_and_stability(
    protos: "torch.Tensor", coefficients: "torch.Tensor", boxes: "torch.Tensor", input_hw: tuple[int, int],
    offset: float = STABILITY_OFFSET,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Binary masks exactly as ``ultralytics.utils.ops.process_mask(..., upsample=True)`` makes
    them, and each one's :func:`mask_stability` from the same logits.

    Args:
        protos: (M, h/4, w/4) prototypes of one image.
        coefficients: (N, M) mask coefficients of its kept boxes.
        boxes: (N, 4) xyxy boxes in letterboxed input pixels.
        input_hw: the letterboxed input size (h, w) in pixels.
        offset: the stability's logit offset.

    Returns:
        ((N, h, w) uint8 0/1 masks cropped to their boxes, (N,) float32 stabilities in [0, 1]).
    """
    import torch
    import torch.nn.functional as F
    from ultralytics.utils import ops

    c, mh, mw = protos.shape
    if coefficients.shape[0] == 0:
        return (torch.zeros((0, *input_hw), dtype=torch.uint8, device=coefficients.device),
                torch.zeros(0, dtype=torch.float32, device=coefficients.device))
    logits = (coefficients @ protos.float().view(c, -1)).view(-1, mh, mw)
    logits = F.interpolate(logits[None], input_hw, mode="bilinear")[0]  # (N, h, w), as process_mask
    masks = ops.crop_mask((logits > 0.0).byte(), boxes)
    return masks, mask_stability(logits, boxes, offset)


def mask_stability(logits: "torch.Tensor", boxes: "torch.Tensor", offset: float = STABILITY_OFFSET) -> "torch.Tensor":
    """How settled each instance's mask is: (N, h, w) mask logits and (N, 4) xyxy boxes in the
    same pixels -> (N,) float32 on [0, 1].

    Inside instance i's box (pixel centres x with ``x1 <= col < x2``, ``y1 <= row < y2``, the
    crop of ``process_mask``), ``|{logit > +offset}| / |{logit > -offset}|``: the IoU of the mask
    thresholded at sigmoid(+offset) with the one at sigmoid(-offset) (the first lies inside the
    second). 1 = every boundary pixel is decided, lower = a soft outline. A box with no pixel
    above ``-offset`` scores 0 (no mask at all is not a settled one).
    """
    import torch
    from ultralytics.utils import ops

    if offset <= 0:
        raise ValueError(f"offset must be > 0 (logit units); got {offset}")
    strong = ops.crop_mask((logits > offset).to(torch.uint8), boxes).sum((1, 2)).float()
    weak = ops.crop_mask((logits > -offset).to(torch.uint8), boxes).sum((1, 2)).float()
    return torch.where(weak > 0, strong / weak.clamp(min=1.0), torch.zeros_like(weak))


def masks_to_image(input_masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Masks at the letterboxed input size -> masks at the original image size.

    Args:
        input_masks: (N, h, w) bool masks of one image at the letterboxed input size (centred
            padding, as ultralytics' LetterBox pads).
        height, width: the original image's size in pixels.

    Returns:
        (N, height, width) bool: ``ultralytics.utils.ops.scale_masks`` (padding cut off, bilinear
        resize) of the 0/1 masks, kept where >= :data:`MASK_THRESHOLD`. Resized a few masks at a
        time (at most ~128 MB of float32 at once).
    """
    import torch
    from ultralytics.utils import ops

    masks = np.asarray(input_masks)
    if masks.ndim != 3 or masks.dtype != np.bool_:
        raise ValueError(f"input_masks must be (N, h, w) bool; got shape {masks.shape} dtype {masks.dtype}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1 pixel; got {height} x {width}")
    n = masks.shape[0]
    out = np.zeros((n, height, width), dtype=bool)
    if n == 0:
        return out
    if masks.shape[1:] == (height, width):
        out[:] = masks
        return out
    step = max(1, _MASK_CHUNK_PIXELS // (height * width))
    for start in range(0, n, step):
        chunk = torch.from_numpy(masks[start : start + step]).float()[None]  # (1, n, h, w)
        scaled = ops.scale_masks(chunk, (height, width))[0]
        out[start : start + step] = (scaled >= MASK_THRESHOLD).cpu().numpy()
    return out
