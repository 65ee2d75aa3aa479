"""``nesy data video-trajectories``: a ``nesy data clevrer`` split's object states in one compact file.

Example::

    nesy data clevrer --n 600 --seed 15151 --split train --no-render --out data/dyn_train
    nesy data video-trajectories --data data/dyn_train --split train --counterfactuals --out data/dyn_train.npz
    nesy train video-dynamics --data data/dyn_train.npz --out runs/clevrer_propnet ...

Each video's states (observed and future frames) and, with ``--counterfactuals``,
those of each counterfactual re-run, with shape and material and the recorded
collision frames (:func:`physics.models.video_propnet.save_trajectory_pack`):
about 8 kB a video with its counterfactuals, against 0.7 MB of annotation and
truth JSON, so a training set travels to another machine.  Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.config_flags import count

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from physics.models.video_propnet import (
        load_video_split,
        save_trajectory_pack,
        video_trajectories,
    )
    pairs = load_video_split(args.data, args.split, limit=args.n)
    if args.n is not None and len(pairs) < args.n:  # as train video-dynamics says it
        print(f"note: --n {args.n} asked for {args.n} videos; {args.data} ({args.split}) holds {len(pairs)}: "
              f"writing {len(pairs)}", file=sys.stderr)
    trajs = [t for ann, truth in pairs for t in video_trajectories(ann, truth, args.counterfactuals, spin=args.spin)]
    save_trajectory_pack(args.out, trajs)
    print(json.dumps({"videos": len(pairs), "trajectories": len(trajs), "counterfactuals": args.counterfactuals, "spin": args.spin,
                      "frames": int(sum(t.num_steps for t in trajs)), "out": str(args.out),
                      "bytes": os.path.getsize(args.out)}, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub("data", "video-trajectories", help="a CLEVRER split's object states in one compact .npz",
                        description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder written by `nesy data clevrer` (annotations and truth)")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--n", type=count(min=1), default=None, help="the first N videos (default: all)")
    parser.add_argument("--counterfactuals", action="store_true",
                        help="add each video's counterfactual re-runs (one per object removed)")
    parser.add_argument("--spin", action="store_true",
                        help="give sliding spheres (by the truth's spin) the sliding input in their actions; a model "
                             "trained on it rolls out with RolloutConfig(spin_input=True), nesy eval clevrer --spin-input (off by default)")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.set_defaults(func=run)
