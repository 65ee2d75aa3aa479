"""Trajectories -> one-step training graphs.

Sample ``t`` of a trajectory is the graph of positions ``t-H .. t`` (H =
``graph.history``) with the action at ``t`` and the target positions at ``t+1``.
With ``horizon`` K > 1 a sample also holds ``target_seq`` ``[M, K, D]`` (the
positions at ``t+1 .. t+K``; zeros on root rows) and ``action_seq`` ``[M, K, D]``
(the actions at ``t .. t+K-1``) for training on K-step rollouts.
A trajectory's root assignment (DPI-Net) is computed once from its first frame.
A trajectory whose ``meta`` holds ``velocity_frames`` (one 0/1 per frame) gives its K-step
samples ``vel_mask_seq`` ``[M, K]`` too (1 on leaf rows where frame ``t+1+k`` is marked):
the steps whose velocity error the loss charges (``velocity_weight``).
A trajectory whose ``meta`` holds ``input_positions`` (``[T, N, D]``, finite, e.g. a perceiver's
states of the same objects) builds each sample's history from them while its targets stay
``positions``, the truth; such a sample also holds ``true_last`` ``[M, D]`` (the true state at
``t``, the velocity loss's previous frame for the first unrolled step).

A trajectory whose ``meta`` holds ``step_weights`` (one non-negative number per
step ``t``, at least one positive per trajectory) has its sampled steps drawn with
those relative chances (without replacement) when :func:`make_samples` takes fewer
steps than the trajectory holds: the video PropNet draws the steps around contacts
more often (:func:`physics.models.video_propnet.contact_step_weights`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from physics.errors import DataError
from physics.graph.builder import GraphBuilder, Relation
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


def one_step_graphs(
    traj: Trajectory, builder: GraphBuilder, steps: list[int] | None = None, seed: int = 0, horizon: int = 1
) -> list[Data]:
    """Training graphs of one trajectory at time steps ``steps`` (default: every valid ``t``).

    ``horizon`` K > 1 adds ``target_seq`` and ``action_seq`` (K steps ahead; see the module docstring).
    """
    h = builder.config.history
    if horizon < 1:
        raise DataError(f"horizon must be >= 1, got {horizon}")
    if traj.num_steps < h + 1 + horizon:
        raise DataError(
            f"{traj.meta.get('name', 'trajectory')}: {traj.num_steps} steps; a model with history {h} "
            f"and a {horizon}-step target needs at least {h + 1 + horizon}"
        )
    a = trajectory_tensors(traj)
    root_of = builder.roots_for(a["positions"][0], a["instance"], seed=seed)
    vel_frames = traj.meta.get("velocity_frames")
    if vel_frames is not None:
        vel_frames = torch.as_tensor(vel_frames, dtype=torch.float32)
        if vel_frames.shape != (traj.num_steps,):
            raise DataError(f"{traj.meta.get('name', 'trajectory')}: velocity_frames must be one number per frame "
                            f"({traj.num_steps}), got shape {tuple(vel_frames.shape)}")
    inputs = traj.meta.get("input_positions")
    if inputs is not None:
        inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        if inputs.shape != a["positions"].shape or not bool(torch.isfinite(inputs).all()):
            raise DataError(f"{traj.meta.get('name', 'trajectory')}: input_positions must be finite and shaped as the "
                            f"positions {tuple(a['positions'].shape)}, got shape {tuple(inputs.shape)}")
    last = traj.num_steps - horizon
    steps = list(range(h, last)) if steps is None else steps
    bad = [t for t in steps if not h <= t < last]
    if bad:
        raise DataError(f"sample steps {bad[:5]} lie outside {h}..{last - 1} (history {h}, horizon {horizon})")
    out = []
    for t in steps:
        g = builder.build(
            (a["positions"] if inputs is None else inputs)[t - h : t + 1],
            a["node_attr"],
            a["actions"][t],
            a["edges"],
            a["edge_attr"],
            a["instance"],
            a["observed"],
            root_of,
            a["positions"][t + 1],
        )
        if inputs is not None:
            true = a["positions"][t]
            g.true_last = torch.cat([true, true.new_zeros(g.num_nodes - traj.num_nodes, true.shape[1])])
        if horizon > 1:
            pad = g.num_nodes - traj.num_nodes  # root rows: no position targets; mean actions
            seq = a["positions"][t + 1 : t + 1 + horizon].transpose(0, 1)
            act = a["actions"][t : t + horizon].transpose(0, 1)
            g.target_seq = torch.cat([seq, seq.new_zeros(pad, horizon, seq.shape[2])])
            g.action_seq = _with_root_means(g, torch.cat([act, act.new_zeros(pad, horizon, act.shape[2])]))
            if vel_frames is not None:
                row = vel_frames[t + 1 : t + 1 + horizon]
                g.vel_mask_seq = torch.cat([row.expand(traj.num_nodes, horizon), row.new_zeros(pad, horizon)])
        out.append(g)
    return out


def _with_root_means(g: Data, x: Tensor) -> Tensor:
    """``x`` ``[M, ...]`` with each root's row set to the mean of its leaves' rows (as the builder does)."""
    sel = g.edge_type == Relation.LEAF_ROOT
    if not bool(sel.any()):
        return x
    s, r = g.edge_index[:, sel]
    out = x.clone()
    out[r.unique()] = 0
    out.index_add_(0, r, x[s])
    cnt = torch.bincount(r, minlength=x.shape[0]).to(x.dtype).clamp(min=1)
    return out / cnt.view(-1, *([1] * (x.dim() - 1)))


def make_samples(
    trajs: list[Trajectory], builder: GraphBuilder, max_samples: int | None = None, seed: int = 0, horizon: int = 1,
    first_step: int = 0,
) -> list[Data]:
    """Training graphs from many trajectories; at most ``max_samples``, spread evenly.

    When the trajectories hold more samples than ``max_samples``, the same
    number of time steps is drawn (seeded) from each trajectory, with the chances
    of its ``meta["step_weights"]`` when it has them (module docstring).
    ``horizon``: steps ahead each sample holds targets for (see :func:`one_step_graphs`).
    ``first_step``: samples start at frames ``t >= first_step`` only (and ``t >= history`` always),
    e.g. the frames after a falling fluid's impact; 0 draws from every frame.

    Raises:
        DataError: no trajectories, ``step_weights`` of the wrong length or sign, or a trajectory
            with no step at or after ``first_step`` that leaves room for ``horizon`` targets.
    """
    if not trajs:
        raise DataError("no trajectories to build training samples from")
    h = builder.config.history
    rng = np.random.default_rng(seed)
    per = None if max_samples is None else max(1, max_samples // len(trajs))
    out: list[Data] = []
    for i, traj in enumerate(trajs):
        valid = list(range(max(h, first_step), traj.num_steps - horizon))
        if not valid and first_step > h:  # without first_step, one_step_graphs names a short trajectory
            raise DataError(f"{traj.meta.get('name', f'trajectory {i}')}: {traj.num_steps} steps hold no sample at or "
                            f"after frame {first_step} with {horizon} target steps (history {h})")
        if per is None or per >= len(valid):
            steps = valid
        else:
            p = _step_chances(traj, valid)
            if p is not None and np.count_nonzero(p) < per:  # too few weighted steps: draw the rest evenly
                p = None
            steps = sorted(rng.choice(valid, per, replace=False, p=p).tolist())
        out += one_step_graphs(traj, builder, steps, seed=seed + i, horizon=horizon)
    return out


def _step_chances(traj: Trajectory, valid: list[int]) -> np.ndarray | None:
    """The normalised ``meta["step_weights"]`` of steps ``valid``, or None when the trajectory has none."""
    w = traj.meta.get("step_weights")
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    name = traj.meta.get("name", "trajectory")
    if w.shape != (traj.num_steps,) or not np.isfinite(w).all() or (w < 0).any():
        raise DataError(f"{name}: step_weights must be {traj.num_steps} finite non-negative numbers, got shape {w.shape}")
    p = w[valid]
    if p.sum() <= 0:
        raise DataError(f"{name}: step_weights are zero at every step a sample can be drawn from")
    return p / p.sum()
