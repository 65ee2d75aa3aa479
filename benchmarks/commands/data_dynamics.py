"""``nesy data dynamics``: generate a split of rollouts of a registered dynamics world.

Example::

    nesy data dynamics --world rope --n 200 --seed 0 --out data/rope --split train --workers 2
    nesy data dynamics --world boxes --n 20 --out data/boxes --set num_boxes=15 --set observed_fraction=0.5
    nesy data dynamics --world cradle --n 10 --out data/cradle --gif cradle.gif

Writes ``OUT/<split>/traj_<k:05d>.npz`` and ``OUT/<split>/index.json`` and prints a
JSON summary.  Rerunning the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.datasets.dynamics_builder import DynamicsDataConfig, build_dynamics_split
from physics.io import check_writable
from physics.settings import json_value, parse_settings

__all__ = ["register", "run", "write_preview_gif"]


def write_preview_gif(cfg: DynamicsDataConfig, overrides: dict[str, Any], path: str) -> str:
    """Render trajectory 0 of the split (re-simulated from its seed) as a GIF."""
    import imageio.v2 as imageio

    from physics.io import atomic_write_bytes
    from physics.worlds.dynamics import make_world, trajectory_seed

    settings = dict(overrides)
    if cfg.steps is not None:
        settings["steps"] = cfg.steps
    with make_world(cfg.world, **settings) as world:
        frames = world.render_rollout(trajectory_seed(cfg.seed, cfg.split, 0), width=240, height=180)
        fps = 1.0 / (2 * world.dt)  # one frame every 2 recorded steps, in real time
    buf = io.BytesIO()
    imageio.mimwrite(buf, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DynamicsDataConfig, args)
    overrides = parse_settings(args.set, keys="a world config field", value=json_value)
    if args.gif:
        check_writable(args.gif)  # before the trajectories: a GIF it cannot write is named first
    summary = build_dynamics_split(cfg, overrides, progress=not args.quiet)
    if args.gif:
        summary["gif"] = write_preview_gif(cfg, overrides, args.gif)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "dynamics",
        help="rollouts of a dynamics world as trajectory .npz files",
        description="Generate one split of rollouts of a dynamics world (--world lists the registered "
        "ones) as Trajectory .npz files plus index.json; rerunning the same command resumes.",
    )
    add_config_flags(parser, DynamicsDataConfig)
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="change a world config field from its preset (repeatable), e.g. --set num_boxes=15",
    )
    parser.add_argument("--gif", metavar="PATH", help="also write a GIF of trajectory 0 (TinyRenderer)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
