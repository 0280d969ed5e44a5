"""A simulated annotator: answers queued Label Studio tasks with ground truth, through the API.

For demos and tests without a human. Each queued image whose task has no annotation yet gets one
annotation (created with the API key's user, exactly like a reviewer's) holding the boxes of its
YOLO ground-truth file, each box's class replaced with probability ``noise`` by a uniformly
random OTHER class. Optionally (:class:`LabelNoise`, :func:`apply_label_noise`) boxes are also
dropped, added, shifted and swapped at known rates, and every injected error is recorded so a
label-issue finder can be measured against them.

Ground truth of image ``.../<name>.png`` is ``<truth_dir>/<name>.txt``; without ``truth_dir``,
the bundled digits layout is assumed: ``<root>/pool/images/<name>.png`` has its truth in
``<root>/pool_truth/labels/<name>.txt``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labelwise.catalog import Catalog, ImageRecord
from labelwise.config import Settings
from labelwise.domain import ImageStatus
from labelwise.labelstudio.formats import review_format
from labelwise.masks import ImageSegments, SegmentInstance, read_segment_labels, segment_rows
from labelwise.review.project import open_client
from labelwise.review.status import require_ls_project, task_state
from labelwise.task_types import TaskType


def default_truth_path(image_path: Path) -> Path:
    """``<root>/pool_truth/labels/<stem>.txt`` for an image at ``<root>/pool/images/<file>``."""
    return image_path.parent.parent.parent / "pool_truth" / "labels" / f"{image_path.stem}.txt"


def truth_path(image: ImageRecord, truth_dir: str | Path | None) -> Path:
    """Where the ground truth of ``image`` is read from."""
    if truth_dir is None:
        return default_truth_path(image.path)
    return Path(truth_dir).expanduser() / f"{image.path.stem}.txt"


def noisy_labels(
    labels: np.ndarray, num_classes: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """A copy of (N, 5) YOLO rows whose class ids are each, with probability ``noise``, replaced
    by a uniformly random OTHER class (unchanged with a single class).

    One ``rng.random()`` draw per row, plus one ``rng.integers`` per replaced row, in row order.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a probability in [0, 1]; got {noise}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    out = np.array(labels, dtype=np.float64).reshape(-1, 5)
    for row in out:
        if rng.random() < noise and num_classes > 1:
            shift = int(rng.integers(1, num_classes))  # 1..C-1: never the same class
            row[0] = float((int(row[0]) + shift) % num_classes)
    return out


#: Upper bound (exclusive) of the IoU between a shifted box and its truth.
SHIFT_MAX_IOU = 0.5
#: Random shift candidates tried before the deterministic fallback (see :func:`shift_box`).
SHIFT_TRIES = 50
#: Side range, normalised to the image, of a spurious (added) box.
ADD_SIDE_RANGE = (0.05, 0.3)

NoiseKind = Literal["drop", "add", "shift", "swap"]


@dataclass(frozen=True)
class LabelNoise:
    """Rates of injected label errors, each a probability in [0, 1].

    Attributes:
        drop: per true box, probability that it is left out (an overlooked box).
        add: per true box, probability that one spurious box of a uniformly random class is
            added (so an image without boxes gets none).
        shift: per kept box, probability that it is moved/resized so its IoU with the truth is
            below :data:`SHIFT_MAX_IOU` (bad localisation; rule in :func:`shift_box`).
        swap: per kept box, probability that its class is replaced by a uniformly random OTHER
            class (never with a single class).
    """

    drop: float = 0.0
    add: float = 0.0
    shift: float = 0.0
    swap: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop", "add", "shift", "swap"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} rate must be a probability in [0, 1]; got {value}")

    @property
    def any(self) -> bool:
        """Whether any rate is positive."""
        return max(self.drop, self.add, self.shift, self.swap) > 0.0


