"""Configuration of the digits generator: :class:`DigitsConfig` and its validation, the class
prior (long tail, rare classes) and which scikit-learn digit samples each domain draws from.

scikit-learn is imported on first use of :func:`_sklearn_digits`, never at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Domain = Literal["target", "source"]
Split = Literal["pool", "val", "test"]
Box = tuple[int, int, int, int]
"""Pixel corners x0, y0, x1, y1 with exclusive ends."""

NUM_CLASSES = 10
CLASS_NAMES: tuple[str, ...] = tuple(str(i) for i in range(NUM_CLASSES))
SPLITS: tuple[Split, ...] = ("pool", "val", "test")
DOMAINS: tuple[Domain, ...] = ("target", "source")
DOMAIN_RULE: dict[str, str] = {
    "target": "sklearn load_digits index % 2 == 0",
    "source": "sklearn load_digits index % 2 == 1",
}

_MIN_DIGIT_SIZE = 8
_DOMAIN_CODE = {"target": 0, "source": 1}
_CLASS_SEED_TAG = 0x5EED


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_fraction(name: str, value: object, *, upper_open: bool = False) -> None:
    bound = "1)" if upper_open else "1]"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.floating, np.integer))
        and math.isfinite(float(value))
        and 0.0 <= float(value) <= 1.0
        and not (upper_open and float(value) >= 1.0)
    )
    if not ok:
        raise ValueError(f"{name} must be a number in [0, {bound}; got {value!r}")


def _check_order(low_name: str, low: int, high_name: str, high: int) -> None:
    if low > high:
        raise ValueError(
            f"{low_name} must be <= {high_name}; got {low_name}={low}, {high_name}={high}"
        )


@dataclass(frozen=True)
class DigitsConfig:
    """Every knob of the digits generator. Sizes are in pixels.

    Attributes:
        pool_images: unlabelled pool images (>= 1).
        val_images: validation images (>= 1; ultralytics needs a val set).
        test_images: test images (>= 0).
        canvas_min, canvas_max: each image's width and height are drawn independently,
            uniformly from this inclusive range. ``canvas_min >= digit_size_max``.
        digits_min, digits_max: digits attempted per image (uniform, inclusive). A digit that
            cannot be placed without heavy overlap after :data:`PLACEMENT_ATTEMPTS` tries is
            skipped; every image keeps at least one.
        digit_size_min, digit_size_max: side of the upsampled 8x8 cell, drawn log-uniformly.
            The ink box is usually smaller (the digits rarely fill their cell); a digit is then
            stretched horizontally by 0.8-1.15 and rotated by up to 12 degrees.
        rare_classes: the rare digit classes (distinct, in 0..9, at most 9 of them), or None to
            let ``seed`` choose ``num_rare_classes`` of them.
        num_rare_classes: how many rare classes ``seed`` chooses when ``rare_classes`` is None.
        rare_fraction: expected share of digit instances from the rare classes, in [0, 1).
        long_tail_exponent: power-law exponent of the class weights within the common and
            within the rare group (rank r gets ``r ** -exponent``), >= 0.
        max_box_overlap: largest allowed intersection of two digit boxes, as a fraction of the
            smaller box's area, in [0, 1].
        duplicate_cluster_fraction: share of pool images that belong to near-duplicate
            clusters, in [0, 1].
        cluster_size_min, cluster_size_max: images per near-duplicate cluster (>= 2).
        distractors_max: distractor strokes per image are drawn uniformly from 0..this.
        domain: ``"target"`` (even sklearn indices, light backgrounds) or ``"source"`` (odd
            indices, dark gridded backgrounds).
        seed: non-negative integer; the same config writes byte-identical files.
    """

    pool_images: int = 400
    val_images: int = 80
    test_images: int = 120
    canvas_min: int = 96
    canvas_max: int = 160
    digits_min: int = 1
    digits_max: int = 6
    digit_size_min: int = 14
    digit_size_max: int = 48
    rare_classes: tuple[int, ...] | None = (2, 5, 8)
    num_rare_classes: int = 3
    rare_fraction: float = 0.05
    long_tail_exponent: float = 0.5
    max_box_overlap: float = 0.1
    duplicate_cluster_fraction: float = 0.3
    cluster_size_min: int = 3
    cluster_size_max: int = 8
    distractors_max: int = 3
    domain: Domain = "target"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("pool_images", self.pool_images, 1)
        _check_int("val_images", self.val_images, 1)
        _check_int("test_images", self.test_images, 0)
        _check_int("canvas_min", self.canvas_min, 16)
        _check_int("canvas_max", self.canvas_max, 16)
        _check_order("canvas_min", self.canvas_min, "canvas_max", self.canvas_max)
        _check_int("digits_min", self.digits_min, 1)
        _check_int("digits_max", self.digits_max, 1)
        _check_order("digits_min", self.digits_min, "digits_max", self.digits_max)
        _check_int("digit_size_min", self.digit_size_min, _MIN_DIGIT_SIZE)
        _check_int("digit_size_max", self.digit_size_max, _MIN_DIGIT_SIZE)
        _check_order("digit_size_min", self.digit_size_min, "digit_size_max", self.digit_size_max)
        if self.canvas_min < self.digit_size_max:
            raise ValueError(
                f"canvas_min must be >= digit_size_max ({self.digit_size_max}) so the largest "
                f"digit fits; got canvas_min={self.canvas_min}"
            )
        if self.rare_classes is not None:
            rare = self.rare_classes
            if isinstance(rare, (str, bytes)) or not isinstance(rare, (tuple, list)):
                raise ValueError(
                    f"rare_classes must be a tuple of distinct class ids in 0..9 or None; "
                    f"got {rare!r}"
                )
            bad = [c for c in rare if isinstance(c, bool) or not isinstance(c, (int, np.integer))
                   or not 0 <= c < NUM_CLASSES]
            if bad or len(set(rare)) != len(rare) or len(rare) >= NUM_CLASSES:
                raise ValueError(
                    f"rare_classes must be distinct class ids in 0..9, at most 9 of them; "
                    f"got {tuple(rare)!r}"
                )
            object.__setattr__(self, "rare_classes", tuple(int(c) for c in rare))
        _check_int("num_rare_classes", self.num_rare_classes, 0)
        if self.num_rare_classes >= NUM_CLASSES:
            raise ValueError(
                f"num_rare_classes must be < {NUM_CLASSES} (one class must stay common); "
                f"got {self.num_rare_classes}"
            )
        _check_fraction("rare_fraction", self.rare_fraction, upper_open=True)
        if (
            isinstance(self.long_tail_exponent, bool)
            or not isinstance(self.long_tail_exponent, (int, float, np.floating, np.integer))
            or not math.isfinite(float(self.long_tail_exponent))
            or self.long_tail_exponent < 0
        ):
            raise ValueError(
                f"long_tail_exponent must be a finite number >= 0; got {self.long_tail_exponent!r}"
            )
        _check_fraction("max_box_overlap", self.max_box_overlap)
        _check_fraction("duplicate_cluster_fraction", self.duplicate_cluster_fraction)
        _check_int("cluster_size_min", self.cluster_size_min, 2)
        _check_int("cluster_size_max", self.cluster_size_max, 2)
        _check_order(
            "cluster_size_min", self.cluster_size_min, "cluster_size_max", self.cluster_size_max
        )
        _check_int("distractors_max", self.distractors_max, 0)
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)}; got {self.domain!r}")
        _check_int("seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["rare_classes"] is not None:
            out["rare_classes"] = list(out["rare_classes"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DigitsConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown DigitsConfig field(s) {unknown}; expected from {sorted(known)}"
            )
        values = dict(values)
        if values.get("rare_classes") is not None:
            values["rare_classes"] = tuple(values["rare_classes"])
        return cls(**values)


def resolve_rare_classes(config: DigitsConfig) -> tuple[int, ...]:
    """The rare classes: ``config.rare_classes``, else ``num_rare_classes`` chosen by the seed."""
    if config.rare_classes is not None:
        return tuple(sorted(config.rare_classes))
    rng = np.random.default_rng([config.seed, _CLASS_SEED_TAG, 0])
    chosen = rng.choice(NUM_CLASSES, size=config.num_rare_classes, replace=False)
    return tuple(sorted(int(c) for c in chosen))


def class_probabilities(config: DigitsConfig) -> np.ndarray:
    """Probability of each class for one digit instance: (10,) float64 summing to 1.

    See the module docstring for the rule. Depends on ``seed`` but not on ``domain``, so the
    source and target domains of one seed share their label prior.
    """
    rare = set(resolve_rare_classes(config))
    order = np.random.default_rng([config.seed, _CLASS_SEED_TAG, 1]).permutation(NUM_CLASSES)
    common_ids = [int(c) for c in order if int(c) not in rare]
    rare_ids = [int(c) for c in order if int(c) in rare]
    probs = np.zeros(NUM_CLASSES, dtype=np.float64)
    rare_mass = config.rare_fraction if rare_ids else 0.0
    for ids, mass in ((common_ids, 1.0 - rare_mass), (rare_ids, rare_mass)):
        if not ids:
            continue
        weights = np.arange(1, len(ids) + 1, dtype=np.float64) ** -float(config.long_tail_exponent)
        probs[ids] = mass * weights / weights.sum()
    return probs


# --------------------------------------------------------------------------------------------
# The scikit-learn digits
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) float32 ink in [0, 1] and (1797,) int64 labels, read-only."""
    from sklearn.datasets import load_digits  # heavy import, first use only

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).clip(0.0, 1.0)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def domain_sample_indices(domain: Domain) -> np.ndarray:
    """Indices into ``load_digits()`` a domain draws from: (K,) int64, sorted (see DOMAIN_RULE)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {list(DOMAINS)}; got {domain!r}")
    images, _ = _sklearn_digits()
    return np.arange(_DOMAIN_CODE[domain], images.shape[0], 2, dtype=np.int64)
