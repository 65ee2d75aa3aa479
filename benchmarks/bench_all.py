"""``nesy bench all``: every registered benchmark suite in one run, one results file and one report.

Each suite of :data:`benchmarks.suites.SUITES` runs as an independent job on
data it generates itself from its documented seed (``--quick`` settings or the
full ones), fanned out over ``workers`` processes (:mod:`physics.fanout`; Ray
with ``backend="ray"``); suites registered ``exclusive`` (the speed suite) run
afterwards, alone, so that their timings do not compete with other suites.  A suite that cannot run here (its ``available`` check
gives a reason) is listed as skipped with that reason; one that raises is listed
as failed with its error and the others still run.  Layout of ``OUT``::

    results.json              machine, command, settings and every suite's record
    report.html               one self-contained page: tables, plots and GIFs inlined
    report.md                 the same tables in Markdown, figures linked
    data/                     generated data sets, shared by the suites
    suites/<name>/result.json a finished suite's record (kept: a rerun resumes)
    suites/<name>/...         its figures

A finished suite's ``result.json`` is kept when the rerun asks for the same
settings, so an interrupted run resumes with the suites it had not finished.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.config_flags import comma_items
from benchmarks.suites import SUITES, Suite, SuiteContext
from physics.config_types import check_field_types
from physics.errors import ConfigError, NesyError
from physics.fanout import BACKENDS, make_fanout
from physics.io import atomic_write_json, atomic_write_text, ensure_dir, read_json

__all__ = ["BenchAllConfig", "run_bench_all", "machine_description", "select_suites"]

RESULT = "result.json"


@dataclass(frozen=True)
class BenchAllConfig:
    """What ``nesy bench all`` runs and where it writes."""

    out: str = field(metadata={"help": "output folder (results.json, report.html, report.md)"})
    quick: bool = field(default=False, metadata={"help": "small settings of every suite (minutes, not hours)"})
    workers: int = field(default=1, metadata={"min": 1, "help": "suites run in parallel (processes)"})
    suites: str | None = field(
        default=None, metadata={"help": "comma-separated suites to run (default: all registered; --list shows them)"}
    )
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads per suite"})
    backend: str = field(default="process", metadata={"help": "fan-out backend of the suites",
                                                      "choices": sorted(BACKENDS)})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")

    def command(self) -> str:
        """The command line that makes this run."""
        parts = ["nesy bench all", f"--out {self.out}"]
        if self.quick:
            parts.append("--quick")
        if self.workers != 1:
            parts.append(f"--workers {self.workers}")
        if self.suites:
            parts.append(f"--suites {self.suites}")
        if self.threads != 1:
            parts.append(f"--threads {self.threads}")
        return " ".join(parts)


def select_suites(names: str | None) -> list[Suite]:
    """The suites a comma-separated list names (all registered ones for ``None``), in registration order."""
    if not names:
        return [e.obj for e in SUITES.entries()]
    wanted = comma_items(names, "--suites")
    if not wanted:
        raise ConfigError(f"--suites: no suite named in {names!r}; choose from {', '.join(SUITES)}")
    for n in wanted:
        SUITES.get(n)  # unknown: ConfigError with the closest names
    return [e.obj for e in SUITES.entries() if e.name in wanted]


def machine_description() -> dict[str, Any]:
    """The machine the rates were measured on: CPU model, cores, memory, load, library versions."""
    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory": memory,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _kept(folder: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """A finished record of this suite with the same settings, or None."""
    path = folder / RESULT
    if not path.is_file():
        return None
    try:
        record = read_json(path, "suite record")
    except NesyError:  # a damaged record: the suite runs again
        return None
    if isinstance(record, dict) and record.get("status") == "ok" and record.get("params") == params:
        return record
    return None


def _run_job(job: tuple[str, dict[str, Any], str, str, bool, int, str]) -> dict[str, Any]:
    """Worker entry point: run one suite, write its record when it succeeded, return the record."""
    name, params, folder, data, quick, threads, command = job
    suite = SUITES.get(name)
    out = ensure_dir(Path(folder))
    t0 = time.perf_counter()
    record: dict[str, Any] = {"suite": name, "group": suite.group, "help": suite.help, "params": params}
    try:
        result = suite.run(SuiteContext(name, dict(params), out, Path(data), quick, threads, command))
        record |= {"status": "ok", "seconds": round(time.perf_counter() - t0, 1), "result": result}
        atomic_write_json(out / RESULT, record, indent=1)
    except Exception as exc:  # one failing suite is reported; the others run on
        first = (str(exc).strip().splitlines() or [""])[0]
        record |= {"status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                   "error": f"{type(exc).__name__}: {first}"}
        atomic_write_text(out / "error.txt", traceback.format_exc())
    return record


def run_bench_all(config: BenchAllConfig, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the suites, write ``results.json`` and the report; returns the results dict."""
    from benchmarks.report import write_report

    t0 = time.perf_counter()
    suites = select_suites(config.suites)  # a bad --suites leaves no folder behind
    out = ensure_dir(Path(config.out))
    records: dict[str, dict[str, Any]] = {}
    jobs = []
    for suite in suites:
        params = suite.params(config.quick)
        reason = suite.unavailable_reason()
        base = {"suite": suite.name, "group": suite.group, "help": suite.help, "params": params}
        if reason is not None:
            records[suite.name] = base | {"status": "skipped", "reason": reason}
            say(f"{suite.name}: skipped: {reason}")
            continue
        folder = out / "suites" / suite.name
        kept = _kept(folder, params)
        if kept is not None:
            records[suite.name] = kept | {"kept": True}
            say(f"{suite.name}: kept from an earlier run ({kept['seconds']} s then)")
            continue
        jobs.append((suite.name, params, str(folder), str(out / "data"), config.quick, config.threads,
                     config.command()))
    results: dict[str, Any] = {
        "command": config.command(),
        "quick": config.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": machine_description(),
        "workers": config.workers,
        "threads_per_suite": config.threads,
        "suites": records,
    }
    shared = [j for j in jobs if not SUITES.get(j[0]).exclusive]
    alone = [j for j in jobs if SUITES.get(j[0]).exclusive]
    if jobs:
        workers = max(1, min(config.workers, len(shared)))
        say(f"running {len(jobs)} suite(s): " + ", ".join(j[0] for j in shared)
            + (f" on {workers} worker(s)" if shared else "")
            + (f"; then alone: {', '.join(j[0] for j in alone)}" if alone else ""))
    finished = 0
    for batch, backend, workers in ((shared, config.backend, min(config.workers, len(shared))),
                                    (alone, "serial", 1)):
        if not batch:
            continue
        for record in make_fanout(backend, max(1, workers)).imap(_run_job, batch):
            finished += 1
            records[record["suite"]] = record
            detail = "ok" if record["status"] == "ok" else f"FAILED: {record['error']}"
            say(f"[{finished}/{len(jobs)}] {record['suite']}: {detail} ({record['seconds']} s)")
            atomic_write_json(out / "results.json", results, indent=1)  # progress so far
    results["suites"] = {s.name: records[s.name] for s in suites}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "results.json", results, indent=1)
    html, md = write_report(results, out)
    counts = {status: sum(r["status"] == status for r in records.values()) for status in ("ok", "skipped", "failed")}
    say(f"{counts['ok']} suite(s) ok, {counts['skipped']} skipped, {counts['failed']} failed in {results['seconds']} s")
    say(f"results -> {out / 'results.json'}; report -> {html} and {md}")
    return results
