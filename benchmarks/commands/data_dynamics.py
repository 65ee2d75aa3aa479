"""``nesy data dynamics``: generate a split of PropNet-style rollouts (cradle, rope, boxes).

Example::

    nesy data dynamics --world rope --n 200 --seed 0 --out data/rope --split train --workers 2
    nesy data dynamics --world boxes --n 20 --out data/boxes --set num_boxes=15 --set observed_fraction=0.5

Writes ``OUT/<split>/traj_<k:05d>.npz`` and ``OUT/<split>/index.json`` and prints a
JSON summary.  Rerunning the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.datasets.dynamics_builder import DynamicsDataConfig, build_dynamics_split
from physics.errors import ConfigError

__all__ = ["register", "run", "parse_overrides"]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["num_boxes=15", "lift_angle_deg=[10,20]"]`` -> ``{"num_boxes": 15, ...}`` (values as JSON, else text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (a world config field), got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.strip().replace("-", "_")] = value
    return out


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DynamicsDataConfig, args)
    summary = build_dynamics_split(cfg, parse_overrides(args.set), progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "dynamics",
        help="PropNet worlds (cradle, rope, boxes) as trajectory .npz files",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, DynamicsDataConfig)
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="change a world config field from its preset (repeatable), e.g. --set num_boxes=15",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
