"""Per-job timeline of ``nesy eval clevr`` with N workers (process backend), for docs/results/scale.md.

Run from the repository root::

    PYTHONPATH=$PWD python docs/results/scale_timeline.py DATA WORKERS [SPLIT] [LIMIT]

Every job (perceive one image, parse a chunk) and every worker's model loading is
logged with its start and end (wall seconds from the start of the evaluation) and
its thread CPU seconds, one file per process (forked workers inherit the hooks);
printed per process: jobs, busy time, CPU, mean CPU per perception job.  CPU
seconds stay meaningful on a machine shared with other jobs, wall seconds do not.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import benchmarks.eval_clevr as E


def main() -> None:
    data, workers = sys.argv[1], int(sys.argv[2])
    split = sys.argv[3] if len(sys.argv) > 3 else "val"
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    logs = Path(tempfile.mkdtemp(prefix="nesy-timeline-"))
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    run_job, setup = E._run_job, E._worker_setup

    def log(line: str) -> None:
        with open(logs / f"{os.getpid()}.txt", "a") as fh:
            fh.write(line + "\n")

    def timed_job(model, job):
        a, c = time.perf_counter(), time.thread_time()
        out = run_job(model, job)
        log(f"job {job[0]} {a - t0:.4f} {time.perf_counter() - t0:.4f} {time.thread_time() - c:.4f}")
        return out

    def timed_setup(spec):
        fresh = spec[:2] not in E._WORKER_MODELS
        a, c = time.perf_counter(), time.thread_time()
        out = setup(spec)
        if fresh:
            log(f"setup - {a - t0:.4f} {time.perf_counter() - t0:.4f} {time.thread_time() - c:.4f}")
        return out

    E._run_job, E._worker_setup = timed_job, timed_setup
    config = E.ClevrEvalConfig(data=data, split=split, threads=1, workers=workers, limit=limit)
    result = E.evaluate_clevr(config, progress=False)
    end = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"workers {workers}: seconds {result['seconds']}, accuracy {result['accuracy']['overall']:.4f}; CPU s: "
          f"this process {time.process_time() - c0:.2f} (its main thread {time.thread_time() - m0:.2f}), "
          f"workers {kids.ru_utime + kids.ru_stime:.2f}; load {os.getloadavg()[0]:.1f}")
    for path in sorted(logs.glob("*.txt")):
        rows = [line.split() for line in path.read_text().splitlines()]
        jobs = [r for r in rows if r[0] == "job"]
        setups = [r for r in rows if r[0] == "setup"]
        who = "driver" if int(path.stem) == os.getpid() else "worker"
        model = f"model {float(setups[0][2]):.2f}-{float(setups[0][3]):.2f} s" if setups else "model given"
        if not jobs:
            print(f"  {who}: {model}, no jobs")
            continue
        perceive = [float(r[4]) for r in jobs if r[1] == "perceive"]
        print(f"  {who}: {model}; {len(jobs)} jobs ({len(jobs) - len(perceive)} parse) "
              f"{min(float(r[2]) for r in jobs):.2f}-{max(float(r[3]) for r in jobs):.2f} s, "
              f"busy {sum(float(r[3]) - float(r[2]) for r in jobs):.2f} s, CPU {sum(float(r[4]) for r in jobs):.2f} s"
              + (f", {1e3 * sum(perceive) / len(perceive):.1f} ms CPU per image" if perceive else ""))
        path.unlink()
    logs.rmdir()
    print(f"  end {end:.2f} s")


if __name__ == "__main__":
    main()
