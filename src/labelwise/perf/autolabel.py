"""Auto-label speed per inference backend against a raw ``YOLO.predict`` loop
(``labelwise bench autolabel``).

What is measured, all in one run on the same images (the bundled digits pool, ``images`` images
generated with ``seed``), for each image size and each backend (torch, onnx, openvino):

* ``raw``: a plain ultralytics loop, ``YOLO(model).predict(paths[i:i + batch])`` over the pool,
  on the same backend (torch: the ``.pt``; onnx / openvino: ultralytics' own export of it, run by
  ultralytics' AutoBackend), same imgsz / conf / iou / max_det / batch. It reads the files itself
  and keeps only (xyxy, conf, cls): the floor auto-label is held against. The OpenVINO loop is
  recompiled in f32 (:func:`pin_openvino_f32`), the precision the product runs; the loop on
  ultralytics' own settings (bf16 on CPUs with AMX) is timed beside it (``raw_default``).
* ``autolabel``: :func:`labelwise.autolabel.auto_label` over a fresh catalog holding the pool
  (every image predicted and embedded with the product's default embedder, ``embedder.kind =
  auto`` = pooled detector features + 8x8 pixels), with ``detector.backend`` set to that backend:
  reading, predicting with full class vectors, embedding, catalog writes.

Each repeat runs every (backend, raw / autolabel) pair once, in that order, so slow drifts of the
machine hit all of them alike; the figure reported is the best of ``repeats`` (mean and standard
deviation beside it). One warm-up of each, untimed, comes first (exports, session creation,
first-call allocation).

Class vectors: ``raw_gap`` is the largest absolute difference between the backend's and torch's
raw class scores (the (B, C, anchors) part of the Detect head output) on the first batch, on
the same letterboxed input; ``box_gap`` the largest difference of the stored class vectors
(``Detections.probs``) over boxes matched between the two (same class, IoU >= 0.9, nearest
confidence) over the whole pool. Both must stay within :data:`CLASS_TOLERANCE`.

Goals (from issue 15): auto-label at least :data:`GOAL_AUTOLABEL_VS_RAW` times the raw loop on the
same backend; the fastest backend's auto-label at least :data:`GOAL_FASTEST_VS_TORCH_640` times
the raw torch loop at 640 px.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.domain import Detections

BACKEND_NAMES: tuple[str, ...] = ("torch", "onnx", "openvino")
CLASS_TOLERANCE = 1e-3
GOAL_AUTOLABEL_VS_RAW = 0.9
GOAL_FASTEST_VS_TORCH_640 = 1.5
MATCH_IOU = 0.9


@dataclass(frozen=True)
class AutoLabelBenchConfig:
    """What ``bench autolabel`` runs.

    Attributes:
        images: pool images (bundled digits generator, ``seed``).
        sizes: inference image sizes in pixels (ultralytics ``imgsz``).
        backends: inference backends, torch first (the reference of the class-vector gaps).
        batch, conf: images per forward pass; prediction threshold (the product's low default).
        repeats: timed repeats (best of, mean and std reported).
        seed: seed of the images and of the yaml-built model's weights.
        model: an ultralytics model yaml (random init) or a .pt.
        out: where the JSON and the table are written.
        profile: cProfile one torch auto-label at the first size, top functions in the result.
    """

    images: int = 256
    sizes: tuple[int, ...] = (128, 640)
    backends: tuple[str, ...] = BACKEND_NAMES
    batch: int = 16
    conf: float = 0.01
    repeats: int = 3
    seed: int = 0
    model: str = "yolov8n.yaml"
    out: Path = Path(".labelwise/bench/autolabel")
    profile: bool = False

    def __post_init__(self) -> None:
        if self.images < 1 or self.batch < 1 or self.repeats < 1:
            raise ValueError(
                f"images, batch and repeats must be >= 1; got {self.images}, {self.batch}, {self.repeats}"
            )
        if not self.sizes or any(s < 32 or s % 32 for s in self.sizes):
            raise ValueError(f"sizes must be multiples of 32, >= 32; got {self.sizes}")
        unknown = [b for b in self.backends if b not in BACKEND_NAMES]
        if unknown or not self.backends or self.backends[0] != "torch":
            raise ValueError(
                f"backends must be among {BACKEND_NAMES}, torch first (the reference); got {self.backends}"
            )


# --------------------------------------------------------------------------------------------
# Pure parts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds of ``repeats`` runs over ``images`` images."""

    images: int
    seconds: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def std(self) -> float:
        return statistics.stdev(self.seconds) if len(self.seconds) > 1 else 0.0

    @property
    def images_per_second(self) -> float:
        """Of the best run."""
        return self.images / self.best if self.best > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": [round(s, 4) for s in self.seconds],
                "best_s": round(self.best, 4), "mean_s": round(self.mean, 4), "std_s": round(self.std, 4),
                "images_per_s": round(self.images_per_second, 2)}


