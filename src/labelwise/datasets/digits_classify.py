"""Bundled classification data set: the scikit-learn 8x8 digits as small RGB images, one digit each.

Every image shows one of the 1797 handwritten digits of :func:`sklearn.datasets.load_digits`
(classes ``"0"`` .. ``"9"``), upsampled with bicubic interpolation (the digits detection set's
renderer, :mod:`labelwise.datasets.digits.render`) to 55-75 % of the image side, slightly
stretched and rotated, tinted with an ink colour contrasting with a textured light background,
placed at a random position and overlaid with pixel noise. Written as::

    <root>/
      manifest.json                 format, config, class names, counts, one entry per image
      pool_truth.json               the pool's ground truth: {"pool_000000.png": class_id, ...}
      pool/pool_000000.png ...      the unlabelled pool, flat (classes shuffled over file names)
      pool_labels/pool_000000.txt   the same truth as the label Labelwise stores for a classified
                                    image (one YOLO row ``class 0.5 0.5 1 1``), which the
                                    simulated annotator and the benchmark's oracle read
      test/<class>/test_000000.png  the test images in ultralytics' classification layout

Images are ``imgsz`` x ``imgsz`` 8-bit RGB PNGs. Like the detection set, a set belongs to a
``domain`` (:data:`~labelwise.datasets.digits.DOMAIN_RULE`): the target domain draws the even
sklearn samples on light textured backgrounds, the source domain the odd ones on its own
backgrounds and inks, so a classifier pretrained on a source set has never seen a target image's
digit. The pool and the test images of a class come from disjoint samples of the domain (each
sample is used at most once), so ``per_class_pool + per_class_test`` may not exceed the rarest
class's 86 samples in either domain.

Determinism: the sample assignment is drawn from ``(seed, 0)`` and every image from its own
:class:`numpy.random.Generator` seeded with ``(seed, split, index)``, so the same config writes
byte-identical PNGs (same platform, numpy and Pillow). :func:`generate_digits_classify` is
idempotent: a folder holding a complete set of the same config is returned as it is. Nothing is
read or written at import time; scikit-learn is imported on first use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labelwise.datasets.digits.backgrounds import _background, _ink_colour
from labelwise.datasets.digits.config import (
    CLASS_NAMES,
    DOMAINS,
    NUM_CLASSES,
    Domain,
    _check_int,
    _sklearn_digits,
    domain_sample_indices,
)
from labelwise.datasets.digits.dataset import _write_atomic
from labelwise.datasets.digits.render import _composite, _digit_alpha
from labelwise.datasets.generated_folder import GeneratedFolder

MANIFEST_FORMAT = "labelwise.datasets.digits_classify"
MANIFEST_VERSION = 3
MANIFEST_NAME = "manifest.json"
TRUTH_NAME = "pool_truth.json"
POOL_DIR = "pool"
LABELS_DIR = "pool_labels"
TEST_DIR = "test"
INCOMPLETE_MARKER = ".digits-classify-incomplete"
OWNED_ENTRIES = (POOL_DIR, LABELS_DIR, TEST_DIR, TRUTH_NAME, MANIFEST_NAME)
"""What the generator writes (and, with ``overwrite=True``, removes) under its root."""
MIN_IMGSZ = 16
PNG_COMPRESS_LEVEL = 1

_SEED_TAG = 0xC1A55
_SPLIT_CODE = {POOL_DIR: 1, TEST_DIR: 2}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class DigitsClassifyConfig:
    """Knobs of the digits classification set.

    Attributes:
        per_class_pool: pool images per class (>= 1).
        per_class_test: test images per class (>= 0).
        seed: non-negative integer; the same config writes byte-identical files.
        imgsz: side of the square images in pixels (>= 16).
        domain: ``"target"`` (even sklearn samples, light backgrounds) or ``"source"`` (odd
            samples, its own backgrounds and inks): a source set pretrains a classifier that has
            never seen a target digit.
    """

    per_class_pool: int = 40
    per_class_test: int = 10
    seed: int = 0
    imgsz: int = 32
    domain: Domain = "target"

    def __post_init__(self) -> None:
        _check_int("per_class_pool", self.per_class_pool, 1)
        _check_int("per_class_test", self.per_class_test, 0)
        _check_int("seed", self.seed, 0)
        _check_int("imgsz", self.imgsz, MIN_IMGSZ)
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)}; got {self.domain!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DigitsClassifyConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown DigitsClassifyConfig field(s) {unknown}; expected from {sorted(known)}"
            )
        return cls(**values)


@dataclass(frozen=True)
class DigitsClassifySet:
    """A generated digits classification set (layout in the module docstring); absolute paths.

    Attributes:
        root: the data set folder.
        config: what it was generated with.
        class_names: ``("0", ..., "9")``; class id i is the digit i.
    """

    root: Path
    config: DigitsClassifyConfig
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def pool_dir(self) -> Path:
        """``root/pool``: the unlabelled pool images, flat."""
        return self.root / POOL_DIR

    @property
    def test_dir(self) -> Path:
        """``root/test``: ``test/<class>/<image>``."""
        return self.root / TEST_DIR

    @property
    def truth_file(self) -> Path:
        """``root/pool_truth.json``: pool file name -> class id."""
        return self.root / TRUTH_NAME

    @property
    def pool_labels_dir(self) -> Path:
        """``root/pool_labels``: ``<pool stem>.txt`` = the image's label row (the ``truth_dir``
        of ``annotate-simulated``)."""
        return self.root / LABELS_DIR

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    def pool_truth(self) -> dict[str, int]:
        """Pool file name -> class id (the simulated annotator's answers)."""
        data = json.loads(self.truth_file.read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in data.items()}

    def pool_items(self) -> list[tuple[Path, int]]:
        """``(pool image, class id)`` for every pool image, by file name."""
        truth = self.pool_truth()
        return [(self.pool_dir / name, truth[name]) for name in sorted(truth)]

    def test_items(self) -> list[tuple[Path, int]]:
        """``(test image, class id)`` for every test image, by class then file name."""
        return [
            (path, class_id)
            for class_id, name in enumerate(self.class_names)
            for path in sorted((self.test_dir / name).glob("*.png"))
        ]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _assign_samples(config: DigitsClassifyConfig) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """Which sklearn sample each image shows.

    Returns:
        pool: ``(class id, sample index)`` in pool file order (classes shuffled);
        test: per class, the sample indices of its test images.
    """
    _, labels = _sklearn_digits()
    domain = domain_sample_indices(config.domain)
    need = config.per_class_pool + config.per_class_test
    available = np.bincount(labels[domain], minlength=NUM_CLASSES)
    if need > available.min():
        raise ValueError(
            f"per_class_pool + per_class_test must be <= {int(available.min())} (the rarest "
            f"digit's sklearn samples in the {config.domain} domain; pool and test never share "
            f"one); got {need}"
        )
    rng = np.random.default_rng([config.seed, _SEED_TAG, 0])
    pool: list[tuple[int, int]] = []
    test: list[list[int]] = []
    for c in range(NUM_CLASSES):
        chosen = rng.permutation(domain[labels[domain] == c])[:need]
        pool += [(c, int(s)) for s in chosen[: config.per_class_pool]]
        test.append([int(s) for s in chosen[config.per_class_pool :]])
    order = rng.permutation(len(pool))
    return [pool[i] for i in order], test


def _render_digit(sample: np.ndarray, size: int, rng: np.random.Generator,
                  domain: Domain = "target") -> np.ndarray:
    """One (size, size, 3) uint8 RGB image of an (8, 8) ink sample, drawn from ``rng`` on the
    ``domain``'s backgrounds and inks."""
    canvas = _background(rng, size, size, domain)
    luma = float((canvas @ _LUMA).mean())
    colour = _ink_colour(rng, luma, domain)
    digit = round(size * rng.uniform(0.55, 0.75))
    alpha = _digit_alpha(
        sample,
        max(8, digit),
        aspect=rng.uniform(0.85, 1.15),
        angle=rng.uniform(-12.0, 12.0),
        gamma=rng.uniform(0.8, 1.3),
        cut=rng.uniform(0.12, 0.3),
    )
    h, w = alpha.shape
    if h > size or w > size:  # a large rotated digit: keep its centre
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        alpha = alpha[top : top + size, left : left + size]
        h, w = alpha.shape
    x = int(rng.integers(0, size - w + 1))
    y = int(rng.integers(0, size - h + 1))
    _composite(canvas, alpha, x, y, colour, float(rng.uniform(0.85, 1.0)))
    pixels = canvas * np.float32(255.0)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(
        255.0 * rng.uniform(0.0, 0.03)
    )
    return np.clip(pixels + np.float32(0.5), 0, 255).astype(np.uint8)


def _image_rng(config: DigitsClassifyConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, _SEED_TAG, _SPLIT_CODE[split], index,
                                  DOMAINS.index(config.domain)])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
