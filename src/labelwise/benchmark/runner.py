"""The library entry point: :func:`run_benchmark` (the CLI command and the Prefect flow call it).

Scheduling: a process pool of ``workers`` processes, each pinned to ``threads`` torch threads
(one ultralytics training uses about one core, so two trajectories train side by side on two
cores). The warm-start base detector is trained as the first pool job; warm trajectories become
eligible once it exists, scratch trajectories run meanwhile. Jobs are started seed-major so a run
cut short still holds complete seeds. Results stream into MLflow as each trajectory finishes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelwise.benchmark.config import BenchmarkConfig
from labelwise.benchmark.data import PreparedData, base_weights_path, prepare_data, train_base
from labelwise.benchmark.outputs import CSV_NAME, MlflowLog, plot_curves, write_csv, write_summary
from labelwise.benchmark.plan import Job, plan_jobs
from labelwise.benchmark.summary import SummaryRow, summarise, text_table

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchmarkResult:
    """Where the outputs went, and the summary rows."""

    out: Path
    csv: Path
    plots: list[Path]
    summary_md: Path
    summary_json: Path
    mlflow_uri: str | None
    summary: list[SummaryRow]
    seconds: float
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "csv": str(self.csv), "plots": [str(p) for p in self.plots],
                "summary_md": str(self.summary_md), "summary_json": str(self.summary_json),
                "mlflow_uri": self.mlflow_uri, "seconds": round(self.seconds, 1),
                "summary": [r.as_dict() for r in self.summary], "failed": self.failed}


def _init_worker(config_dir: str, threads: int, log_dir: str) -> None:
    """Worker process setup: output to its own log file, ultralytics offline on ``threads``."""
    log = Path(log_dir) / f"worker-{os.getpid()}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from labelwise.ultralytics_env import prepare_ultralytics

    prepare_ultralytics(Path(config_dir), threads=threads)


def _job(cfg: BenchmarkConfig, data: PreparedData, job: Job) -> list[dict[str, Any]]:
    from labelwise.benchmark.trajectory import run_trajectory

    return run_trajectory(cfg, data, job)


def _base(cfg: BenchmarkConfig, names: tuple[str, ...]) -> str:
    return train_base(cfg, names)


def _start_refs(cfg: BenchmarkConfig) -> dict[str, str]:
    refs = {"scratch": cfg.model}
    if "warm" in cfg.protocols:
        refs["warm"] = str(Path(cfg.base_weights).resolve()) if cfg.base_weights else str(base_weights_path(cfg))
    return refs


def run_benchmark(cfg: BenchmarkConfig, log: Log = print) -> BenchmarkResult:
    """Run every trajectory of ``cfg`` and write the CSV, plots, summary and MLflow runs."""
    started = time.perf_counter()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(__import__("json").dumps(cfg.as_dict(), indent=1), encoding="utf-8")
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    data = prepare_data(cfg)
    log(f"data: {len(data.pool_paths)} pool images, classes {list(data.class_names)}, "
        f"rare {list(data.rare_classes)}, test split {data.test_dir}")
    jobs = plan_jobs(cfg.protocols, cfg.strategies, cfg.seed_list, len(data.pool_paths), cfg.initial,
                     _start_refs(cfg), out / "jobs")
    tracker = MlflowLog(out, cfg.preset, {k: v for k, v in cfg.as_dict().items() if k not in ("data", "extra")})
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    base_ready = "warm" not in cfg.protocols
    pending = list(jobs)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(out / "ultralytics"), cfg.threads, str(logs))) as pool:
        running: dict[Future, str] = {}
        if not base_ready:
            running[pool.submit(_base, cfg, data.class_names)] = "base"
        try:
            _drive(cfg, data, jobs, pending, running, pool, rows, failed, tracker, started, log, base_ready)
        except BaseException:
            # Ctrl-C / SIGTERM: stop the trainings too (workers would otherwise run on, orphaned).
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise
    return finish(cfg, rows, data.class_names, started, failed, tracker.tracking_uri, log)


def _drive(cfg: BenchmarkConfig, data: PreparedData, jobs: list[Job], pending: list[Job],
           running: dict[Future, str], pool: ProcessPoolExecutor, rows: list[dict[str, Any]],
           failed: dict[str, str], tracker: MlflowLog, started: float, log: Log, base_ready: bool) -> None:
    """Keep ``workers`` jobs in flight (warm ones once the base exists) until all are done."""
    done_count = 0
    while pending or running:
        while pending and len(running) < cfg.workers:
            eligible = [j for j in pending if base_ready or j.protocol != "warm"]
            if not eligible:
                break
            job = eligible[0]
            pending.remove(job)
            running[pool.submit(_job, cfg, data, job)] = job.key
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in finished:
            key = running.pop(fut)
            elapsed = time.perf_counter() - started
            try:
                value = fut.result()
            except Exception as exc:  # noqa: BLE001 - one failed trajectory must not end the run
                failed[key] = f"{type(exc).__name__}: {exc}"
                log(f"[{elapsed:7.0f}s] FAILED {key}: {failed[key]}")
                if key == "base":
                    pending[:] = [j for j in pending if j.protocol != "warm"]
                continue
            if key == "base":
                base_ready = True
                log(f"[{elapsed:7.0f}s] base detector ready: {value}")
                continue
            done_count += 1
            rows.extend(value)
            tracker.log_trajectory(key, value)
            last = value[-1]
            log(f"[{elapsed:7.0f}s] {done_count}/{len(jobs)} {key}: mAP50 "
                + " ".join(f"{r['map50']:.3f}" for r in value) + f" at {last['labelled_images']} images")
            write_csv(cfg.out / CSV_NAME, rows, data.class_names, cfg.preset)


def finish(cfg: BenchmarkConfig, rows: list[dict[str, Any]], class_names: tuple[str, ...], started: float,
           failed: dict[str, str], mlflow_uri: str | None, log: Log = print) -> BenchmarkResult:
    """Write the CSV, plots and summary from the rows (also used to re-summarise a CSV)."""
    out = cfg.out
    csv_path = write_csv(out / CSV_NAME, rows, class_names, cfg.preset)
    plots = plot_curves(rows, out, "images") + plot_curves(rows, out, "boxes") if rows else []
    summary = summarise(rows)
    header = (f"# Strategy benchmark ({cfg.preset} preset)\n\n"
              f"{cfg.seeds} seeds, protocols {', '.join(cfg.protocols)}, {cfg.initial} initial + "
              f"{cfg.rounds} rounds x {cfg.per_round} images, {cfg.model} at {cfg.imgsz} px, "
              f"epochs max({cfg.epochs}, ceil({cfg.min_image_passes} / images)). Target: random's final "
              f"mean mAP50 per protocol. Ratio = labels needed / random's labels (lower is better).")
    md, js = write_summary(out, summary, header)
    seconds = time.perf_counter() - started
    log(text_table(summary))
    log(f"wrote {csv_path}, {md}, {len(plots)} plots in {seconds:.0f} s")
    if failed:
        log(f"{len(failed)} job(s) failed: {sorted(failed)}")
        sys.stderr.flush()
    return BenchmarkResult(out, csv_path, plots, md, js, mlflow_uri, summary, seconds, failed)


def resummarise(csv_paths: list[Path], cfg: BenchmarkConfig, log: Log = print) -> BenchmarkResult:
    """Rebuild CSV, plots and summary in ``cfg.out`` from earlier results CSVs (merged).

    Later files win for a (protocol, strategy, seed, round) present in several.
    """
    from labelwise.benchmark.outputs import read_csv

    merged: dict[tuple, dict[str, Any]] = {}
    names: tuple[str, ...] = ()
    for path in csv_paths:
        for row in read_csv(Path(path)):
            merged[(row["protocol"], row["strategy"], row["seed"], row["round"])] = row
            names = names or tuple(k.split("/", 1)[1] for k in row if k.startswith("ap50/"))
    cfg.out.mkdir(parents=True, exist_ok=True)
    return finish(cfg, list(merged.values()), names, time.perf_counter(), {}, None, log)
