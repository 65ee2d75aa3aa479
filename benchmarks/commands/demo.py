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
        help="the framework end to end on fresh data, as one HTML page (demo_out/index.html)",
        description="Run nesy-physics end to end on data generated on the spot and write one page, "
        "OUT/index.html: a pybullet CLEVR scene, template questions with programs and execution traces, "
        "NS-VQA from pixels, a CLEVRER-style collision video and its events, the learned simulators "
        "rolled out beside the true Newton's cradle, and a control episode. Sections whose "
        "checkpoints or packages are missing are left out and listed at the end of the page.",
    )
    add_config_flags(parser, DemoConfig)
    parser.set_defaults(func=run)
