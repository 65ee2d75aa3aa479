"""Particle worlds (Taichi MLS-MPM): particle counts, determinism, rigidity, containment, renders.

Each test builds a tiny version of a world (a few dozen to a few hundred
particles, a few recorded steps).  Skipped without the ``particles`` extra.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("taichi", reason="the particle worlds need the particles extra: pip install -e '.[particles]'")

from physics.errors import ConfigError, StateError  # noqa: E402
from physics.models.shape_matching import kabsch  # noqa: E402
from physics.worlds.dynamics import make_world, replay  # noqa: E402
from physics.worlds.dynamics.particle_base import MATERIALS  # noqa: E402

TINY = {
    "fluidfall": {"min_radius": 0.03, "max_radius": 0.035},
    "boxbath": {"fluid_particles": 150, "tank": [0.38, 0.62], "min_side": 0.04, "max_side": 0.05},
    "fluidshake": {"fluid_particles": 80, "width": 0.15, "max_speed": 1.0, "shake_every": 2},
    "ricegrip": {"block_width": [0.05, 0.06], "block_height": [0.05, 0.06], "gripper_size": [0.03, 0.05],
                 "speed": [0.3, 0.4]},
}
STEPS = 6


def tiny(name: str, steps: int = STEPS, **extra):
    return make_world(name, steps=steps, **TINY[name], **extra)


@pytest.mark.parametrize("name", sorted(TINY))
def test_particle_count_materials_and_instances_are_conserved(name):
    world = tiny(name)
    traj = world.rollout(seed=4)
    t, n, d = traj.positions.shape
    assert (t, d) == (STEPS, 2) and traj.actions.shape == (t, n, 2)
    assert np.array_equal(traj.node_attr.sum(1), np.ones(n))  # one material per node
    assert traj.meta["materials"] == list(MATERIALS)
    wall = traj.node_attr[:, MATERIALS.index("wall")] == 1
    assert wall.any() and (~wall).sum() == world._n_sim  # shells after the simulated particles
    assert np.all(traj.instance[wall] >= 0)
    rigid = traj.node_attr[:, MATERIALS.index("rigid")] == 1
    assert np.all(traj.instance[rigid] >= 0) and np.all(traj.instance[~rigid & ~wall] == -1)
    assert np.isfinite(traj.positions).all() and traj.positions.min() > 0 and traj.positions.max() < 1
    again = world.rollout(seed=4)  # the state of another episode's end must not change the count
    assert again.positions.shape == traj.positions.shape


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_is_bit_identical_across_instances_and_other_seeds_differ(name):
    a, b = tiny(name), tiny(name)
    first = a.rollout(seed=9)
    a.rollout(seed=10)
    again, other, different = a.rollout(seed=9), b.rollout(seed=9), b.rollout(seed=10)
    for traj in (again, other):
        assert np.array_equal(first.positions, traj.positions)
        assert np.array_equal(first.actions, traj.actions)
    assert not np.array_equal(first.positions, different.positions)
    assert np.array_equal(replay(first).astype(np.float32), first.positions)  # the replay floor is exactly zero


def test_boxbath_box_stays_rigid_and_falls_into_the_fluid():
    traj = tiny("boxbath", steps=12).rollout(seed=1)
    box = traj.node_attr[:, MATERIALS.index("rigid")] == 1
    rest = traj.positions[0, box].astype(np.float64)
    import torch

    x = torch.tensor(rest)
    for t in range(traj.num_steps):
        y = torch.tensor(traj.positions[t, box].astype(np.float64))
        rot, shift = kabsch(x, y, torch.zeros(len(rest), dtype=torch.long), 1)
        err = (x @ rot[0].T + shift[0] - y).norm(dim=1).max()
        assert float(err) < 1e-6, (t, float(err))
    assert traj.positions[-1, box, 1].mean() < traj.positions[0, box, 1].mean() - 0.01  # it fell


def test_fluidshake_container_follows_the_action_and_holds_its_fluid():
    world = tiny("fluidshake", steps=15)
    traj = world.rollout(seed=2)
    wall = traj.node_attr[:, MATERIALS.index("wall")] == 1
    fluid = ~wall
    shift = traj.positions[1:, wall, 0].mean(1) - traj.positions[:-1, wall, 0].mean(1)
    assert np.allclose(shift, traj.actions[:-1, wall, 0].mean(1) * traj.dt, atol=1e-5)
    assert np.abs(shift).max() > 1e-3  # it was shaken
    dx = world.config.dx
    for t in range(traj.num_steps):  # no particle leaves the container (MPM lets one sink < one cell into a wall)
        left, right = traj.positions[t, wall, 0].min(), traj.positions[t, wall, 0].max()
        assert traj.positions[t, fluid, 0].min() > left - dx and traj.positions[t, fluid, 0].max() < right + dx


def test_ricegrip_grippers_close_and_dent_the_block():
    traj = tiny("ricegrip", steps=12).rollout(seed=0)
    plastic = traj.node_attr[:, MATERIALS.index("plastic")] == 1
    width = np.ptp(traj.positions[:, plastic, 0], axis=1)
    grip = traj.instance[~plastic]
    left = traj.positions[:, ~plastic][:, grip == grip.max() - 1, 0].mean(1)
    right = traj.positions[:, ~plastic][:, grip == grip.max(), 0].mean(1)
    assert (right - left).min() < (right - left)[0] - 0.01  # the grippers closed
    assert np.isfinite(width).all()


def test_render_and_errors():
    world = tiny("fluidfall", steps=4)
    frames = world.render_rollout(seed=0, width=40, height=30, every=2)
    assert frames.shape == (2, 30, 40, 3) and frames.dtype == np.uint8 and (frames < 255).any()
    with pytest.raises(StateError, match="no particles"):
        make_world("fluidfall", min_radius=0.001, max_radius=0.001).reset(0)
    with pytest.raises(ConfigError, match="grid"):
        make_world("boxbath", grid=4)
    with pytest.raises(StateError, match="reset"):
        tiny("ricegrip").state()


def test_fluidfall_markers_sit_where_the_grid_boundary_stops_the_fluid_and_old_recordings_still_replay():
    # fluidfall's floor and side markers sit one grid cell outside the slip planes, where MPM's boundary
    # (on grid nodes) and the clamp at 2 cells actually stop the fluid; offset 0 replays recordings on the planes
    new, old = tiny("fluidfall", steps=30), tiny("fluidfall", steps=30, wall_marker_offset=0.0)
    assert new.config.wall_marker_offset == 1.0 and make_world("boxbath").config.wall_marker_offset == 0.0
    a, b = new.rollout(seed=1), old.rollout(seed=1)
    wa, wb = (t.node_attr[:, MATERIALS.index("wall")] == 1 for t in (a, b))
    dx, (lo, hi) = new.config.dx, new.config.tank
    np.testing.assert_array_equal(a.positions[:, ~wa], b.positions[:, ~wb])  # markers only: the same fluid
    ma, mb = a.positions[0, wa], b.positions[0, wb]
    np.testing.assert_allclose([ma[:, 1].min(), ma[:, 0].min(), ma[:, 0].max()], [2 * dx, lo - dx, hi + dx])
    np.testing.assert_allclose([mb[:, 1].min(), mb[:, 0].min(), mb[:, 0].max()], [3 * dx, lo, hi])
    assert (a.positions[:, ~wa, 1] >= 2 * dx).all()  # no recorded fluid below the new floor markers
    assert (b.positions[-1, ~wb, 1] < 3 * dx).any()  # but some below the old marker line
    # a recording made before the setting existed (its config lacks the key) replays with the old markers
    short = tiny("fluidfall", steps=3, wall_marker_offset=0.0).rollout(seed=2)
    del short.meta["config"]["wall_marker_offset"]
    np.testing.assert_allclose(replay(short), short.positions, rtol=0, atol=1e-6)  # float32 storage
    for bad in (-1.0, 3.0, float("nan")):
        with pytest.raises(ConfigError, match="wall_marker_offset"):
            make_world("fluidfall", wall_marker_offset=bad)
