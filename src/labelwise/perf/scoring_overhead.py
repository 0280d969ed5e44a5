"""Score-batch overhead: scoring + selection time as a share of auto-label inference time.

Runs on the bundled digits pool in a throw-away state folder: auto-label with a yaml-built
detector (so boxes and class vectors are real), then build the score-batch several times.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from labelwise.config import Settings, load_settings


@dataclass(frozen=True)
class OverheadBench:
    images: int
    predict_seconds: float
    embed_seconds: float
    score_batch_seconds: float
    overhead_vs_predict: float
    model: str
    strategy: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bench_overhead(
    images: int = 256, model: str = "yolov8n.yaml", strategy: str = "diverse_uncertainty",
    limit: int = 20, repeats: int = 3, settings: Settings | None = None,
) -> OverheadBench:
    from labelwise.autolabel import auto_label
    from labelwise.datasets.digits import DigitsConfig, generate_digits
    from labelwise.runtime import load_detector, load_embedder, open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
        root = Path(tmp)
        base = settings or load_settings()
        cfg = base.model_copy(update={"state_dir": root / "state"})
        cfg.detector.conf = base.detector.conf
        ds = generate_digits(root / "digits", DigitsConfig(pool_images=images, val_images=8, test_images=8))
        catalog = open_catalog(cfg)
        project = catalog.create_project("bench", list(ds.class_names))
        catalog.add_images(project, ds.pool_images)
        detector = load_detector(cfg, project.class_names, model)
        embedder = load_embedder(cfg, detector)
        report = auto_label(catalog, project, detector, embedder, cfg.detector.batch)
        request = ScoreBatchRequest.from_settings(cfg, "bench", strategy=strategy, limit=limit)
        build_score_batch(catalog, cfg, request, record=False)  # warm: thumbnails, imports
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            build_score_batch(catalog, cfg, request, record=False)
            best = min(best, time.perf_counter() - t0)
        catalog.close()
        return OverheadBench(images, report.predict_seconds, report.embed_seconds, best,
                             best / report.predict_seconds, model, strategy)
