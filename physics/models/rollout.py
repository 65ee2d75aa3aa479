"""Multi-step rollouts of a learned simulator, and their error against ground truth.

A rollout starts from the first ``H+1`` true frames (H = the model's history),
feeds the true actions, and from then on sees only its own predictions; the
graph (neighbours, hierarchy) is rebuilt from the predicted positions each step.

Prescribed nodes: in a particle world (``traj.meta["materials"]`` names a
``wall`` column of ``node_attr``) the marker nodes of walls, containers and
grippers are kinematic, moved by the script or the action rather than by the
physics, so a rollout takes their positions from the recording (DPI-Net is
given the shapes' states the same way), and the errors count the simulated
particles only.

Wall projection (``wall_projection=True``; by default what the model declares,
``ModelConfig.wall_projection``, off unless a checkpoint says so): in a particle world
whose wall markers outline a container, every predicted frame is projected back
inside it after the model's step, the way learned particle simulators can
handle known solid boundaries.  The container is what :func:`container_box`
reads from the markers' recorded positions at the predicted step (the box the
benchmark's ``left_container`` counts against): between their smallest and
largest coordinate on every axis but the last, above their lowest point on the
last (up) axis, open on top.  In every particle world these are the
simulator's own walls (slip planes of unbounded height through the marker
lines), so the projection uses nothing the rollout is not already given.  A
free particle (fluid, plastic) beyond a wall is moved onto it (clamped per
axis); a rigid object is translated as a whole by the largest push any of its
particles needs, so shape matching's rigidity is kept.  It acts on every model
the same way; worlds without wall markers (cradle, rope, boxes) are untouched.
It is off by default because on ``fluidshake`` it raised the full-rollout error
of the IN and DPI-Net about twofold (docs/results/particles.md, session 7): the
fluid that a model lets lag behind the moving wall is pushed into a layer on
the wall line, and the models answer that compression by lifting it up the wall.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from physics.errors import ConfigError, StateError
from physics.graph.builder import GraphBuilder
from physics.models.base import DynamicsModel
from physics.models.data import trajectory_tensors
from physics.trajectory import Trajectory

__all__ = ["rollout", "rollout_errors", "prescribed_nodes", "container_box", "project_into_container", "rigid_ids",
           "outside_container", "CONTAINER_MARGIN"]

# an MPM particle may sink up to one grid cell (1/64 m) into a wall; the recordings stay within 0.016 m
CONTAINER_MARGIN = 0.02


def prescribed_nodes(traj: Trajectory) -> np.ndarray:
    """Bool ``[N]``: nodes whose positions a rollout takes from the recording (kinematic wall markers)."""
    materials = list(traj.meta.get("materials", ()))
    if "wall" not in materials:
        return np.zeros(traj.num_nodes, bool)
    return traj.node_attr[:, materials.index("wall")] == 1


def rigid_ids(traj: Trajectory) -> np.ndarray:
    """Int ``[N]``: the rigid object id of each rigid particle of a particle world, -1 elsewhere."""
    materials = list(traj.meta.get("materials", ()))
    if "rigid" not in materials:
        return np.full(traj.num_nodes, -1, np.int64)
    rigid = traj.node_attr[:, materials.index("rigid")] == 1
    return np.where(rigid, traj.instance, -1).astype(np.int64)


def container_box(positions: torch.Tensor, walls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The container the wall markers outline: ``(lo, hi)``, each ``[D]``; ``hi[-1]`` is inf (open top).

    Args:
        positions: ``[N, D]`` node positions of one frame.
        walls: bool ``[N]``, the wall markers (at least one).
    """
    marks = positions[walls]
    lo = marks.min(0).values
    hi = marks.max(0).values.clone()
    hi[-1] = float("inf")
    return lo, hi