@dataclass(frozen=True)
class ClassVectorGap:
    """Class vectors of a backend against torch's over matched boxes.

    Attributes:
        boxes: boxes torch kept; matched: of them, boxes the backend also kept (same class,
            IoU >= :data:`MATCH_IOU`); max_abs: largest |probs difference| over matched boxes.
    """

    boxes: int
    matched: int
    max_abs: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def matched_class_vector_gap(
    reference: Sequence[Detections], other: Sequence[Detections], iou_min: float = MATCH_IOU
) -> ClassVectorGap:
    """Match each reference box to the other backend's box of the same class with IoU >=
    ``iou_min`` and the nearest confidence, and take the largest |probs difference| (pure).

    Near-tied boxes of an untrained model can swap places in NMS under float noise, so boxes are
    matched by geometry and class rather than by position in the list.
    """
    if len(reference) != len(other):
        raise ValueError(f"expected detections of the same images; got {len(reference)} and {len(other)}")
    boxes = matched = 0
    worst = 0.0
    for ref, got in zip(reference, other):
        boxes += len(ref.confidence)
        if not len(ref.confidence) or not len(got.confidence):
            continue
        iou = box_iou(ref.xyxy.astype(np.float64), got.xyxy.astype(np.float64))
        same = ref.class_id[:, None] == got.class_id[None, :]
        for i in range(len(ref.confidence)):
            candidates = np.flatnonzero(same[i] & (iou[i] >= iou_min))
            if not len(candidates):
                continue
            j = candidates[np.argmin(np.abs(got.confidence[candidates] - ref.confidence[i]))]
            matched += 1
            worst = max(worst, float(np.abs(ref.probs[i] - got.probs[j]).max()))
    return ClassVectorGap(boxes=boxes, matched=matched, max_abs=worst)


@dataclass(frozen=True)
class BackendResult:
    """One backend at one size."""

    backend: str
    imgsz: int
    raw: Timing
    autolabel: Timing
    stages: dict[str, float] = field(default_factory=dict)  # best run's report: predict/embed/write s
    raw_default: Timing | None = None  # openvino only: the raw loop on ultralytics' own compile settings
    raw_gap: float | None = None  # vs torch; None for torch itself
    box_gap: ClassVectorGap | None = None

    @property
    def vs_raw(self) -> float:
        """auto-label images/s over the raw loop's on the same backend."""
        return self.autolabel.images_per_second / self.raw.images_per_second

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "imgsz": self.imgsz, "raw": self.raw.as_dict(),
                "autolabel": self.autolabel.as_dict(), "autolabel_stages_s": self.stages,
                "autolabel_vs_raw": round(self.vs_raw, 3), "raw_class_gap": self.raw_gap,
                "box_class_gap": asdict(self.box_gap) if self.box_gap else None,
                "raw_default_precision": self.raw_default.as_dict() if self.raw_default else None}