@dataclass(frozen=True)
class InjectedError:
    """One error the simulated annotator injected into an image's labels.

    Attributes:
        image_id: the catalog id of the image.
        kind: ``"drop"``, ``"add"``, ``"shift"`` or ``"swap"``.
        class_id: the class as written to the noisy labels (for ``drop``: the dropped box's).
        box: ``(cx, cy, w, h)`` normalised to [0, 1], as written to the noisy labels (for
            ``drop``: the dropped true box).
        true_class_id: the class of the box before this error (None for ``add``).
        true_box: ``(cx, cy, w, h)`` of the box before this error (None for ``add``).
    """

    image_id: str
    kind: NoiseKind
    class_id: int
    box: tuple[float, float, float, float]
    true_class_id: int | None = None
    true_box: tuple[float, float, float, float] | None = None

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(asdict(self))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(cx, cy, w, h)`` boxes, shape (4,), in the same (e.g. normalised) units.

    IoU is invariant to scaling the axes, so normalised and pixel coordinates give the same value.
    """
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _clip_box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(1.0, x1), min(1.0, y1)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dtype=np.float64)


def shift_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A badly located copy of a normalised ``(cx, cy, w, h)`` box, shape (4,).

    Rule: up to :data:`SHIFT_TRIES` candidates are drawn, each scaling width and height by
    independent factors uniform in [0.6, 1.4] and moving the centre by uniform offsets in
    [-0.8, 0.8] of the true width and height, then clipped to the image [0, 1]; the first
    candidate with positive sides and IoU with the truth strictly below :data:`SHIFT_MAX_IOU` is
    returned. If none qualifies (e.g. a box covering the whole image), the box is shrunk to half
    its width and height about its centre (IoU exactly 0.25). So the result always has
    ``box_iou(result, box) < SHIFT_MAX_IOU``.
    """
    cx, cy, w, h = (float(v) for v in box[:4])
    for _ in range(SHIFT_TRIES):
        sw, sh = rng.uniform(0.6, 1.4, size=2)
        dx, dy = rng.uniform(-0.8, 0.8, size=2)
        ncx, ncy, nw, nh = cx + dx * w, cy + dy * h, w * sw, h * sh
        cand = _clip_box(ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2)
        if cand[2] > 1e-6 and cand[3] > 1e-6 and box_iou(cand, box) < SHIFT_MAX_IOU:
            return cand
    return np.array([cx, cy, w / 2, h / 2], dtype=np.float64)