_FOLDER = GeneratedFolder("generate_digits_classify", "digits classification set", MANIFEST_FORMAT,
                          MANIFEST_VERSION, OWNED_ENTRIES, INCOMPLETE_MARKER)


def _is_complete(root: Path, manifest: dict[str, Any]) -> bool:
    files = [entry.get("file", "") for entry in manifest.get("images", [])]
    return (root / TRUTH_NAME).is_file() and all((root / f).is_file() for f in files)


def _save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def generate_digits_classify(
    root: Path | str,
    per_class_pool: int = 40,
    per_class_test: int = 10,
    seed: int = 0,
    imgsz: int = 32,
    *,
    domain: Domain = "target",
    overwrite: bool = False,
) -> DigitsClassifySet:
    """Write the digits classification set into ``root`` and return it.

    ``root`` may be missing or empty. When it already holds a complete set of the same config,
    it is returned without writing anything. A set of another config (or an interrupted run) is
    replaced only with ``overwrite=True``, removing only what this generator owns
    (:data:`OWNED_ENTRIES`); any other non-empty folder is refused.

    Args:
        root: the data set folder.
        per_class_pool: pool images per class (>= 1); the pool holds ``10 * per_class_pool``.
        per_class_test: test images per class (>= 0).
        seed: non-negative integer.
        imgsz: image side in pixels (>= 16).
        domain: ``"target"`` or ``"source"`` (see the module docstring).
        overwrite: replace a set generated with another config.

    Raises:
        ValueError: a bad config value, or more images per class than sklearn has samples.
        FileExistsError: ``root`` may not be written (see above).
    """
    config = DigitsClassifyConfig(per_class_pool, per_class_test, seed, imgsz, domain)
    root = Path(root).expanduser().resolve()
    if _FOLDER.holds(root, config.to_dict(), overwrite, lambda m: _is_complete(root, m)):
        return DigitsClassifySet(root, config)
    pool, test = _assign_samples(config)  # validates the counts before anything is written

    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / INCOMPLETE_MARKER, json.dumps(config.to_dict(), sort_keys=True))
    dataset = DigitsClassifySet(root, config)
    dataset.pool_dir.mkdir(parents=True, exist_ok=True)
    dataset.pool_labels_dir.mkdir(parents=True, exist_ok=True)
    for name in CLASS_NAMES:
        (dataset.test_dir / name).mkdir(parents=True, exist_ok=True)

    images, _ = _sklearn_digits()
    entries: list[dict[str, Any]] = []
    truth: dict[str, int] = {}
    for index, (class_id, sample) in enumerate(pool):
        name = f"pool_{index:06d}.png"
        _save_png(_render_digit(images[sample], imgsz, _image_rng(config, POOL_DIR, index), domain),
                  dataset.pool_dir / name)
        truth[name] = class_id
        _write_atomic(dataset.pool_labels_dir / f"{Path(name).stem}.txt",
                      f"{class_id} 0.5 0.5 1 1\n")
        entries.append({"file": f"{POOL_DIR}/{name}", "split": POOL_DIR, "class_id": class_id,
                        "sample": sample})
    index = 0
    for class_id, samples in enumerate(test):
        for sample in samples:
            rel = f"{TEST_DIR}/{CLASS_NAMES[class_id]}/test_{index:06d}.png"
            _save_png(_render_digit(images[sample], imgsz, _image_rng(config, TEST_DIR, index), domain),
                      root / rel)
            entries.append({"file": rel, "split": TEST_DIR, "class_id": class_id,
                            "sample": sample})
            index += 1

    _write_atomic(dataset.truth_file, json.dumps(truth, indent=1, sort_keys=True) + "\n")
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "config": config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "counts": {POOL_DIR: len(pool), TEST_DIR: index},
        "sklearn_samples": "load_digits(); pool and test samples of a class are disjoint",
        "images": entries,
    }
    _write_atomic(dataset.manifest, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (root / INCOMPLETE_MARKER).unlink()  # the manifest (written last) marks a complete set
    return dataset


def load_digits_classify(root: Path | str) -> DigitsClassifySet:
    """Re-open a set written by :func:`generate_digits_classify` from its manifest.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` holds no complete set of :func:`generate_digits_classify`.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"digits classification set {root} does not exist")
    manifest = _FOLDER.read_manifest(root)
    if manifest is None or not _is_complete(root, manifest):
        raise ValueError(
            f"{root} holds no complete digits classification set; expected a {MANIFEST_NAME} of "
            f"format {MANIFEST_FORMAT!r} and every file it lists"
        )
    return DigitsClassifySet(root, DigitsClassifyConfig.from_dict(manifest["config"]))
