"""Bundled instance-segmentation data set: scikit-learn digits on synthetic scenes, one polygon each.

The scenes are those of the detection digits set (:mod:`labelwise.datasets.digits`): the same
planner and renderer (backgrounds, distractor strokes, blur, noise, optional near-duplicate
clusters) with smaller defaults. Each placed digit is one instance whose mask is its **ink**: the
pixels where that digit's own interpolated coverage reaches
:data:`~labelwise.datasets.digits.INK_THRESHOLD` (the rule of the detection set's tight boxes),
whatever was drawn over it. Placement forbids any overlap of two digits' ink boxes
(``max_box_overlap=0``), so the instances of an image are disjoint. Written in Ultralytics'
segment format::

    <root>/
      data.yaml                   ultralytics data file, absolute paths; ``train`` is a placeholder
                                  pointing at val/images (ultralytics requires the key; a training
                                  run writes its own data file for its labelled images)
      manifest.json               format, config, class names, counts, one entry per image
      pool/images/pool_000000.png ...       the unlabelled pool: NO labels folder beside it
      pool_truth/labels/pool_000000.txt     the pool's truth, for a simulated annotator
      val/images/val_000000.png,   val/labels/val_000000.txt
      test/images/test_000000.png, test/labels/test_000000.txt

A label line is ``cls x1 y1 x2 y2 ... xK yK``: the class id, then the instance's polygon with
its vertices normalised by the image width (x) and height (y), written by
:func:`labelwise.masks.write_segment_labels`. The polygon is the ink's outer boundary traced
through the centres of its boundary pixels and simplified with Douglas-Peucker at
``simplify_tolerance_px``; so that :func:`labelwise.masks.polygon_to_mask` gives the mask back:

* holes are filled (the inside of a "0", "6", "8" or "9"): one simple polygon per instance holds
  no hole, in Ultralytics' format as in Label Studio and :mod:`labelwise.masks`. The manifest's
  ``mask_iou`` compares the rasterised polygon with the ink mask with its holes filled;
* a digit whose ink breaks into several parts (rare: thin strokes with a high cut) keeps every
  part of at least ``min_area_px`` square pixels: the parts are joined into one polygon by
  zero-width bridges to their nearest vertices (what Ultralytics' own COCO converter does with
  multi-part objects), which rasterise as one-pixel lines.

Images are 8-bit RGB PNGs ``canvas_min``..``canvas_max`` pixels on each side. Determinism: every
image is drawn from the detection generator's seeded :class:`numpy.random.Generator`
``(seed, domain, split, purpose, index)``, so the same config writes byte-identical files (same
platform, numpy, Pillow and OpenCV), and a segmentation set and a detection set of the same scene
knobs and seed show the same scenes. :func:`generate_digits_segment` is idempotent: a folder
holding a complete set of the same config is returned as it is. Nothing is read or written at
import time; scikit-learn is imported on first use.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from labelwise.datasets.digits.config import (
    CLASS_NAMES,
    NUM_CLASSES,
    DigitsConfig,
    Domain,
    _check_int,
    class_probabilities,
)
from labelwise.datasets.digits.dataset import _write_atomic
from labelwise.datasets.digits.render import (
    INK_THRESHOLD,
    _cluster_layout,
    _plan_scene,
    _render,
    _Rendered,
    _rng,
    _samples_by_class,
)
from labelwise.datasets.generated_folder import GeneratedFolder
from labelwise.masks import (
    ImageSegments,
    Polygon,
    SegmentInstance,
    mask_iou,
    mask_to_polygons,
    polygon_to_mask,
    read_segment_labels,
    write_segment_labels,
)

SegmentSplit = Literal["pool", "val", "test"]
SPLITS: tuple[SegmentSplit, ...] = ("pool", "val", "test")
MANIFEST_FORMAT = "labelwise.datasets.digits_segment"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_YAML_NAME = "data.yaml"
INCOMPLETE_MARKER = ".digits-segment-incomplete"
OWNED_ENTRIES = ("pool", "pool_truth", "val", "test", DATA_YAML_NAME, MANIFEST_NAME)
"""What the generator writes (and, with ``overwrite=True``, removes) under its root."""
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class DigitsSegmentConfig:
    """Knobs of the digits segmentation set. Sizes are in pixels.

    Attributes:
        pool_images: unlabelled pool images (>= 1).
        val_images: validation images (>= 1; ultralytics validates at the end of training).
        test_images: test images (>= 0).
        canvas_min, canvas_max: each image's width and height are drawn independently and
            uniformly from this inclusive range (>= ``digit_size_max``).
        digits_min, digits_max: digits attempted per image (uniform, inclusive); one that cannot
            be placed without touching another's ink box is skipped, every image keeps one.
        digit_size_min, digit_size_max: side of the upsampled 8x8 cell, drawn log-uniformly
            (the ink is usually smaller than its cell).
        rare_classes, rare_fraction, long_tail_exponent: the class prior of
            :class:`~labelwise.datasets.digits.DigitsConfig`; the defaults (no rare class,
            exponent 0) give every digit the same probability.
        duplicate_cluster_fraction: share of pool images in near-duplicate clusters of 3-8
            jittered frames of one scene, in [0, 1].
        distractors_max: distractor strokes (lines, arcs, scribbles) per image: 0..this.
        simplify_tolerance_px: Douglas-Peucker tolerance of the polygons (>= 0; 0 keeps every
            boundary pixel centre).
        min_area_px: smallest ink part (square pixels, polygon area) kept in a polygon (>= 0).
        seed: non-negative integer; the same config writes byte-identical files.
        domain: ``"target"`` (even sklearn samples, light backgrounds) or ``"source"`` (odd
            samples, its own backgrounds): the detection set's domains, so a model pretrained on
            a source set has never seen a target digit.
    """

    pool_images: int = 60
    val_images: int = 12
    test_images: int = 20
    canvas_min: int = 96
    canvas_max: int = 128
    digits_min: int = 1
    digits_max: int = 4
    digit_size_min: int = 20
    digit_size_max: int = 48
    rare_classes: tuple[int, ...] = ()
    rare_fraction: float = 0.0
    long_tail_exponent: float = 0.0
    duplicate_cluster_fraction: float = 0.0
    distractors_max: int = 2
    simplify_tolerance_px: float = 0.5
    min_area_px: float = 4.0
    seed: int = 0
    domain: Domain = "target"

    def __post_init__(self) -> None:
        _check_int("pool_images", self.pool_images, 1)
        _check_int("val_images", self.val_images, 1)
        _check_int("test_images", self.test_images, 0)
        for name in ("simplify_tolerance_px", "min_area_px"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
                    or not math.isfinite(float(value)) or value < 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        rare = self.rare_classes
        if isinstance(rare, (str, bytes)) or not isinstance(rare, (tuple, list)):
            raise ValueError(f"rare_classes must be a tuple of distinct class ids in 0..9; got {rare!r}")
        object.__setattr__(self, "rare_classes", tuple(rare))
        self.render_config()  # validates the scene knobs with the detection generator's rules

    def render_config(self) -> DigitsConfig:
        """The detection generator's config that plans and renders these scenes (ink boxes may
        not overlap at all; this set's domain)."""
        return DigitsConfig(
            pool_images=self.pool_images,
            val_images=self.val_images,
            test_images=self.test_images,
            canvas_min=self.canvas_min,
            canvas_max=self.canvas_max,
            digits_min=self.digits_min,
            digits_max=self.digits_max,
            digit_size_min=self.digit_size_min,
            digit_size_max=self.digit_size_max,
            rare_classes=self.rare_classes,
            rare_fraction=self.rare_fraction,
            long_tail_exponent=self.long_tail_exponent,
            max_box_overlap=0.0,
            duplicate_cluster_fraction=self.duplicate_cluster_fraction,
            distractors_max=self.distractors_max,
            domain=self.domain,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists)."""
        out = asdict(self)
        out["rare_classes"] = list(self.rare_classes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DigitsSegmentConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DigitsSegmentConfig field(s) {unknown}; expected from {sorted(known)}")
        values = dict(values)
        if "rare_classes" in values:
            values["rare_classes"] = tuple(values["rare_classes"])
        return cls(**values)


@dataclass(frozen=True)
class DigitsSegmentSet:
    """A generated digits segmentation set (layout in the module docstring); absolute paths.

    Attributes:
        root: the data set folder.
        config: what it was generated with.
        class_names: ``("0", ..., "9")``; class id i is the digit i.
    """

    root: Path
    config: DigitsSegmentConfig
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def data_yaml(self) -> Path:
        """``root/data.yaml``: ultralytics' data file (val and test listed, absolute paths)."""
        return self.root / DATA_YAML_NAME

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def pool_images(self) -> Path:
        """``root/pool/images``: the unlabelled pool."""
        return self.root / "pool" / "images"

    @property
    def pool_truth(self) -> Path:
        """``root/pool_truth/labels``: one segment label file per pool image, same stem (the
        ``truth_dir`` of a simulated annotator)."""
        return self.root / "pool_truth" / "labels"

    def image_dir(self, split: SegmentSplit) -> Path:
        """The images folder of ``split``."""
        _check_split(split)
        return self.pool_images if split == "pool" else self.root / split / "images"

    def label_dir(self, split: SegmentSplit) -> Path:
        """Where the truth of ``split`` lives (``pool_truth/labels`` for the pool)."""
        _check_split(split)
        return self.pool_truth if split == "pool" else self.root / split / "labels"

    def image_paths(self, split: SegmentSplit) -> list[Path]:
        """The PNGs of ``split``, sorted by name."""
        return sorted(self.image_dir(split).glob("*.png"))

    def truth_path(self, image: Path | str, split: SegmentSplit = "pool") -> Path:
        """The label file of ``image`` (same stem, ``.txt``) in ``split``."""
        return self.label_dir(split) / f"{Path(image).stem}.txt"

    def read_segments(self, image: Path | str, split: SegmentSplit = "pool") -> ImageSegments:
        """The truth of one image as pixel polygons (its size read from the PNG header)."""
        path = self.image_dir(split) / Path(image).name
        with Image.open(path) as im:
            width, height = im.size
        return read_segment_labels(self.truth_path(image, split), width, height)

    def read_manifest(self) -> dict[str, Any]:
        """The parsed manifest.json."""
        data: dict[str, Any] = json.loads(self.manifest.read_text(encoding="utf-8"))
        return data


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")


