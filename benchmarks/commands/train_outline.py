"""``nesy train outline``: the outline shape reader of ``derender-blender-outline`` on generated scenes.

Example::

    nesy data clevr --n 2500 --seed 47459 --split train --questions-per-scene 0 --min-objects 6 --out data/pb
    nesy train outline --data data/pb --out runs/outline --perceiver derender-blender

Writes ``OUT/outline_train.pt`` (resumable after every epoch), ``OUT/metrics.jsonl`` (one
line per epoch), ``OUT/outline.pt`` (the network, loadable with
``perception.derender.outline.load_outline``) and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args
from perception.derender.outline_training import (
    OutlineTrainConfig,
    outline_command_line,
    train_outline,
)

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(OutlineTrainConfig, args)
    summary = train_outline(cfg, command=outline_command_line(cfg), progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub("train", "outline", help="outline shape reader (silhouettes of proposal masks)",
                        description=__doc__.split("\n\n")[0])
    add_config_flags(parser, OutlineTrainConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