def goals(results: Sequence[BackendResult]) -> dict[str, Any]:
    """Each goal with its figure and verdict (pure)."""
    out: dict[str, Any] = {}
    for r in results:
        out[f"autolabel_vs_raw/{r.backend}/{r.imgsz}"] = {
            "value": round(r.vs_raw, 3), "goal": GOAL_AUTOLABEL_VS_RAW, "met": r.vs_raw >= GOAL_AUTOLABEL_VS_RAW}
        if r.raw_gap is not None:
            gap = max(r.raw_gap, r.box_gap.max_abs if r.box_gap else 0.0)
            out[f"class_gap/{r.backend}/{r.imgsz}"] = {
                "value": gap, "goal": CLASS_TOLERANCE, "met": gap <= CLASS_TOLERANCE}
    at_640 = [r for r in results if r.imgsz == 640]
    torch_640 = next((r for r in at_640 if r.backend == "torch"), None)
    if torch_640 is not None:
        fastest = max(at_640, key=lambda r: r.autolabel.images_per_second)
        ratio = fastest.autolabel.images_per_second / torch_640.raw.images_per_second
        out["fastest_vs_torch_raw/640"] = {"backend": fastest.backend, "value": round(ratio, 3),
                                           "goal": GOAL_FASTEST_VS_TORCH_640,
                                           "met": ratio >= GOAL_FASTEST_VS_TORCH_640}
    return out


@dataclass(frozen=True)
class AutoLabelBenchResult:
    config: AutoLabelBenchConfig
    results: tuple[BackendResult, ...]
    machine: dict[str, Any]
    profile: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        cfg = {**asdict(self.config), "out": str(self.config.out)}
        return {"config": cfg, "machine": self.machine, "results": [r.as_dict() for r in self.results],
                "goals": goals(self.results), "profile": list(self.profile)}


