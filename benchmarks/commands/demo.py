"""``nesy demo``: the framework end to end on data it generates (see :mod:`benchmarks.demo`)."""

from __future__ import annotations

import argparse

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.demo import DemoConfig, run_demo

__all__ = ["register"]


def run(args: argparse.Namespace) -> int:
    run_demo(config_from_args(DemoConfig, args))
    return 0


def register(groups) -> None:
    parser = groups.command(
        "demo",
        help="build a scene, ask and answer questions, and roll out learned physics",
        description="Run nesy-physics end to end on data generated on the spot: a pybullet CLEVR "
        "scene, template questions, symbolic execution with traces, NS-VQA from pixels and a "
        "learned-simulator rollout when their checkpoints ship.",
    )
    add_config_flags(parser, DemoConfig)
    parser.set_defaults(func=run)
