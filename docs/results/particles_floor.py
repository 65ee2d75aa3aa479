"""Where the resting fluid of recorded particle-world trajectories lies against the wall markers.

Run from the repository root, for docs/results/particles.md::

    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] [--offsets 0,0.5,1,1.5]
    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] --model MODEL.pt [--start 0,60]

DATA/SPLIT holds trajectories written by ``nesy data dynamics`` (default split
``train``).  For each marker offset k (grid cells: the markers that a recording
with ``wall_marker_offset`` k would carry, computed from the recorded markers
and the recording's own offset, since the markers do not change the simulated
fluid) the script prints, over the trajectories, the mean / min / max share of
the fluid that lies below the floor's marker line or outside a side wall's
marker line at the last frame (the fluid has landed in the tank; it still
sloshes), the share of the fluid's (particle, frame) pairs past the line over
the whole recording, and how far the farthest fluid particle of any frame lies
past the line (in grid cells; negative: inside).  Shares near 0 mean the
recordings never show fluid beyond the markers, so a model is never taught that
fluid past a marker line is where fluid belongs.

With ``--model`` it measures a learned simulator instead: it rolls the model out
(one CPU thread) from each recorded frame in ``--start`` to the end of every
trajectory and prints, every 10 predicted frames, the share of the fluid more
than half a grid cell past the recorded markers, averaged over the trajectories
(from frame 0 the fluid is still falling; from a late frame it has landed).
"""

from __future__ import annotations

import argparse

import numpy as np

from physics.errors import DataError
from physics.worlds.dynamics.splits import load_split


def fluid_beyond(traj, offset: float) -> tuple[float, float, float]:
    """(share of the fluid beyond the markers at the last frame, share over all frames,
    farthest overshoot in grid cells) with the markers at ``offset`` cells."""
    mats = list(traj.meta.get("materials", ()))
    if "fluid" not in mats or "wall" not in mats:
        raise DataError(f"{traj.meta.get('name', 'trajectory')}: not a particle-world recording with fluid and walls")
    cfg = traj.meta.get("config", {})
    dx = 1.0 / float(cfg.get("grid", 64))
    recorded = float(cfg.get("wall_marker_offset", 0.0))
    fluid = traj.node_attr[:, mats.index("fluid")] == 1
    wall = traj.node_attr[:, mats.index("wall")] == 1
    pos = np.asarray(traj.positions, np.float64)
    shift = (offset - recorded) * dx
    marks = pos[:, wall]  # [T, W, 2]; the tank is static, but read it per frame
    floor = marks[..., 1].min(1, keepdims=True) - shift
    left = marks[..., 0].min(1, keepdims=True) - shift
    right = marks[..., 0].max(1, keepdims=True) + shift
    p = pos[:, fluid]
    past = np.maximum(np.maximum(floor - p[..., 1], left - p[..., 0]), p[..., 0] - right)  # [T, F]
    return float((past[-1] > 0).mean()), float((past > 0).mean()), float(past.max() / dx)


def model_leak(model_path: str, trajs, starts: list[int]) -> None:
    """Print the share of the model's fluid past the markers along rollouts from each frame in ``starts``."""
    import torch

    from physics.models.resolver import load_model
    from physics.models.rollout import rollout
    from physics.trajectory import Trajectory

    torch.set_num_threads(1)
    model, _ = load_model(model_path)
    keys = ("positions", "node_attr", "instance", "edges", "edge_attr", "actions", "observed")
    for start in starts:
        shares = []
        for t in trajs:
            if not 0 <= start < len(t.positions) - 2:
                raise SystemExit(f"--start {start} is outside the {len(t.positions)} frames of {t.meta.get('name')}")
            arrays = {k: getattr(t, k) for k in keys}
            arrays["positions"], arrays["actions"] = t.positions[start:], t.actions[start:]
            pred = rollout(model, Trajectory.from_arrays(arrays, t.dt, t.meta))
            dx = 1.0 / float(t.meta.get("config", {}).get("grid", 64))
            mats = list(t.meta["materials"])
            wall = t.node_attr[:, mats.index("wall")] == 1
            fluid = t.node_attr[:, mats.index("fluid")] == 1
            marks = t.positions[start, wall]
            p = pred[:, fluid]
            below = marks[:, 1].min() - p[..., 1] > 0.5 * dx
            side = np.maximum(marks[:, 0].min() - p[..., 0], p[..., 0] - marks[:, 0].max()) > 0.5 * dx
            shares.append([(below | side).mean(1), below.mean(1), (side & ~below).mean(1)])
        mean = np.mean(shares, 0)  # [3, frames]
        cells = ", ".join(f"{k}: {mean[0, k]:.1%} ({mean[1, k]:.1%} / {mean[2, k]:.1%})" for k in range(0, mean.shape[1], 10))
        print(f"from frame {start}: fluid > 0.5 cell past the markers (below the floor / only beyond a side) "
              f"at predicted frame {cells}; last {mean[0, -1]:.1%} ({mean[1, -1]:.1%} / {mean[2, -1]:.1%})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("split", nargs="?", default="train")
    ap.add_argument("--offsets", default="0,0.5,1,1.5")
    ap.add_argument("--model", help="a trained simulator's model.pt: measure its rollouts instead")
    ap.add_argument("--start", default="0,60", help="recorded frames the model's rollouts start from")
    args = ap.parse_args(argv)
    if args.model:
        try:
            starts = [int(k) for k in args.start.split(",")]
        except ValueError:
            raise SystemExit(f"--start must be comma-separated frame numbers, got {args.start!r}") from None
        model_leak(args.model, load_split(args.data, args.split), starts)
        return
    try:
        offsets = [float(o) for o in args.offsets.split(",")]
    except ValueError:
        raise SystemExit(f"--offsets must be comma-separated numbers, got {args.offsets!r}") from None
    trajs = load_split(args.data, args.split)
    print(f"{args.data}/{args.split}: {len(trajs)} trajectories of {len(trajs[0].positions)} frames")
    print("marker offset (cells) | fluid past the markers at the last frame: mean / min / max "
          "| over all frames | farthest past the line (cells)")
    for off in offsets:
        res = np.array([fluid_beyond(t, off) for t in trajs])
        last, every, far = res[:, 0], res[:, 1], res[:, 2]
        print(f"{off:21.2f} | {last.mean():6.1%} / {last.min():6.1%} / {last.max():6.1%} "
              f"| {every.mean():6.2%} | {far.max():+.2f}")


if __name__ == "__main__":
    main()
