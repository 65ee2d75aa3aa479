"""The perception-model benchmarks as one suite: run one by name, or all, and their table.

The benchmarks themselves are registered next to their models in
:data:`perception.benchmark.PERCEPTION_BENCHES`; those whose check needs the
reasoning layer (selective prediction's NS-VQA abstention) register from
there, so this module imports them before any lookup (:data:`ABOVE_PERCEPTION`).
``nesy bench perception`` and ``nesy bench all`` call :func:`run_perception_bench`.

>>> "tsm" in perception_bench_names()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.table import format_table
from perception.benchmark import PERCEPTION_BENCHES, PerceptionBench, run_bench

__all__ = ["ABOVE_PERCEPTION", "run_perception_bench", "perception_bench_names", "perception_benches",
           "results_table", "TABLE_HEADER"]

ABOVE_PERCEPTION = ("reasoning.selective",)  # modules above perception that register benchmarks
TABLE_HEADER = ("model", "check", "ours", "ablation", "threshold", "result", "train min")


def _load() -> None:
    for module in ABOVE_PERCEPTION:
        importlib.import_module(module)


def perception_benches() -> list[PerceptionBench]:
    """Every registered perception benchmark, in registration order."""
    _load()
    return [PERCEPTION_BENCHES.get(name) for name in PERCEPTION_BENCHES.names()]


def perception_bench_names() -> list[str]:
    """Names of the registered perception benchmarks."""
    return [b.name for b in perception_benches()]


def run_perception_bench(name: str, quick: bool = False, seed: int = 0,
                         options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate perception benchmark ``name`` from ``seed`` (see :mod:`perception.benchmark`).

    ``options``: settings of the entry's registered options (``--set``; :func:`perception.benchmark.bench_options`).

    Returns:
        The JSON-ready result: per check the figures, the threshold and ``passed``,
        and ``passed`` for the whole entry.

    Raises:
        ConfigError: unknown name (lists the registered ones), or a refused option.
    """
    _load()
    return run_bench(name, quick, seed, options)


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per check of each result: model, check, ours, ablation, threshold, pass/fail, training minutes."""
    rows = []
    for r in results:
        for k, c in enumerate(r["checks"]):
            rows.append([r["model"] if k == 0 else "", c["name"], c["ours"], c["ablation"], c["threshold"],
                         "pass" if c["passed"] else "FAIL", r["train_minutes"] if k == 0 else ""])
    return format_table(rows, TABLE_HEADER)
