"""Where the resting fluid of recorded particle-world trajectories lies against the wall markers.

Run from the repository root, for docs/results/particles.md::

    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] [--offsets 0,0.5,1,1.5]
    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] --model MODEL.pt [--start 0,60]
    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] --model MODEL.pt --onestep [--start 0,60]
    PYTHONPATH=$PWD python docs/results/particles_floor.py DATA [SPLIT] --model MODEL.pt --probe [--start 60] [--depth 1]

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

With ``--model`` and ``--onestep`` it asks why instead: teacher-forced, from every
recorded frame at or after each ``--start`` frame, the model predicts one step,
and for the fluid particles within one grid cell of the floor's marker line
(or of a side's) the script prints the mean error of the predicted step along
that wall's outward normal (mm; positive: the model moves the fluid further
out than the simulator did), the share of those predictions that end past the
line, and the same error for the fluid away from every wall.  A rollout that
drifts through a wall at rest needs an outward one-step bias there.

With ``--model`` and ``--probe`` it asks what the model does with fluid that is
already past a wall: at each ``--start`` frame of every trajectory it moves the
fluid particle nearest each wall's marker line to ``--depth`` grid cells past
that line (at rest there: its whole history moved), leaves the rest as
recorded, and prints the mean of the model's predicted step along that wall's
outward normal (mm; positive: further out), beside the same particle moved
``--depth`` cells inside instead.
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


def _model_and_builder(model_path: str):
    """The model in eval mode on one thread, its graph builder and its history length."""
    import torch

    from physics.graph.builder import GraphBuilder
    from physics.models.resolver import load_model

    torch.set_num_threads(1)
    model, _ = load_model(model_path)
    model.eval()
    return model, GraphBuilder(model.config.graph), model.config.graph.history


def onestep_bias(model_path: str, trajs, starts: list[int]) -> None:
    """Print the model's one-step error along each wall's outward normal, near that wall (see the docstring)."""
    import torch

    from physics.models.data import trajectory_tensors

    model, builder, h = _model_and_builder(model_path)
    for start in starts:
        acc = {"floor": [], "left": [], "right": [], "inner": []}
        past = {"floor": [], "left": [], "right": []}
        for t in trajs:
            mats = list(t.meta["materials"])
            wall = t.node_attr[:, mats.index("wall")] == 1
            fluid = t.node_attr[:, mats.index("fluid")] == 1
            dx = 1.0 / float(t.meta.get("config", {}).get("grid", 64))
            a = trajectory_tensors(t)
            root_of = builder.roots_for(a["positions"][0], a["instance"])
            n = t.num_nodes
            for k in range(max(start, h), t.num_steps - 1):
                g = builder.build(a["positions"][k - h : k + 1], a["node_attr"], a["actions"][k], a["edges"],
                                  a["edge_attr"], a["instance"], a["observed"], root_of)
                with torch.no_grad():
                    pred = model.next_positions(g)[:n].numpy().astype(np.float64)
                true, now = t.positions[k + 1].astype(np.float64), t.positions[k].astype(np.float64)
                marks = t.positions[k, wall]
                lines = {"floor": (marks[:, 1].min(), 1, -1.0), "left": (marks[:, 0].min(), 0, -1.0),
                         "right": (marks[:, 0].max(), 0, 1.0)}
                near_any = np.zeros(n, bool)
                for name, (line, axis, out) in lines.items():
                    near = fluid & (np.abs(now[:, axis] - line) < dx)
                    near_any |= near
                    acc[name].append(out * (pred[near, axis] - true[near, axis]))
                    past[name].append(out * (pred[near, axis] - line) > 0)
                inner = fluid & ~near_any
                acc["inner"].append(np.abs(pred[inner] - true[inner]).mean(1))
        cells = []
        for name in ("floor", "left", "right"):
            e, p = np.concatenate(acc[name]), np.concatenate(past[name])
            cells.append(f"{name}: {e.mean() * 1e3:+.3f} mm ({e.size} particle-steps, {p.mean():.1%} end past the line)"
                         if e.size else f"{name}: no fluid near it")
        inner = np.concatenate(acc["inner"])
        print(f"from frame {start}, one step, fluid within a cell of a wall line, mean outward error: "
              + "; ".join(cells) + f"; away from the walls, mean |error| per axis {inner.mean() * 1e3:.3f} mm")


def probe_past_walls(model_path: str, trajs, starts: list[int], depth: float) -> None:
    """Print the model's step for one particle put past (and inside) each wall (see the docstring)."""
    import torch

    from physics.models.data import trajectory_tensors

    model, builder, h = _model_and_builder(model_path)
    for start in starts:
        moves = {(name, side): [] for name in ("floor", "left", "right") for side in ("past", "inside")}
        for t in trajs:
            if not h <= start < t.num_steps - 1:
                raise SystemExit(f"--start {start} is outside frames {h}..{t.num_steps - 2} of {t.meta.get('name')}")
            mats = list(t.meta["materials"])
            wall = t.node_attr[:, mats.index("wall")] == 1
            fluid = np.flatnonzero(t.node_attr[:, mats.index("fluid")] == 1)
            dx = 1.0 / float(t.meta.get("config", {}).get("grid", 64))
            a = trajectory_tensors(t)
            root_of = builder.roots_for(a["positions"][0], a["instance"])
            marks = t.positions[start, wall]
            lines = {"floor": (marks[:, 1].min(), 1, -1.0), "left": (marks[:, 0].min(), 0, -1.0),
                     "right": (marks[:, 0].max(), 0, 1.0)}
            now = t.positions[start]
            for name, (line, axis, out) in lines.items():
                i = fluid[np.argmin(np.abs(now[fluid, axis] - line))]
                for side, sign in (("past", 1.0), ("inside", -1.0)):
                    hist = a["positions"][start - h : start + 1].clone()
                    place = torch.from_numpy(now[i].astype(np.float32))
                    place[axis] = float(line + sign * out * depth * dx)
                    hist[:, i] = place
                    g = builder.build(hist, a["node_attr"], a["actions"][start], a["edges"], a["edge_attr"],
                                      a["instance"], a["observed"], root_of)
                    with torch.no_grad():
                        nxt = model.next_positions(g)[i]
                    moves[(name, side)].append(out * float(nxt[axis] - place[axis]))
        cells = "; ".join(f"{name}: past {np.mean(moves[(name, 'past')]) * 1e3:+.3f} mm, "
                          f"inside {np.mean(moves[(name, 'inside')]) * 1e3:+.3f} mm" for name in ("floor", "left", "right"))
        print(f"from frame {start}, one fluid particle at rest {depth:g} cells past / inside each wall line, "
              f"mean predicted step along the outward normal over {len(trajs)} trajectories: {cells}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("split", nargs="?", default="train")
    ap.add_argument("--offsets", default="0,0.5,1,1.5")
    ap.add_argument("--model", help="a trained simulator's model.pt: measure its rollouts instead")
    ap.add_argument("--start", default="0,60", help="recorded frames the model's rollouts start from")
    ap.add_argument("--onestep", action="store_true", help="with --model: the one-step outward error at the walls")
    ap.add_argument("--probe", action="store_true", help="with --model: the step of fluid put past each wall")
    ap.add_argument("--depth", type=float, default=1.0, help="with --probe: grid cells past / inside the line")
    args = ap.parse_args(argv)
    if args.model:
        try:
            starts = [int(k) for k in args.start.split(",")]
        except ValueError:
            raise SystemExit(f"--start must be comma-separated frame numbers, got {args.start!r}") from None
        if not 0 < args.depth < 10:
            raise SystemExit(f"--depth must lie in (0, 10) grid cells, got {args.depth}")
        if args.probe:
            probe_past_walls(args.model, load_split(args.data, args.split), starts, args.depth)
            return
        run = onestep_bias if args.onestep else model_leak
        run(args.model, load_split(args.data, args.split), starts)
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