def text_table(result: AutoLabelBenchResult) -> str:
    """Markdown table of every (size, backend) with the goals' verdicts."""
    lines = [
        "| imgsz | backend | raw loop img/s | auto-label img/s (best; mean ± std s) | auto-label / raw "
        "| predict / embed / write s | class gap raw / boxes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.results:
        st = r.stages
        gap = "reference" if r.raw_gap is None else (
            f"{r.raw_gap:.1e} / {r.box_gap.max_abs:.1e} ({r.box_gap.matched}/{r.box_gap.boxes} matched)"
            if r.box_gap else f"{r.raw_gap:.1e}")
        lines.append(
            f"| {r.imgsz} | {r.backend} | {r.raw.images_per_second:.1f} | {r.autolabel.images_per_second:.1f} "
            f"({r.autolabel.mean:.2f} ± {r.autolabel.std:.2f}) | {r.vs_raw:.2f}x "
            f"| {st.get('predict_seconds', 0):.2f} / {st.get('embed_seconds', 0):.2f} / "
            f"{st.get('write_seconds', 0):.2f} | {gap} |"
        )
    lines.append("")
    for r in result.results:
        if r.raw_default is not None:
            lines.append(f"- raw {r.backend} loop at {r.imgsz} px on ultralytics' own compile settings (the CPU's "
                         f"default precision, bf16 where it has AMX): {r.raw_default.images_per_second:.1f} img/s")
    for name, g in goals(result.results).items():
        lines.append(f"- {name}: {g['value']} (goal {g['goal']}) {'met' if g['met'] else 'MISSED'}"
                     + (f" [{g['backend']}]" if "backend" in g else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------
def _machine() -> dict[str, Any]:
    import os
    import platform

    import torch

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class _Run:
    """Everything one (size) needs: settings, the pool catalog factory, the models."""

    def __init__(self, cfg: AutoLabelBenchConfig, root: Path, imgsz: int, paths: list[Path],
                 class_names: tuple[str, ...]) -> None:
        from labelwise.config import CONFIG_FILE_KWARG, Settings

        self.cfg, self.root, self.imgsz, self.paths, self.class_names = cfg, root, imgsz, paths, class_names
        values: dict[str, Any] = {CONFIG_FILE_KWARG: None, "state_dir": root / "state"}
        self.settings = Settings(**values)
        self.settings.detector.imgsz = imgsz
        self.settings.detector.batch = cfg.batch
        self.settings.detector.conf = cfg.conf
        self._n = 0

    def detector(self, backend: str, ref: str) -> Any:
        from labelwise.runtime import load_detector

        settings = self.settings.model_copy(deep=True)
        settings.detector.backend = backend  # type: ignore[assignment]
        return load_detector(settings, self.class_names, ref)

    def autolabel_once(self, detector: Any, profiler: cProfile.Profile | None = None) -> tuple[float, dict[str, float]]:
        from labelwise.autolabel import auto_label
        from labelwise.catalog import Catalog
        from labelwise.runtime import load_embedder

        self._n += 1
        catalog = Catalog.open(f"sqlite:///{self.root / f'catalog-{self.imgsz}-{self._n}.db'}")
        try:
            project = catalog.create_project("bench", list(self.class_names))
            catalog.add_images(project, self.paths)
            embedder = load_embedder(self.settings, detector)
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            report = auto_label(catalog, project, detector, embedder, self.cfg.batch)
            seconds = time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
        finally:
            catalog.close()
        if report.predicted != len(self.paths) or report.embedded != len(self.paths):
            raise RuntimeError(
                f"auto-label stored {report.predicted} predictions and {report.embedded} embeddings; "
                f"expected {len(self.paths)} of each"
            )
        return seconds, {"predict_seconds": round(report.predict_seconds, 3),
                         "embed_seconds": round(report.embed_seconds, 3),
                         "write_seconds": round(report.write_seconds, 3), "same_pass": report.same_pass}

    def raw_once(self, yolo: Any) -> float:
        t0 = time.perf_counter()
        for start in range(0, len(self.paths), self.cfg.batch):
            yolo.predict([str(p) for p in self.paths[start : start + self.cfg.batch]], imgsz=self.imgsz,
                         conf=self.cfg.conf, iou=self.settings.detector.iou,
                         max_det=self.settings.detector.max_det, batch=self.cfg.batch, device="cpu",
                         verbose=False, save=False)
        return time.perf_counter() - t0


def _raw_model(backend: str, pt: Path, imgsz: int, batch: int, work: Path) -> Any:
    """An ultralytics YOLO on ``backend``: the .pt, or ultralytics' own export of it."""
    from ultralytics import YOLO

    if backend == "torch":
        return YOLO(str(pt), task="detect")
    folder = work / f"raw-{backend}-{imgsz}"
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / pt.name
    copy.write_bytes(pt.read_bytes())
    exported = YOLO(str(copy), task="detect").export(format=backend, imgsz=imgsz, dynamic=True, batch=batch,
                                                      simplify=True, device="cpu", verbose=False)
    return YOLO(str(exported), task="detect")


def pin_openvino_f32(yolo: Any) -> None:
    """Recompile the OpenVINO model of an ultralytics YOLO (after its first predict) in f32, as
    :class:`labelwise.inference_backends.OpenVinoRunner` runs it: OpenVINO's CPU default is bf16 on
    CPUs with AMX, which ultralytics keeps on x86; that would compare the product's f32 with a bf16
    loop."""
    import openvino as ov

    folder = Path(str(yolo.model_name if hasattr(yolo, "model_name") else yolo.ckpt_path))
    xmls = sorted(folder.glob("*.xml")) if folder.is_dir() else []
    if len(xmls) != 1:
        raise RuntimeError(f"expected one OpenVINO .xml in {folder}; found {xmls}")
    backend = yolo.predictor.model.backend
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    backend.ov_compiled_model = ov.Core().compile_model(str(xmls[0]), "CPU", config)


def _profile_top(profiler: cProfile.Profile, top: int = 15) -> tuple[dict[str, Any], ...]:
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(filename).name}:{line}:{name}", "calls": calls,
                     "tottime_s": round(tottime, 4), "cumtime_s": round(cumtime, 4)})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return tuple(rows[:top])


