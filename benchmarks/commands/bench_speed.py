"""``nesy bench speed``: run a speed suite and print its JSON result.

Example::

    nesy bench speed --suite executor --questions 100000 --scenes 1000 --out speed.json

Suites are looked up in :data:`benchmarks.speed.SUITES`; another suite is one
function and one line there.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.speed import SUITES, TABLES, SpeedConfig
from physics.errors import ConfigError
from physics.io import atomic_write_json

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(SpeedConfig, args)
    suite = SUITES.get(config.suite)
    if suite is None:
        raise ConfigError(f"unknown speed suite {config.suite!r}; suites: {', '.join(sorted(SUITES))}")
    result = suite(config)
    if config.out:
        atomic_write_json(config.out, result, indent=1)
    print(json.dumps(result, indent=1))
    if config.suite in TABLES:  # the headline figures, for people (stdout stays JSON)
        print(TABLES[config.suite](result), file=sys.stderr)
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "speed",
        help="speed suites (questions/s of the executor, ...) as JSON",
        description="Run a speed suite and print its measured rates and machine information as JSON. "
        f"Suites: {', '.join(sorted(SUITES))}.",
    )
    add_config_flags(parser, SpeedConfig)
    parser.set_defaults(func=run)