# --------------------------------------------------------------------------------------------
# Masks to polygons
# --------------------------------------------------------------------------------------------
def _bridge(polygons: list[Polygon]) -> Polygon:
    """One polygon visiting every given polygon (largest first): each further part is entered
    from the current outline's vertex nearest to it and left the same way (zero-width bridge)."""
    outline = polygons[0].points.astype(np.float64)
    for part in polygons[1:]:
        ring = part.points.astype(np.float64)
        dist = ((outline[:, None, :] - ring[None, :, :]) ** 2).sum(axis=-1)
        i, j = np.unravel_index(int(dist.argmin()), dist.shape)
        ring = np.roll(ring, -int(j), axis=0)
        outline = np.concatenate([outline[: i + 1], ring, ring[:1], outline[i:]])
    return Polygon(outline)


def ink_polygon(mask: np.ndarray, simplify_tolerance_px: float, min_area_px: float) -> Polygon | None:
    """The label polygon of one instance mask (see the module docstring).

    Args:
        mask: (H, W) bool instance mask.
        simplify_tolerance_px: Douglas-Peucker tolerance in pixels (>= 0).
        min_area_px: parts enclosing less (square pixels) are dropped, unless none is larger.

    Returns:
        A polygon in pixels whose :func:`~labelwise.masks.polygon_to_mask` is the mask with its
        holes filled (up to the simplification and the bridges); None for an empty mask.
    """
    parts = mask_to_polygons(mask, simplify_tolerance_px=simplify_tolerance_px, min_area_px=min_area_px)
    if not parts:  # every part smaller than min_area_px: keep the largest rather than nothing
        parts = mask_to_polygons(mask, simplify_tolerance_px=simplify_tolerance_px, min_area_px=0.0)[:1]
    return _bridge(parts) if parts else None


