"""Bundled detection data set: real handwritten digits from scikit-learn placed on synthetic scenes.

The 1797 8x8 digits of :func:`sklearn.datasets.load_digits` (classes ``"0"`` .. ``"9"``) are
upsampled with bicubic interpolation to 14-48 px, slightly stretched and rotated, tinted with a
random ink colour and contrast, and composited onto 96-160 px canvases with gradient, blob,
stripe or grid backgrounds, distractor strokes (lines, arcs, scribbles that are not digits),
blur and pixel noise. The result is written in Ultralytics YOLO format::

    <root>/
      data.yaml                 ultralytics data file, absolute paths (see below)
      manifest.json             seed, config, class counts, per-image cluster id and box count
      pool/images/pool_000000.png ...   the unlabelled pool: NO labels folder beside it
      pool_truth/labels/pool_000000.txt  the pool's ground truth, for a simulated annotator
      val/images/val_000000.png,   val/labels/val_000000.txt
      test/images/test_000000.png, test/labels/test_000000.txt

Images are 8-bit RGB PNGs. A label line is ``cls cx cy w h``: the class id and the box centre and
size normalised by the image width/height, 6 decimals. Boxes are tight around the digit's ink
(pixels whose interpolated ink coverage reaches :data:`INK_THRESHOLD`), not its 8x8 cell.

Class distribution (long tail): the ``rare_classes`` share ``rare_fraction`` of the expected digit
instances; the other ("common") classes share the rest. Within each group the classes are ranked
by a permutation drawn from ``seed`` and the class of rank r (1-based) gets weight
``r ** -long_tail_exponent`` (0 = uniform within the group). The defaults give the most frequent
class about 24 % of the digits, the least frequent common class about 9 % and the three rare
classes about 2.2 %, 1.6 % and 1.3 %. ``rare_classes=None`` lets ``seed`` choose
``num_rare_classes`` rare classes. The resolved probabilities are recorded in the manifest.

Near-duplicates: ``duplicate_cluster_fraction`` of the pool belongs to clusters of
``cluster_size_min``..``cluster_size_max`` images rendered from one base scene with small jitter
(camera shift of up to 2 px, per-digit shift of up to 1 px, brightness/gain, fresh noise), like
frames of a video. Cluster members get scattered file names. val and test have no clusters. Every
image has a ``cluster_id`` in the manifest; images sharing it (within a split) are near-duplicates.

Domains: the ``"target"`` domain uses the sklearn digits with an even index, the ``"source"``
domain those with an odd index (:func:`domain_sample_indices`), so the two never share a digit
sample. The source domain also draws its backgrounds from another style (dark, cool, vignetted,
gridded, blocky texture and speckle instead of light, warm, blobs and stripes).

Determinism: every image is drawn from a :class:`numpy.random.Generator` seeded with
``(seed, domain, split, cluster/image index)``, so the same config writes byte-identical PNGs
(on the same platform and numpy/Pillow versions). Nothing is read or written at import time;
scikit-learn is imported on first use.
Layout of the package (every public name importable from ``labelwise.datasets.digits`` as before;
the private helpers live in their modules):
``config`` (DigitsConfig, class prior, domain samples), ``backgrounds`` (backgrounds, ink
colours), ``render`` (scene planning and rendering), ``labels`` (YOLO label files), ``dataset``
(DigitsDataset, manifest, load_dataset) and ``generate`` (generate_digits).
"""

from __future__ import annotations

from .config import (
    CLASS_NAMES,
    DOMAIN_RULE,
    DOMAINS,
    NUM_CLASSES,
    SPLITS,
    Box,
    DigitsConfig,
    Domain,
    Split,
    class_probabilities,
    domain_sample_indices,
    resolve_rare_classes,
)
from .dataset import (
    DATA_YAML_NAME,
    INCOMPLETE_MARKER,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    OWNED_ENTRIES,
    DigitsDataset,
    load_dataset,
)
from .generate import PNG_COMPRESS_LEVEL, generate_digits
from .labels import LABEL_DECIMALS, read_yolo_labels
from .render import (
    INK_THRESHOLD,
    PLACEMENT_ATTEMPTS,
    POSITION_ATTEMPTS,
    SHAPE_ATTEMPTS,
)

__all__ = [
    "CLASS_NAMES",
    "DATA_YAML_NAME",
    "DOMAINS",
    "DOMAIN_RULE",
    "INCOMPLETE_MARKER",
    "INK_THRESHOLD",
    "LABEL_DECIMALS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "NUM_CLASSES",
    "OWNED_ENTRIES",
    "PLACEMENT_ATTEMPTS",
    "PNG_COMPRESS_LEVEL",
    "POSITION_ATTEMPTS",
    "SHAPE_ATTEMPTS",
    "SPLITS",
    "Box",
    "DigitsConfig",
    "DigitsDataset",
    "Domain",
    "Split",
    "class_probabilities",
    "domain_sample_indices",
    "generate_digits",
    "load_dataset",
    "read_yolo_labels",
    "resolve_rare_classes",
]
