"""Replaying recorded trajectories in the ground-truth simulator: a floor for rollout error.

A trajectory written by ``nesy data dynamics`` names its world, seed and world
config, and stores its actions as float32.  Re-running the simulator from that
seed with the stored actions differs from the recording only by the rounding of
the actions, so the gap is how far the simulator itself amplifies a perturbation
of about 1e-7 of the pull.  A learned simulator's full-rollout MSE near this
floor is as good as the data allows; far above it, the error is the model's.

>>> from physics.worlds.dynamics import load_split, replay_errors   # doctest: +SKIP
>>> replay_errors(load_split("data/rope", "test"))["mse_full"]        # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from physics.errors import DataError
from physics.trajectory import Trajectory
from physics.worlds.dynamics.base import DynamicsWorld
from physics.worlds.dynamics.registry import make_world, world_class

__all__ = ["replay", "replay_errors"]


def replay(traj: Trajectory, world: DynamicsWorld | None = None) -> np.ndarray:
    """Re-simulate ``traj`` from its seed with its stored actions.

    Args:
        traj: a recorded trajectory (``meta`` holds ``world``, ``seed`` and ``config``).
        world: a world of the same kind and config to reuse (built from ``traj.meta`` if None).

    Returns:
        float64 ``[T, N, D]`` positions, ``[0]`` the initial state as recorded.

    Raises:
        DataError: ``meta`` lacks what a replay needs, or the world's nodes do not
            match the trajectory's.
    """
    own = world is None
    w = _world_of(traj) if own else world
    try:
        w.reset(int(_meta(traj)["seed"]))
        if w.num_nodes != traj.num_nodes:
            raise DataError(f"{_name(traj)}: the world has {w.num_nodes} nodes but the trajectory {traj.num_nodes}")
        out = np.empty((traj.num_steps, traj.num_nodes, w.dim), np.float64)
        for t in range(traj.num_steps):
            out[t] = w.state()
            w.step(np.asarray(traj.actions[t], np.float64))
    finally:
        if own:
            w.close()
    return out[..., : traj.positions.shape[2]]


def replay_errors(trajs: Sequence[Trajectory]) -> dict[str, Any]:
    """Position MSE of the replays against the recordings, as ``rollout_errors`` scores models.

    MSE is over every node, the D coordinates and every step after the first,
    averaged over trajectories.

    Returns:
        ``{"mse_full": float, "mse_max": float, "mse_per_trajectory": [float], "seconds": float}``.
    """
    if not trajs:
        raise DataError("replay_errors: no trajectories")
    start = time.perf_counter()
    # one world for every trajectory of the first one's kind and config (a data set's usual case)
    key = _world_key(trajs[0])
    world = _world_of(trajs[0])
    errs = []
    try:
        for traj in trajs:
            pos = replay(traj, world if _world_key(traj) == key else None)
            errs.append(float(((pos[1:] - traj.positions[1:]) ** 2).mean()))
    finally:
        world.close()
    return {
        "mse_full": float(np.mean(errs)),
        "mse_max": float(np.max(errs)),
        "mse_per_trajectory": errs,
        "seconds": time.perf_counter() - start,
    }


def _name(traj: Trajectory) -> str:
    return str(traj.meta.get("name", "trajectory"))


def _meta(traj: Trajectory) -> Mapping[str, Any]:
    """``traj.meta``, checked to hold what a replay needs."""
    missing = [k for k in ("world", "seed", "config") if k not in traj.meta]
    if missing:
        raise DataError(f"{_name(traj)}: cannot replay, its meta lacks {missing} (write it with `nesy data dynamics`)")
    return traj.meta


def _world_key(traj: Trajectory) -> tuple[Any, Any]:
    meta = _meta(traj)
    return meta["world"], meta["config"]


def _world_of(traj: Trajectory) -> DynamicsWorld:
    name, config = _world_key(traj)
    recorded = {**world_class(str(name)).config_cls.recorded_defaults(), **dict(config)}
    return make_world(str(name), **recorded)