def filled(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask with every hole filled (the outer contours drawn solid)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=-1)
    return out.astype(bool)


def instance_masks(rendered: _Rendered) -> np.ndarray:
    """(N, H, W) bool ink masks of a rendered scene's digits: coverage >= INK_THRESHOLD."""
    height, width = rendered.image.shape[:2]
    out = np.zeros((len(rendered.classes), height, width), dtype=bool)
    for i in range(len(rendered.classes)):
        out[i] = rendered.coverage(i) >= INK_THRESHOLD
    return out


def _segments(rendered: _Rendered, config: DigitsSegmentConfig) -> tuple[ImageSegments, list[dict[str, Any]]]:
    """The image's label polygons and, per digit, what the manifest records about it."""
    height, width = rendered.image.shape[:2]
    instances: list[SegmentInstance] = []
    records: list[dict[str, Any]] = []
    for i, mask in enumerate(instance_masks(rendered)):
        polygon = ink_polygon(mask, config.simplify_tolerance_px, config.min_area_px)
        record: dict[str, Any] = {"class_id": int(rendered.classes[i]), "sample": int(rendered.samples[i]),
                                  "ink_pixels": int(mask.sum())}
        if polygon is None:  # cannot happen: a digit is placed by its ink box
            record.update(kept=False, vertices=0, mask_iou=0.0)
        else:
            instances.append(SegmentInstance(int(rendered.classes[i]), polygon))
            raster = polygon_to_mask(polygon, height, width)
            record.update(kept=True, vertices=len(polygon), mask_iou=round(mask_iou(raster, filled(mask)), 6))
        records.append(record)
    return ImageSegments(width, height, tuple(instances)), records


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _data_yaml_text(root: Path) -> str:
    import yaml  # pyyaml is a project dependency; imported on use

    body = {
        "path": str(root),
        "train": str(root / "val" / "images"),
        "val": str(root / "val" / "images"),
        "test": str(root / "test" / "images"),
        "nc": NUM_CLASSES,
        "names": {i: name for i, name in enumerate(CLASS_NAMES)},
    }
    header = (
        "# Written by labelwise.datasets.digits_segment (ultralytics segment labels). Paths are\n"
        "# absolute. `train` is a placeholder (val/images): ultralytics requires the key; a training\n"
        "# run writes its own data file for its labelled images. The unlabelled pool is absent; its\n"
        "# truth is in pool_truth/labels, for the simulated annotator only.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


_FOLDER = GeneratedFolder("generate_digits_segment", "digits segmentation set", MANIFEST_FORMAT,
                          MANIFEST_VERSION, OWNED_ENTRIES, INCOMPLETE_MARKER)


def _is_complete(root: Path, manifest: dict[str, Any]) -> bool:
    return (root / DATA_YAML_NAME).is_file() and all(
        (root / entry["file"]).is_file() and (root / entry["labels"]).is_file()
        for entry in manifest.get("images", [])
    )


def _yaml_root(root: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load((root / DATA_YAML_NAME).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(data.get("path")) if isinstance(data, dict) else None


def generate_digits_segment(
    root: Path | str,
    config: DigitsSegmentConfig | None = None,
    *,
    overwrite: bool = False,
) -> DigitsSegmentSet:
    """Write the digits segmentation set into ``root`` and return it.

    ``root`` may be missing or empty. When it already holds a complete set of the same config, it
    is returned without writing anything (data.yaml is rewritten only when the folder was moved).
    A set of another config (or an interrupted run) is replaced only with ``overwrite=True``,
    removing only what this generator owns (:data:`OWNED_ENTRIES`); any other non-empty folder is
    refused.

    Args:
        root: the data set folder.
        config: the knobs; default :class:`DigitsSegmentConfig` () (60 pool, 12 val, 20 test
            images of 96-128 px).
        overwrite: replace a set generated with another config.

    Raises:
        TypeError: ``config`` is not a :class:`DigitsSegmentConfig`.
        FileExistsError: ``root`` may not be written (see above).
    """
    config = DigitsSegmentConfig() if config is None else config
    if not isinstance(config, DigitsSegmentConfig):
        raise TypeError(f"config must be a DigitsSegmentConfig; got {type(config).__name__}")
    root = Path(root).expanduser().resolve()
    if _FOLDER.holds(root, config.to_dict(), overwrite, lambda m: _is_complete(root, m)):
        if _yaml_root(root) != str(root):  # moved: point data.yaml here
            _write_atomic(root / DATA_YAML_NAME, _data_yaml_text(root))
        return DigitsSegmentSet(root, config)

    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / INCOMPLETE_MARKER, json.dumps(config.to_dict(), sort_keys=True))
    dataset = DigitsSegmentSet(root, config)
    for split in SPLITS:
        dataset.image_dir(split).mkdir(parents=True, exist_ok=True)
        dataset.label_dir(split).mkdir(parents=True, exist_ok=True)

    scenes = config.render_config()
    probs = class_probabilities(scenes)
    by_class = _samples_by_class(scenes.domain)
    counts = {"pool": config.pool_images, "val": config.val_images, "test": config.test_images}
    entries: list[dict[str, Any]] = []
    split_stats: dict[str, Any] = {}
    for split in SPLITS:
        clusters = _cluster_layout(_rng(scenes, split, 2), counts[split], scenes, split)
        by_index: dict[int, dict[str, Any]] = {}
        for cluster_id, members in enumerate(clusters):
            scene = _plan_scene(_rng(scenes, split, 0, cluster_id), scenes, probs, by_class)
            for index in members:
                rendered = _render(scene, _rng(scenes, split, 1, index), jitter=len(members) > 1)
                segments, records = _segments(rendered, config)
                stem = f"{split}_{index:06d}"
                image_path = dataset.image_dir(split) / f"{stem}.png"
                label_path = dataset.label_dir(split) / f"{stem}.txt"
                Image.fromarray(rendered.image).save(image_path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
                write_segment_labels(label_path, segments)
                by_index[index] = {
                    "file": image_path.relative_to(root).as_posix(),
                    "labels": label_path.relative_to(root).as_posix(),
                    "split": split,
                    "width": scene.width,
                    "height": scene.height,
                    "instances": len(segments),
                    "classes": segments.class_ids.tolist(),
                    "digits": records,
                    "digits_skipped": scene.skipped,
                    "cluster_id": cluster_id,
                    "cluster_size": len(members),
                }
        ordered = [by_index[i] for i in range(counts[split])]
        entries += ordered
        class_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        ious = [d["mask_iou"] for e in ordered for d in e["digits"] if d["kept"]]
        for entry in ordered:
            np.add.at(class_counts, np.asarray(entry["classes"], dtype=np.int64), 1)
        split_stats[split] = {
            "images": counts[split],
            "instances": int(class_counts.sum()),
            "class_instance_counts": {name: int(n) for name, n in zip(CLASS_NAMES, class_counts)},
            "min_mask_iou": min(ious) if ious else None,
            "mean_mask_iou": round(float(np.mean(ious)), 6) if ious else None,
        }

    _write_atomic(dataset.data_yaml, _data_yaml_text(root))
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "config": config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "class_probabilities": [round(float(p), 6) for p in probs],
        "ink_threshold": INK_THRESHOLD,
        "mask_rule": "ink coverage >= ink_threshold, holes filled; parts bridged into one polygon",
        "mask_iou": "rasterised label polygon vs the ink mask with its holes filled",
        "splits": split_stats,
        "images": entries,
    }
    _write_atomic(dataset.manifest, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (root / INCOMPLETE_MARKER).unlink()  # the manifest (written last) marks a complete set
    return dataset


def load_digits_segment(root: Path | str) -> DigitsSegmentSet:
    """Re-open a set written by :func:`generate_digits_segment` from its manifest (data.yaml is
    rewritten when the folder was moved).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` holds no complete set of :func:`generate_digits_segment`.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"digits segmentation set {root} does not exist")
    manifest = _FOLDER.read_manifest(root)
    if manifest is None or manifest.get("format_version") != MANIFEST_VERSION or not _is_complete(root, manifest):
        raise ValueError(
            f"{root} holds no complete digits segmentation set; expected a {MANIFEST_NAME} of format "
            f"{MANIFEST_FORMAT!r} version {MANIFEST_VERSION} and every file it lists"
        )
    if _yaml_root(root) != str(root):
        _write_atomic(root / DATA_YAML_NAME, _data_yaml_text(root))
    return DigitsSegmentSet(root, DigitsSegmentConfig.from_dict(manifest["config"]))
