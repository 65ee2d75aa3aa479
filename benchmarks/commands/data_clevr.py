"""``nesy data clevr``: render a CLEVR-style split with masks, scenes and questions.

Example::

    nesy data clevr --n 1000 --seed 0 --out data/clevr --split train --workers 2
    nesy data clevr --n 500 --out data/cogent --split val --cogent B --templates ../shared/data/clevr/templates
    nesy data clevr --n 6 --out /tmp/clevr_samples --grid docs/images/clevr_samples.png
    nesy data clevr --n 20 --out data/clevr_blender --renderer blender --samples 64 \
        --assets ../shared/data/clevr/blender        # Cycles with the official CLEVR assets
    nesy data clevr --n 4 --seed 3 --out /tmp/clevr_blender --renderer blender --assets ../shared/data/clevr/blender \
        --grid docs/images/clevr_pybullet_vs_blender.png --grid-beside /tmp/clevr_pybullet   # same seed, both looks
    nesy data clevr --n 100000 --out /shared/clevr --backend ray --address auto --workers 64   # a Ray cluster

Writes ``OUT/images/``, ``OUT/masks/``, ``OUT/CLEVR_<split>_scenes.json`` and
``OUT/CLEVR_<split>_questions.json`` and prints a JSON summary.  Rerunning the
same command resumes an interrupted run; the output is byte-identical whatever
``--workers`` and ``--backend`` are (docs/results/scale.md: running on a Ray cluster).
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args, count
from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from benchmarks.datasets.clevr_grid import save_sample_grid
from physics.io import check_writable

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(ClevrDataConfig, args)
    if args.grid:
        check_writable(args.grid)  # before the renders: a figure it cannot write is named first
    summary = build_clevr(cfg, progress=not args.quiet)
    if args.grid:
        figure = save_sample_grid(cfg.out, cfg.split, args.grid, count=args.grid_count, beside=args.grid_beside)
        summary["grid"] = {"path": args.grid, **figure}
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "clevr",
        help="CLEVR-style renders with instance masks, scene JSON and template questions",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, ClevrDataConfig)
    parser.add_argument("--grid", metavar="PNG", help="also write a figure of sample renders and their masks")
    parser.add_argument("--grid-count", type=count(min=1), default=6, help="images in the --grid figure (default: 6)")
    parser.add_argument(
        "--grid-beside",
        metavar="FOLDER",
        help="in the --grid figure, show first the same image from FOLDER, another build of the same seed "
        "and split (e.g. the pybullet render beside the Blender one)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
