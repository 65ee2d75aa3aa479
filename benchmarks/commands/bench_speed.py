"""``nesy bench speed``: run a speed suite, print a summary and write its JSON result.

Example::

    nesy bench speed --suite executor --questions 100000 --scenes 1000 --out speed.json

Suites are looked up in :data:`benchmarks.speed.SUITES`; another suite is one
function and one line there.
"""

from __future__ import annotations

import argparse

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.speed import SUITES, TABLES, SpeedConfig
from benchmarks.table import print_table, scalar_rows
from physics.errors import ConfigError
from physics.io import atomic_write_json, check_writable

__all__ = ["register", "run"]

# left to the JSON file: machine details, per-stage timings and prose
SUMMARY_SKIP = ("suite", "machine", "included", "note", "seconds_wall", "seconds_cpu", "questions_per_second_cpu")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(SpeedConfig, args)
    suite = SUITES.get(config.suite)
    if suite is None:
        raise ConfigError(f"unknown speed suite {config.suite!r}; suites: {', '.join(sorted(SUITES))}")
    if config.out:
        check_writable(config.out)  # not after the timed runs
    result = suite(config)
    if config.out:
        atomic_write_json(config.out, result, indent=1)
    if config.suite in TABLES:  # the suite's own headline table
        print(TABLES[config.suite](result))
    else:
        print_table(scalar_rows(result, skip=SUMMARY_SKIP), title=f"speed suite {config.suite}")
    print(f"full result -> {config.out}" if config.out else "(--out FILE writes the full result as JSON)")
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "speed",
        help="speed suites (questions/s of the executor, ...) as JSON",
        description="Run a speed suite, print its measured rates as a table and write them with the "
        "machine's details as JSON to --out. "
        f"Suites: {', '.join(sorted(SUITES))}.",
    )
    add_config_flags(parser, SpeedConfig)
    parser.set_defaults(func=run)
