"""Trajectories -> one-step training graphs.

Sample ``t`` of a trajectory is the graph of positions ``t-H .. t`` (H =
``graph.history``) with the action at ``t`` and the target positions at ``t+1``.
A trajectory's root assignment (DPI-Net) is computed once from its first frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from physics.errors import DataError
from physics.graph.builder import GraphBuilder
from physics.trajectory import Trajectory

__all__ = ["trajectory_tensors", "one_step_graphs", "make_samples"]


def trajectory_tensors(traj: Trajectory) -> dict[str, torch.Tensor]:
    """The arrays of ``traj`` as tensors (float32 / int64 / bool)."""
    return {
        "positions": torch.from_numpy(np.ascontiguousarray(traj.positions, dtype=np.float32)),
        "node_attr": torch.from_numpy(np.ascontiguousarray(traj.node_attr, dtype=np.float32)),
        "actions": torch.from_numpy(np.ascontiguousarray(traj.actions, dtype=np.float32)),
        "edges": torch.from_numpy(np.ascontiguousarray(traj.edges, dtype=np.int64)),
        "edge_attr": torch.from_numpy(np.ascontiguousarray(traj.edge_attr, dtype=np.float32)),
        "instance": torch.from_numpy(np.ascontiguousarray(traj.instance, dtype=np.int64)),
        "observed": torch.from_numpy(np.ascontiguousarray(traj.observed, dtype=bool)),
    }


def one_step_graphs(traj: Trajectory, builder: GraphBuilder, steps: list[int] | None = None, seed: int = 0) -> list[Data]:
    """Training graphs of one trajectory at time steps ``steps`` (default: every valid ``t``)."""
    h = builder.config.history
    if traj.num_steps < h + 2:
        raise DataError(
            f"{traj.meta.get('name', 'trajectory')}: {traj.num_steps} steps; a model with history {h} needs at least {h + 2}"
        )
    a = trajectory_tensors(traj)
    root_of = builder.roots_for(a["positions"][0], a["instance"], seed=seed)
    steps = list(range(h, traj.num_steps - 1)) if steps is None else steps
    return [
        builder.build(
            a["positions"][t - h : t + 1],
            a["node_attr"],
            a["actions"][t],
            a["edges"],
            a["edge_attr"],
            a["instance"],
            a["observed"],
            root_of,
            a["positions"][t + 1],
        )
        for t in steps
    ]


def make_samples(trajs: list[Trajectory], builder: GraphBuilder, max_samples: int | None = None, seed: int = 0) -> list[Data]:
    """One-step graphs from many trajectories; at most ``max_samples``, spread evenly.

    When the trajectories hold more samples than ``max_samples``, the same
    number of time steps is drawn (seeded) from each trajectory.
    """
    if not trajs:
        raise DataError("no trajectories to build training samples from")
    h = builder.config.history
    rng = np.random.default_rng(seed)
    per = None if max_samples is None else max(1, max_samples // len(trajs))
    out: list[Data] = []
    for i, traj in enumerate(trajs):
        valid = list(range(h, traj.num_steps - 1))
        steps = valid if per is None or per >= len(valid) else sorted(rng.choice(valid, per, replace=False).tolist())
        out += one_step_graphs(traj, builder, steps, seed=seed + i)
    return out