def bench_autolabel(cfg: AutoLabelBenchConfig, log: Callable[[str], None] = lambda _m: None) -> AutoLabelBenchResult:
    """Run the whole comparison (see the module docstring); writes ``out/autolabel.json`` and
    ``out/autolabel.md``."""
    from labelwise.datasets.digits import DigitsConfig, generate_digits
    from labelwise.ultralytics_env import ensure_ultralytics

    cfg.out.mkdir(parents=True, exist_ok=True)
    results: list[BackendResult] = []
    profile: tuple[dict[str, Any], ...] = ()
    with tempfile.TemporaryDirectory(prefix="labelwise-bench-autolabel-") as tmp:
        root = Path(tmp)
        ensure_ultralytics(root / "state" / "ultralytics")
        ds = generate_digits(root / "digits", DigitsConfig(pool_images=cfg.images, val_images=1, test_images=0,
                                                           seed=cfg.seed))
        paths = sorted(p for p in ds.pool_images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
        names = tuple(ds.class_names)
        for imgsz in cfg.sizes:
            run = _Run(cfg, root, imgsz, paths, names)
            base = run.detector("torch", cfg.model)
            pt = base.save(root / f"model-{imgsz}.pt")
            detectors = {b: run.detector(b, str(pt)) for b in cfg.backends}
            raws = {b: _raw_model(b, pt, imgsz, cfg.batch, root) for b in cfg.backends}
            default_ov = _raw_model("openvino", pt, imgsz, cfg.batch, root) if "openvino" in raws else None
            log(f"imgsz {imgsz}: warm-up")
            for b in cfg.backends:
                run.raw_once(raws[b])
                if b == "openvino":
                    pin_openvino_f32(raws[b])
                    run.raw_once(raws[b])
                run.autolabel_once(detectors[b])
            if default_ov is not None:
                run.raw_once(default_ov)
            default_s: list[float] = []
            raw_s: dict[str, list[float]] = {b: [] for b in cfg.backends}
            auto_s: dict[str, list[float]] = {b: [] for b in cfg.backends}
            stages: dict[str, dict[str, float]] = {}
            for rep in range(cfg.repeats):
                for b in cfg.backends:
                    raw_s[b].append(run.raw_once(raws[b]))
                    seconds, st = run.autolabel_once(detectors[b])
                    if not auto_s[b] or seconds < min(auto_s[b]):
                        stages[b] = st
                    auto_s[b].append(seconds)
                    log(f"imgsz {imgsz} repeat {rep + 1}: {b} raw {raw_s[b][-1]:.2f} s, auto-label {seconds:.2f} s")
                if default_ov is not None:
                    default_s.append(run.raw_once(default_ov))
            ref_dets = detectors["torch"].predict(paths)
            ref_raw, _ = detectors["torch"].raw_outputs(paths[: cfg.batch])
            for b in cfg.backends:
                raw_gap: float | None = None
                box_gap: ClassVectorGap | None = None
                if b != "torch":
                    got_raw, _ = detectors[b].raw_outputs(paths[: cfg.batch])
                    raw_gap = float(np.abs(got_raw[:, 4:] - ref_raw[:, 4:]).max())
                    box_gap = matched_class_vector_gap(ref_dets, detectors[b].predict(paths))
                default = Timing(len(paths), tuple(default_s)) if b == "openvino" and default_s else None
                results.append(BackendResult(b, imgsz, Timing(len(paths), tuple(raw_s[b])),
                                             Timing(len(paths), tuple(auto_s[b])), stages[b],
                                             raw_default=default, raw_gap=raw_gap, box_gap=box_gap))
            if cfg.profile and not profile:
                profiler = cProfile.Profile()
                run.autolabel_once(detectors["torch"], profiler)
                profile = _profile_top(profiler)
    result = AutoLabelBenchResult(cfg, tuple(results), _machine(), profile)
    (cfg.out / "autolabel.json").write_text(json.dumps(result.as_dict(), indent=2))
    (cfg.out / "autolabel.md").write_text(text_table(result) + "\n")
    return result
