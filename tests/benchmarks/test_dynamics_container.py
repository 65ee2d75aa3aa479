"""``left_container``: which moving particles of a particle rollout left the tank the wall markers outline."""

from __future__ import annotations

import numpy as np

from benchmarks.dynamics_eval import CONTAINER_MARGIN, left_container
from physics.trajectory import Trajectory


def _tank(moving: np.ndarray, steps: int = 3) -> Trajectory:
    """Wall markers of an open tank (floor y = 0.1, walls x = 0.2 and 0.8) and ``moving`` fluid particles."""
    floor = np.stack([np.linspace(0.2, 0.8, 13), np.full(13, 0.1)], 1)
    left = np.stack([np.full(5, 0.2), np.linspace(0.1, 0.4, 5)], 1)
    right = left + [0.6, 0.0]
    walls = np.concatenate([floor, left, right])
    pos = np.concatenate([walls, moving]).astype(np.float32)
    n, nw = len(pos), len(walls)
    attr = np.zeros((n, 4), np.float32)
    attr[:nw, 3] = 1  # wall
    attr[nw:, 0] = 1  # fluid
    return Trajectory(
        positions=np.repeat(pos[None], steps, 0), node_attr=attr, instance=np.where(np.arange(n) < nw, 0, -1),
        edges=np.zeros((2, 0), np.int64), edge_attr=np.zeros((0, 0), np.float32),
        actions=np.zeros((steps, n, 2), np.float32), observed=np.ones(n, bool), dt=0.008,
        meta={"materials": ["fluid", "rigid", "plastic", "wall"], "name": "tank"},
    )


def test_left_container_counts_particles_beyond_the_walls_and_below_the_floor_only():
    inside = [[0.5, 0.2], [0.21, 0.11], [0.5, 0.9]]  # in the bulk, in a corner, above the open top
    near = [[0.2 - CONTAINER_MARGIN / 2, 0.3]]  # sunk into a wall by less than the margin
    outside = [[0.1, 0.3], [0.5, 0.1 - 2 * CONTAINER_MARGIN], [0.95, 0.5], [0.5, -0.3]]
    traj = _tank(np.array(inside + near + outside))
    assert left_container([traj], [traj.positions]) == 4 / 8
    still_inside = _tank(np.array(inside + near))
    assert left_container([still_inside], [still_inside.positions]) == 0.0
    # the last frame counts: a rollout whose particles all fall through the floor at the end
    fallen = still_inside.positions.copy()
    fallen[-1, 23:, 1] = -0.5
    assert left_container([still_inside, traj], [fallen, traj.positions]) == (1.0 + 0.5) / 2


def test_left_container_is_none_without_wall_markers():
    traj = _tank(np.array([[0.5, 0.2]]))
    plain = Trajectory(
        positions=traj.positions, node_attr=traj.node_attr, instance=traj.instance, edges=traj.edges,
        edge_attr=traj.edge_attr, actions=traj.actions, observed=traj.observed, dt=traj.dt, meta={"name": "plain"},
    )
    assert left_container([plain], [plain.positions]) is None
