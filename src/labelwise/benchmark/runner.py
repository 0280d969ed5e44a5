"""The library entry point: :func:`run_benchmark` (the CLI command and the Prefect flow call it).

Scheduling: a process pool of ``workers`` processes, each pinned to ``threads`` torch threads
(one ultralytics training uses about one core, so two trajectories train side by side on two
cores). The warm-start base model is trained as the first pool job; warm trajectories become
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

from labelwise.benchmark.ceiling import Ceiling, CeilingJob, train_ceiling
from labelwise.benchmark.config import BASELINE, BenchmarkConfig
from labelwise.benchmark.data import PreparedData, base_weights_path, prepare_data, train_base
from labelwise.benchmark.oracle import scan_labels
from labelwise.benchmark.outputs import CSV_NAME, MlflowLog, plot_curves, write_csv, write_summary
from labelwise.benchmark.plan import Job, plan_jobs
from labelwise.benchmark.shutdown import stop_workers_on_exit, worker_dies_with_parent
from labelwise.benchmark.summary import UNITS, SummaryRow, summarise, text_table

CEILINGS_NAME = "ceilings.json"

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
    worker_dies_with_parent()  # SIGTERM when the main process dies, even by SIGKILL
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


def _ceiling(cfg: BenchmarkConfig, data: PreparedData, job: CeilingJob) -> Ceiling:
    return train_ceiling(cfg, data, job)


def prepare_base(cfg: BenchmarkConfig, log: Log = print) -> str:
    """Train (or reuse from the cache) only the warm-start base model; returns its .pt path.

    Runs in a worker process like every training of the benchmark (one torch thread, offline
    ultralytics, output in ``out/logs``).
    """
    cfg.out.mkdir(parents=True, exist_ok=True)
    logs = cfg.out / "logs"
    logs.mkdir(exist_ok=True)
    data = prepare_data(cfg)
    if cfg.base_weights is None and base_weights_path(cfg).is_file():
        log(f"base {cfg.task} model cached: {base_weights_path(cfg)}")
        return str(base_weights_path(cfg))
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(cfg.out / "ultralytics"), cfg.threads, str(logs))) as pool:
        with stop_workers_on_exit(pool):
            path = pool.submit(_base, cfg, data.class_names).result()
    log(f"base {cfg.task} model ready in {time.perf_counter() - started:.0f} s: {path}")
    return path


def ceiling_jobs(cfg: BenchmarkConfig, refs: dict[str, str]) -> list[CeilingJob]:
    """One ceiling per protocol and seed (none when ``cfg.ceiling`` is off)."""
    if not cfg.ceiling:
        return []
    return [CeilingJob(p, seed, refs[p]) for seed in cfg.seed_list for p in cfg.protocols
            if seed in cfg.seeds_for(p)]


def mean_ceilings(ceilings: list[Ceiling]) -> dict[str, float]:
    """protocol -> mean ceiling (the curve metric) over the seeds measured."""
    by: dict[str, list[float]] = {}
    for c in ceilings:
        by.setdefault(c.protocol, []).append(c.value)
    return {p: sum(v) / len(v) for p, v in by.items()}


def _start_refs(cfg: BenchmarkConfig) -> dict[str, str]:
    refs = {"scratch": cfg.model}
    if "warm" in cfg.protocols:
        refs["warm"] = str(Path(cfg.base_weights).resolve()) if cfg.base_weights else str(base_weights_path(cfg))
    return refs


def run_benchmark(cfg: BenchmarkConfig, log: Log = print) -> BenchmarkResult:
    """Run every trajectory (and ceiling) of ``cfg``; write the CSV, plots, summary, MLflow runs."""
    started = time.perf_counter()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(__import__("json").dumps(cfg.as_dict(), indent=1), encoding="utf-8")
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    data = prepare_data(cfg)
    log(f"data: {len(data.pool_paths)} pool images, classes {list(data.class_names)}, "
        f"rare {list(data.rare_classes)}, test split {data.test_dir}")
    log(scan_labels(data.oracle(), [p.stem for p in data.pool_paths]).describe())
    refs = _start_refs(cfg)
    jobs = [j for j in plan_jobs(cfg.protocols, cfg.strategies, cfg.seed_list, len(data.pool_paths),
                                 cfg.initial, refs, out / "jobs", cfg.pseudo_strategies)
            if j.seed in cfg.seeds_for(j.protocol) and (not j.pseudo or j.protocol in cfg.pseudo_protocols)]
    # Each seed's ceilings follow its trajectories, so a run cut short still has whole seeds.
    work: list[Job | CeilingJob] = []
    ceilings_todo = ceiling_jobs(cfg, refs)
    for seed in cfg.seed_list:
        work += [j for j in jobs if j.seed == seed] + [c for c in ceilings_todo if c.seed == seed]
    tracker = MlflowLog(out, cfg.preset, {k: v for k, v in cfg.as_dict().items() if k not in ("data", "extra")})
    state = _RunState(rows=[], ceilings=[], failed={})
    base_ready = "warm" not in cfg.protocols
    pending = list(work)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(out / "ultralytics"), cfg.threads, str(logs))) as pool:
        running: dict[Future, Job | CeilingJob | str] = {}
        # Ctrl-C / SIGTERM / an error: stop the trainings too (they would run on, orphaned).
        with stop_workers_on_exit(pool):
            if not base_ready:
                running[pool.submit(_base, cfg, data.class_names)] = "base"
            _drive(cfg, data, len(jobs), pending, running, pool, state, tracker, started, log, base_ready)
    return finish(cfg, state.rows, data.class_names, started, state.failed, tracker.tracking_uri, log,
                  ceilings=state.ceilings, clusters_known=bool(data.cluster_of))


@dataclass
class _RunState:
    """What the finished jobs have produced so far (owned by the driving loop)."""

    rows: list[dict[str, Any]]
    ceilings: list[Ceiling]
    failed: dict[str, str]


def _drive(cfg: BenchmarkConfig, data: PreparedData, n_jobs: int, pending: list[Job | CeilingJob],
           running: dict[Future, Job | CeilingJob | str], pool: ProcessPoolExecutor, state: _RunState,
           tracker: MlflowLog, started: float, log: Log, base_ready: bool) -> None:
    """Keep ``workers`` jobs in flight (warm ones once the base exists) until all are done."""
    from labelwise.benchmark.trajectory import as_random_sprint

    curve = data.task.curve
    done_count = 0
    while pending or running:
        while pending and len(running) < cfg.workers:
            eligible = [j for j in pending if base_ready or j.protocol != "warm"]
            if not eligible:
                break
            item = eligible[0]
            pending.remove(item)
            fut = (pool.submit(_ceiling, cfg, data, item) if isinstance(item, CeilingJob)
                   else pool.submit(_job, cfg, data, item))
            running[fut] = item
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for done in finished:
            job = running.pop(done)
            key = job if isinstance(job, str) else job.key
            elapsed = time.perf_counter() - started
            try:
                value = done.result()
            except Exception as exc:  # noqa: BLE001 - one failed trajectory must not end the run
                state.failed[key] = f"{type(exc).__name__}: {exc}"
                log(f"[{elapsed:7.0f}s] FAILED {key}: {state.failed[key]}")
                if key == "base":
                    pending[:] = [j for j in pending if j.protocol != "warm"]
                continue
            if isinstance(job, str):  # "base"
                base_ready = True
                log(f"[{elapsed:7.0f}s] base {cfg.task} model ready: {value}")
                continue
            if isinstance(job, CeilingJob):
                state.ceilings.append(value)
                log(f"[{elapsed:7.0f}s] {key}: {curve.label} {value.value:.3f} on all {value.images} pool images "
                    f"({value.epochs} epochs, {value.train_seconds:.0f} s)")
                _write_ceilings(cfg, state.ceilings)
                continue
            done_count += 1
            state.rows.extend(value)
            tracker.log_trajectory(key, value)
            if job.strategy == BASELINE and not job.pseudo:  # random_sprint: same images, by hand
                sprint = as_random_sprint(value)
                state.rows.extend(sprint)
                tracker.log_trajectory(f"{job.protocol}-random_sprint-seed{job.seed}", sprint)
            last = value[-1]
            log(f"[{elapsed:7.0f}s] {done_count}/{n_jobs} {key}: {curve.label} "
                + " ".join(f"{r[curve.column]:.3f}" for r in value) + f" at {last['labelled_images']} images, "
                f"{last['edits']} edits")
            write_csv(cfg.out / CSV_NAME, state.rows, data.class_names, cfg.preset)


def _write_ceilings(cfg: BenchmarkConfig, ceilings: list[Ceiling]) -> Path:
    import json

    path = cfg.out / CEILINGS_NAME
    path.write_text(json.dumps([c.as_dict() for c in ceilings], indent=1), encoding="utf-8")
    return path


def read_ceilings(path: Path) -> list[Ceiling]:
    """The ceilings a run wrote (``ceilings.json``); [] when the file does not exist."""
    import json

    if not Path(path).is_file():
        return []
    return [Ceiling.from_dict(c) for c in json.loads(Path(path).read_text(encoding="utf-8"))]


def finish(cfg: BenchmarkConfig, rows: list[dict[str, Any]], class_names: tuple[str, ...], started: float,
           failed: dict[str, str], mlflow_uri: str | None, log: Log = print,
           ceilings: list[Ceiling] | None = None, clusters_known: bool = True) -> BenchmarkResult:
    """Write the CSV, plots and summary from the rows (also used to re-summarise a CSV)."""
    from labelwise.benchmark.tasks import benchmark_task

    out = cfg.out
    task = benchmark_task(cfg.task)
    m = task.curve
    csv_path = write_csv(out / CSV_NAME, rows, class_names, cfg.preset)
    means = mean_ceilings(ceilings or [])
    if ceilings:
        _write_ceilings(cfg, ceilings)
    plots = [p for unit in UNITS for p in plot_curves(rows, out, unit, ceilings=means, metric=m)] if rows else []
    summary = summarise(rows, means, clusters_known, metric=m)
    st = cfg.product_settings()
    ceiling_text = (", ".join(f"{p} {v:.3f} (n={sum(c.protocol == p for c in ceilings or [])})"
                              for p, v in sorted(means.items())) or "not measured")
    header = (f"# Strategy benchmark ({cfg.preset} preset, {cfg.task})\n\n"
              f"protocols {', '.join(f'{p} ({len(cfg.seeds_for(p))} seeds)' for p in cfg.protocols)}, "
              f"{cfg.initial} initial + "
              f"{cfg.rounds} rounds x {cfg.per_round} images, {cfg.model} at {cfg.imgsz} px, the product's "
              f"recipe: epochs max({st.training.epochs}, ceil({st.training.min_image_passes} / images)), "
              f"batch {st.training.batch}, {st.training.optimizer} lr0 {st.training.lr0}, restarting from "
              f"the start model every round. Pre-annotations: rows at or above "
              f"{task.preannotation_floor(st)}. Ceiling (whole pool, mean {m.label}): {ceiling_text}. "
              f"Targets: random's final mean {m.label} and 90% of the ceiling. Ratio = labels needed / "
              f"random's labels (lower is better); random_sprint = random's images with no "
              f"pre-annotations (edits = boxes).")
    md, js = write_summary(out, summary, header, m)
    seconds = time.perf_counter() - started
    log(text_table(summary, m))
    log(f"wrote {csv_path}, {md}, {len(plots)} plots in {seconds:.0f} s")
    if failed:
        log(f"{len(failed)} job(s) failed: {sorted(failed)}")
        sys.stderr.flush()
    return BenchmarkResult(out, csv_path, plots, md, js, mlflow_uri, summary, seconds, failed)


def resummarise(csv_paths: list[Path], cfg: BenchmarkConfig, log: Log = print,
                ceilings: list[Ceiling] | None = None) -> BenchmarkResult:
    """Rebuild CSV, plots and summary in ``cfg.out`` from earlier results CSVs (merged).

    Later files win for a (protocol, strategy, seed, round) present in several. Ceilings: the
    given ones, else every ``ceilings.json`` beside the CSVs.
    """
    from labelwise.benchmark.outputs import read_csv

    merged: dict[tuple, dict[str, Any]] = {}
    names: tuple[str, ...] = ()
    for path in csv_paths:
        for row in read_csv(Path(path)):
            merged[(row["protocol"], row["strategy"], row["seed"], row["round"])] = row
            names = names or tuple(k.split("/", 1)[1] for k in row if k.startswith("boxes/"))
    if ceilings is None:
        found = {(c.protocol, c.seed): c for path in csv_paths
                 for c in read_ceilings(Path(path).parent / CEILINGS_NAME)}
        ceilings = list(found.values())
    cfg.out.mkdir(parents=True, exist_ok=True)
    return finish(cfg, list(merged.values()), names, time.perf_counter(), {}, None, log, ceilings=ceilings)
