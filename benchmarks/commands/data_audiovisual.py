"""``nesy data audiovisual``: audio-visual clips with frames, masks, per-source WAVs and truth.

Example::

    nesy data audiovisual --n 100 --seed 0 --out data/av --workers 2
    nesy data audiovisual --n 20 --seed 1 --same-category --out data/av_same

Writes one folder per clip (see :mod:`benchmarks.datasets.audiovisual_builder`)
and prints a JSON summary.  Rerunning the same command resumes an interrupted
run; the output is byte-identical whatever ``--workers`` is.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.datasets.audiovisual_builder import AudioVisualDataConfig, build_audiovisual

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    summary = build_audiovisual(config_from_args(AudioVisualDataConfig, args), progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "audiovisual",
        help="audio-visual clips: frames, masks, per-source WAVs (instruments, impacts), mixture and truth",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, AudioVisualDataConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