def outside_container(traj: Trajectory, positions: np.ndarray, margin: float = CONTAINER_MARGIN) -> float | None:
    """The fraction of moving particles (not wall markers) outside their container at the last frame
    of ``positions`` ``[T, N, D]`` (recorded or predicted for ``traj``), or None when ``traj`` has no
    wall markers or nothing else.

    The container is what the wall markers outline in that frame (:func:`container_box`: between
    their smallest and largest coordinate on every axis but the last, above their lowest point on
    the last, up, axis; open on top); a particle counts as outside when it lies more than ``margin``
    (scene units) beyond it.  The benchmark's ``left_container`` is its mean over trajectories.
    """
    walls = prescribed_nodes(traj)
    if not walls.any() or walls.all():
        return None
    last = np.asarray(positions)[-1]
    lo, hi = last[walls].min(0) - margin, last[walls].max(0) + margin
    free = last[~walls]
    out = (free[:, :-1] < lo[:-1]).any(1) | (free[:, :-1] > hi[:-1]).any(1) | (free[:, -1] < lo[-1])
    return float(out.mean())


def project_into_container(positions: torch.Tensor, walls: torch.Tensor, rigid: torch.Tensor) -> torch.Tensor:
    """Move the non-marker nodes of ``positions`` inside :func:`container_box` (see the module docstring).

    Args:
        positions: ``[N, D]`` one predicted frame, the markers already at their recorded place.
        walls: bool ``[N]``, the wall markers (at least one); they are not moved.
        rigid: int ``[N]``, rigid object id per node (-1: a free particle, moved on its own).

    Returns:
        ``[N, D]``: free particles clamped into the box per axis, each rigid object translated by the
        largest push (per axis) that any of its particles needs; the markers unchanged.
    """
    lo, hi = container_box(positions, walls)
    shift = torch.minimum(torch.maximum(positions, lo), hi) - positions
    shift[walls] = 0.0
    for obj in torch.unique(rigid[(rigid >= 0) & ~walls]).tolist():
        rows = rigid == obj
        s = shift[rows]
        up, down = s.clamp(min=0).max(0).values, s.clamp(max=0).min(0).values
        shift[rows] = torch.where(up > 0, up, down)
    return positions + shift


