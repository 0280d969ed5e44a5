"""Strategy benchmark: label-efficiency of every selection strategy against random sampling.

Entry point: :func:`labelwise.benchmark.runner.run_benchmark` with a
:class:`~labelwise.benchmark.config.BenchmarkConfig` (see :func:`~labelwise.benchmark.config.preset`).
Nothing heavy is imported here.
"""

from labelwise.benchmark.config import PRESETS, BenchmarkConfig, DataSpec, preset

__all__ = ["PRESETS", "BenchmarkConfig", "DataSpec", "preset"]
