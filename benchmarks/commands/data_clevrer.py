"""``nesy data clevrer``: render CLEVRER-style collision videos with masks, annotations and truth.

Example::

    nesy data clevrer --n 100 --seed 0 --split train --out data/clevrer --workers 2
    nesy data clevrer --n 2 --frames 8 --width 96 --height 64 --out /tmp/clevrer_tiny

Writes the official CLEVRER annotation per video, a truth file (events,
future frames, counterfactuals), PNG frames, mask PNGs and a GIF per video (see
:mod:`benchmarks.datasets.clevrer_builder`), and prints a JSON summary.
Rerunning the same command resumes an interrupted run; the output is
byte-identical whatever ``--workers`` is.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.datasets.clevrer_builder import ClevrerDataConfig, build_clevrer

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    summary = build_clevrer(config_from_args(ClevrerDataConfig, args), progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "clevrer",
        help="CLEVRER-style collision videos with masks, official annotations and counterfactual truth",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, ClevrerDataConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