@torch.no_grad()
def rollout(model: DynamicsModel, traj: Trajectory, steps: int | None = None, device: str | torch.device = "cpu",
            wall_projection: bool | None = None) -> np.ndarray:
    """Predict a trajectory from its first ``H+1`` frames.

    Args:
        model: A trained simulator (put in eval mode here).
        traj: Ground truth; its first frames, static arrays and actions are used.
        steps: Predicted steps, at least 1 (default: to the end of ``traj``).
        device: Where the model runs.
        wall_projection: Project every predicted frame inside the container the wall markers
            outline (module docstring); no effect on a world without wall markers.  None (the
            default): as the model declares (``model.config.wall_projection``).

    Returns:
        Positions ``[H+1+steps, N, D]``: the true first frames, then predictions.

    Raises:
        ConfigError: ``steps`` is not a positive integer.
        StateError: a prediction becomes NaN/inf (names the step), or the
            trajectory does not fit the model (dimensions, history).
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1):
        raise ConfigError(f"rollout steps must be a positive integer (or None: to the end of the trajectory), got {steps!r}")
    model.eval().to(device)
    cfg = model.config
    h = cfg.graph.history
    name = traj.meta.get("name", "trajectory")
    if traj.positions.shape[2] != cfg.dim or traj.node_attr.shape[1] != cfg.node_attr_dim or traj.edge_attr.shape[1] != cfg.edge_attr_dim:
        raise StateError(
            f"rollout of {name}: model expects D={cfg.dim}, node_attr {cfg.node_attr_dim}, edge_attr {cfg.edge_attr_dim}; "
            f"trajectory has D={traj.positions.shape[2]}, node_attr {traj.node_attr.shape[1]}, edge_attr {traj.edge_attr.shape[1]}"
        )
    if traj.num_steps < h + 2:
        raise StateError(f"rollout of {name}: needs at least {h + 2} steps, has {traj.num_steps}")
    steps = traj.num_steps - h - 1 if steps is None else steps
    a = {k: v.to(device) for k, v in trajectory_tensors(traj).items()}
    builder = GraphBuilder(cfg.graph)
    root_of = builder.roots_for(a["positions"][0], a["instance"])
    n = traj.num_nodes
    frames = [a["positions"][t] for t in range(h + 1)]
    hidden = ~a["observed"] if cfg.partially_observed else None
    given = torch.from_numpy(prescribed_nodes(traj)).to(device)
    if wall_projection is None:
        wall_projection = bool(getattr(cfg, "wall_projection", False))
    contain = wall_projection and bool(given.any()) and not bool(given.all())
    rigid = torch.from_numpy(rigid_ids(traj)).to(device)
    for k in range(steps):
        t = h + k
        act = a["actions"][min(t, traj.num_steps - 1)]
        g = builder.build(torch.stack(frames[-h - 1 :]), a["node_attr"], act, a["edges"], a["edge_attr"],
                          a["instance"], a["observed"], root_of)
        nxt = model.next_positions(g)[:n]
        if hidden is not None:
            nxt = torch.where(hidden[:, None], frames[-1], nxt)
        if bool(given.any()):
            nxt = torch.where(given[:, None], a["positions"][min(t + 1, traj.num_steps - 1)], nxt)
        if contain:
            nxt = project_into_container(nxt, given, rigid)
        if not torch.isfinite(nxt).all():
            raise StateError(f"rollout of {name}: prediction for step {t + 1} holds NaN or inf (model {model.name})")
        frames.append(nxt)
    return torch.stack(frames).cpu().numpy()


def rollout_errors(
    model: DynamicsModel, trajs: Sequence[Trajectory], horizons: Sequence[int] = (1, 5, 10, 20), device: str = "cpu",
    wall_projection: bool | None = None,
) -> dict:
    """Position MSE of rollouts at given horizons and over the whole rollout.

    MSE is averaged over the model-visible nodes (all, or the observed ones in
    the partially observable mode; without the prescribed wall markers of a
    particle world), the D coordinates and the trajectories.
    Horizon ``k`` is the k-th predicted step; ``wall_projection`` as in :func:`rollout` (None: as the
    model declares).

    Returns:
        ``{"mse_at": {k: float}, "mse_full": float, "mse_curve": [float] (per step),
        "mse_per_trajectory": [float] (each trajectory's full-rollout MSE; their mean is
        ``mse_full``), "steps_per_s": float, "rollout_steps": int, "predictions": [np.ndarray]}``.
    """
    h = model.config.graph.history
    curves, preds, total_steps, total_time = [], [], 0, 0.0
    for traj in trajs:
        start = time.perf_counter()
        pred = rollout(model, traj, device=device, wall_projection=wall_projection)
        total_time += time.perf_counter() - start
        total_steps += pred.shape[0] - h - 1
        mask = traj.observed if model.config.partially_observed else np.ones(traj.num_nodes, bool)
        mask = mask & ~prescribed_nodes(traj)
        err = ((pred[h + 1 :] - traj.positions[h + 1 :]) ** 2)[:, mask].mean(axis=(1, 2))
        curves.append(err)
        preds.append(pred)
    length = min(len(c) for c in curves)
    curve = np.mean([c[:length] for c in curves], axis=0)
    return {
        "mse_at": {int(k): float(curve[k - 1]) for k in horizons if k <= length},
        "mse_full": float(np.mean([c.mean() for c in curves])),
        "mse_per_trajectory": [float(c.mean()) for c in curves],
        "mse_curve": [float(x) for x in curve],
        "steps_per_s": total_steps / max(total_time, 1e-9),
        "rollout_steps": total_steps,
        "predictions": preds,
    }
