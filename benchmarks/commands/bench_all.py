"""``nesy bench all``: every registered benchmark suite, one results file and one report.

Example::

    nesy bench all --out out/bench --quick --workers 2     # minutes; report.html and report.md in out/bench
    nesy bench all --out out/bench_full --workers 2        # the full settings (hours on two cores)
    nesy bench all --list                                  # the registered suites and whether they can run

Rerunning the same command keeps the suites that finished and runs the rest
(see :mod:`benchmarks.bench_all`).
"""

from __future__ import annotations

import argparse

from benchmarks.bench_all import BenchAllConfig, run_bench_all
from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.table import print_table
from physics.errors import ConfigError

__all__ = ["register", "run"]


def _list() -> int:
    from benchmarks.suites import SUITES

    rows = []
    for entry in SUITES.entries():
        reason = entry.obj.unavailable_reason()
        rows.append([entry.name, entry.obj.group, "yes" if reason is None else f"no: {reason}", entry.help])
    print_table(rows, ["suite", "group", "runs here", "what it measures"])
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not args.out:
        raise ConfigError("--out DIR is required (the folder for results.json, report.html and report.md)")
    results = run_bench_all(config_from_args(BenchAllConfig, args))
    rows = []
    for name, record in results["suites"].items():
        status = record["status"]
        detail = record.get("reason") or record.get("error") or f"{record['seconds']} s"
        rows.append([name, status, detail])
    print_table(rows, ["suite", "status", "detail"], title="nesy bench all")
    return 1 if any(r["status"] == "failed" for r in results["suites"].values()) else 0


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "all",
        help="every registered benchmark suite on fresh held-out data; results.json, report.html, report.md",
        description="Run every registered benchmark suite (CLEVR QA per model, dynamics per world, control "
        "per task, speed, and any suite registered with benchmarks.suites.register_suite) on data generated "
        "from documented seeds, fanned out over --workers; write OUT/results.json, a self-contained "
        "OUT/report.html and OUT/report.md. Suites that cannot run here are listed as skipped with the "
        "reason; rerunning resumes. Exit status 1 when a suite failed.",
    )
    parser.add_argument("--out", default=None, help="output folder (results.json, report.html, report.md)")
    add_config_flags(parser, BenchAllConfig, skip=("out",))
    parser.add_argument("--list", action="store_true", help="list the registered suites and exit")
    parser.set_defaults(func=run)