def _as_box(values: np.ndarray) -> tuple[float, float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def apply_label_noise(
    rows: np.ndarray,
    num_classes: int,
    noise: LabelNoise,
    rng: np.random.Generator,
    image_id: str,
) -> tuple[np.ndarray, list[InjectedError]]:
    """Inject drop, add, shift and swap errors into one image's YOLO labels.

    Args:
        rows: (N, 5) YOLO rows ``class, cx, cy, w, h`` with coordinates normalised to [0, 1].
        num_classes: number of classes C (>= 1); classes are ``0..C-1``.
        noise: the rates.
        rng: the random source. Per true box, in row order, exactly four ``rng.random()``
            draws (drop, swap, shift, add) and one ``rng.integers`` (the seed of that box's own
            generator, which draws the new class, the shifted geometry and the spurious box)
            are taken, whatever the rates, so changing one rate does not change which boxes
            get the other kinds.
        image_id: recorded in each :class:`InjectedError`.

    Returns:
        ``(noisy, errors)``: (M, 5) float64 rows (kept true boxes in their order, then spurious
        boxes) and the errors in the order injected. A dropped box gets no swap/shift; a kept
        box may get both a swap and a shift (two records).

    Raises:
        ValueError: ``num_classes < 1`` or rows not reshapable to (N, 5).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    truth = np.array(rows, dtype=np.float64).reshape(-1, 5)
    kept: list[np.ndarray] = []
    added: list[np.ndarray] = []
    errors: list[InjectedError] = []
    for row in truth:
        u_drop, u_swap, u_shift, u_add = rng.random(4)
        box_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        cls = int(row[0])
        if u_drop < noise.drop:
            errors.append(InjectedError(image_id, "drop", cls, _as_box(row[1:]), cls,
                                        _as_box(row[1:])))
        else:
            out = row.copy()
            if u_swap < noise.swap and num_classes > 1:
                new_cls = (cls + int(box_rng.integers(1, num_classes))) % num_classes
                out[0] = float(new_cls)
                errors.append(InjectedError(image_id, "swap", new_cls, _as_box(out[1:]), cls,
                                            _as_box(row[1:])))
            if u_shift < noise.shift:
                out[1:] = shift_box(row[1:], box_rng)
                errors.append(InjectedError(image_id, "shift", int(out[0]), _as_box(out[1:]),
                                            int(out[0]), _as_box(row[1:])))
            kept.append(out)
        if u_add < noise.add:
            lo, hi = ADD_SIDE_RANGE
            w, h = box_rng.uniform(lo, hi, size=2)
            cx, cy = box_rng.uniform(w / 2, 1 - w / 2), box_rng.uniform(h / 2, 1 - h / 2)
            new_cls = int(box_rng.integers(0, num_classes))
            spurious = np.array([new_cls, cx, cy, w, h], dtype=np.float64)
            added.append(spurious)
            errors.append(InjectedError(image_id, "add", new_cls, _as_box(spurious[1:])))
    noisy = np.array(kept + added, dtype=np.float64).reshape(-1, 5)
    return noisy, errors


def annotate_simulated(
    settings: Settings,
    catalog: Catalog,
    project: str,
    truth_dir: str | None,
    noise: float,
    seed: int,
    label_noise: LabelNoise | None = None,
    injected_out: str | Path | None = None,
    consensus: bool = False,
) -> dict[str, Any]:
    """Answer every queued, still unanswered task with (noisy) ground truth.

    Args:
        truth_dir: folder of ``<image stem>.txt`` YOLO files; None = the digits layout.
        noise: probability that a box's class is replaced by another class, in [0, 1].
        seed: seed of ``np.random.default_rng`` (images are processed in image-id order).
        label_noise: optional drop/add/shift/swap rates, applied (:func:`apply_label_noise`)
            after the ``noise`` class replacement, drawing from the same generator; None leaves
            the behaviour (and random stream) exactly as without it.
        injected_out: optional path; with ``label_noise`` given, every injected error (also
            each ``noise`` class change, as a ``swap``) is written there as JSON lines
            (:meth:`InjectedError.to_json`), replacing the file.
        consensus: answer the consensus copies (another reviewer of the same images) instead
            of the queued tasks.

    Returns:
        ``{"annotated", "already_annotated", "missing_truth", "relabelled_boxes"}``: tasks
        answered now, tasks that had any annotation (also a skip), images without a truth file
        (not annotated), and boxes whose class the noise changed; with ``label_noise``, also
        ``"injected"``: counts per kind (drop, add, shift, swap; ``noise`` changes count as swap)
        and ``"injected_out"``: the path written, or None.

    Raises:
        ValueError: ``noise`` outside [0, 1], or a truth file that is malformed or names a class
            id outside the project's classes.
    """
    from labelwise.datasets.digits import read_yolo_labels

    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a probability in [0, 1]; got {noise}")
    record = catalog.project(project)
    if label_noise is not None and record.task_type is not TaskType.DETECT:
        raise ValueError(f"label noise (drop, add, shift, swap of boxes) is for detection projects; "
                         f"project {record.name!r} is a {record.task_type.value!r} project (use noise= "
                         "for wrong classes)")
    ls_id = require_ls_project(record)
    queued = [img for img in catalog.images(record, ImageStatus.QUEUED)
              if img.ls_task_id is not None]
    rng = np.random.default_rng(seed)
    names = record.class_names
    annotated = already = missing = relabelled = 0
    injected: list[InjectedError] = []
    with open_client(settings) as client:
        listed = client.list_tasks(ls_id, fields="task_only")
        tasks = {int(t["id"]): t for t in listed}
        targets: list[tuple[ImageRecord, dict[str, Any] | None]]
        if consensus:  # the extra reviewers' copies (labelwise.review.consensus), not the queue
            copies = sorted((t for t in listed if (t.get("data") or {}).get("consensus_of")),
                            key=lambda t: str(t["data"].get("consensus_key")))
            records = {r.image_id: r for r in catalog.require_images(
                record, sorted({str(t["data"]["consensus_of"]) for t in copies}))} if copies else {}
            targets = [(records[str(t["data"]["consensus_of"])], t) for t in copies]
        else:
            targets = [(img, tasks.get(int(img.ls_task_id or -1))) for img in queued]
        for img, task in targets:
            if task is None:
                continue
            if task_state(task) != "pending":
                already += 1
                continue
            path = truth_path(img, truth_dir)
            if not path.is_file():
                missing += 1
                continue
            outlines = None
            if record.task_type is TaskType.SEGMENT:  # truth: segment label lines (outlines)
                outlines = read_segment_labels(path, img.width, img.height)
                truth = segment_rows(outlines)
            else:
                truth = read_yolo_labels(path)
            rows = noisy_labels(truth, len(names), noise, rng)
            if outlines is not None:
                outlines = ImageSegments(outlines.width, outlines.height, tuple(
                    SegmentInstance(int(r[0]), inst.polygon) for r, inst in zip(rows, outlines.instances)))
            relabelled += int((rows[:, 0] != truth[:, 0]).sum())
            if label_noise is not None:
                for t_row, n_row in zip(truth, rows):
                    if n_row[0] != t_row[0]:
                        injected.append(InjectedError(
                            img.image_id, "swap", int(n_row[0]), _as_box(n_row[1:]),
                            int(t_row[0]), _as_box(t_row[1:])))
                rows, errors = apply_label_noise(rows, len(names), label_noise, rng,
                                                 img.image_id)
                injected.extend(errors)
            result = review_format(record.task_type).labels_to_result(rows, names, img.width, img.height,
                                                                      outlines)
            client.create_annotation(int(task["id"]), result)
            annotated += 1
    summary: dict[str, Any] = {"annotated": annotated, "already_annotated": already,
                               "missing_truth": missing, "relabelled_boxes": relabelled}
    if label_noise is not None:
        written: str | None = None
        if injected_out is not None:
            out_path = Path(injected_out).expanduser()
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text("".join(e.to_json() + "\n" for e in injected))
            written = str(out_path)
        kinds: tuple[NoiseKind, ...] = ("drop", "add", "shift", "swap")
        summary["injected"] = {k: sum(e.kind == k for e in injected) for k in kinds}
        summary["injected_out"] = written
    return summary
