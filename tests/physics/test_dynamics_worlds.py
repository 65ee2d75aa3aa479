"""Dynamics worlds: the Trajectory contract, determinism, cradle physics, registry errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from physics.errors import ConfigError, DataError, StateError
from physics.worlds.dynamics import (
    NewtonsCradle,
    make_world,
    measure_sim_speed,
    replay,
    replay_errors,
)
from physics.worlds.dynamics.base import pybullet_module

SHORT = {"cradle": 40, "rope": 40, "boxes": 40}
PYBULLET_WORLDS = sorted(SHORT)  # the particle worlds have their own tests (test_particle_worlds.py)


def _angles(traj, balls: int) -> np.ndarray:
    """Swing angle of each ball [T, B] (degrees, positive toward -x) from positions."""
    ball, piv = traj.positions[:, :balls], traj.positions[:, balls:]
    return np.degrees(np.arctan2(piv[..., 0] - ball[..., 0], piv[..., 2] - ball[..., 2]))


@pytest.mark.parametrize("name", PYBULLET_WORLDS)
def test_rollout_matches_trajectory_contract(name):
    with make_world(name, steps=SHORT[name]) as world:
        traj = world.rollout(seed=3)
    t, n, d = traj.positions.shape
    assert (t, d) == (SHORT[name], 3)
    assert traj.actions.shape == (t, n, 3)
    assert traj.node_attr.shape[0] == n and traj.node_attr.dtype == np.float32
    assert traj.instance.shape == (n,) and traj.observed.shape == (n,)
    assert traj.edges.shape[0] == 2 and traj.edge_attr.shape[0] == traj.edges.shape[1]
    assert traj.meta["world"] == name and traj.meta["seed"] == 3
    assert traj.meta["config"]["steps"] == SHORT[name]
    assert traj.dt == pytest.approx(world.config.physics_dt * world.config.frame_skip)
    # every node is exactly one type
    types = traj.node_attr[:, : _num_types(name)]
    assert np.array_equal(types.sum(axis=1), np.ones(n))


def _num_types(name: str) -> int:
    return {"cradle": 2, "rope": 3, "boxes": 2}[name]


@pytest.mark.parametrize("name", PYBULLET_WORLDS)
def test_same_seed_gives_identical_arrays_across_instances_and_resets(name):
    a = make_world(name, steps=30)
    b = make_world(name, steps=30)
    first = a.rollout(seed=11)
    a.rollout(seed=12)  # another episode in between must not leak into the next one
    again = a.rollout(seed=11)
    other = b.rollout(seed=11)
    different = b.rollout(seed=12)
    a.close()
    b.close()
    for traj in (again, other):
        assert np.array_equal(first.positions, traj.positions)
        assert np.array_equal(first.actions, traj.actions)
        assert np.array_equal(first.observed, traj.observed)
    assert not np.array_equal(first.positions, different.positions)


@pytest.mark.parametrize("name", PYBULLET_WORLDS)
def test_long_rollout_stays_finite_and_bounded(name):
    with make_world(name) as world:
        traj = world.rollout(seed=5)
    assert np.isfinite(traj.positions).all()
    assert np.abs(traj.positions).max() < 2.0


def test_cradle_one_ball_lifted_far_ball_swings_out_middle_stays():
    with make_world("cradle", lift_counts=(1,), steps=60) as world:
        traj = world.rollout(seed=0)
        lifted, lift = world.lifted, np.degrees(abs(world.lift_angle))
    ang = np.abs(_angles(traj, 5))
    far = 4 if lifted == (0,) else 0
    hit = int(np.argmax(ang[:, lifted[0]] < 1.0))  # first step the lifted ball is back at rest
    after = ang[hit : hit + int(round(0.5 / traj.dt))]  # ~half a swing of the far ball (period ~1.1 s)
    assert after[:, far].max() > 0.85 * lift, "far ball must swing out about as high as the lifted one"
    assert after[:, 1:4].max() < 0.1 * lift, "middle balls must stay nearly still"
    assert after[:, lifted[0]].max() < 0.1 * lift, "the lifted ball stops at the impact"


def test_cradle_two_balls_lifted_two_swing_out():
    with make_world("cradle", lift_counts=(2,), steps=60) as world:
        traj = world.rollout(seed=4)
        lifted, lift = world.lifted, np.degrees(abs(world.lift_angle))
    ang = np.abs(_angles(traj, 5))
    far = (3, 4) if lifted == (0, 1) else (0, 1)
    assert ang[:, list(far)].max(axis=0).min() > 0.8 * lift
    assert ang[:, 2].max() < 0.15 * lift


def test_cradle_does_not_gain_energy():
    """Energy per unit mass (kinetic + potential) over 10 s: impacts may lose a little, never add."""
    with make_world("cradle", steps=600) as world:
        for seed in (0, 3):
            traj = world.rollout(seed=seed)
            balls = traj.positions[:, :5].astype(np.float64)
            speed2 = (np.diff(balls, axis=0) / traj.dt) ** 2
            energy = 0.5 * speed2.sum(axis=(1, 2)) + world.config.gravity * balls[1:, :, 2].sum(axis=1)
            rest = world.config.gravity * balls[:, :, 2].min() * 5  # all balls hanging still
            first, last = energy[:60].mean() - rest, energy[-60:].mean() - rest  # one second each
            assert last <= 1.001 * first, "no energy gain"
            assert last >= 0.9 * first, "losses stay small (restitution 1)"


def test_cradle_strings_keep_their_length_and_are_the_fixed_edges():
    with make_world("cradle", steps=50) as world:
        traj = world.rollout(seed=1)
        length = world.config.string_length
    s, r = traj.edges
    assert set(zip(s.tolist(), r.tolist(), strict=True)) == {(i, i + 5) for i in range(5)} | {(i + 5, i) for i in range(5)}
    dist = np.linalg.norm(traj.positions[:, s] - traj.positions[:, r], axis=-1)
    assert np.allclose(dist, length, atol=1e-3)
    assert np.allclose(traj.edge_attr, length)
    assert np.ptp(traj.positions[..., 1]) < 1e-6, "motion stays in the x-z plane"


def test_cradle_without_pivots_has_only_balls():
    with make_world("cradle", include_pivots=False, steps=5) as world:
        traj = world.rollout(seed=0)
    assert traj.positions.shape[1] == 5 and traj.edges.shape == (2, 0)


def test_render_returns_rgb_image_with_the_balls_in_it():
    with make_world("cradle", steps=5) as world:
        world.reset(0)
        img = world.render(64, 48)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert img.min() < 200, "the balls are darker than the background"


def test_unknown_world_and_bad_settings_raise_config_error_naming_choices():
    with pytest.raises(ConfigError, match="cradle"):
        make_world("pendulum")
    with pytest.raises(ConfigError, match="num_balls"):
        make_world("cradle", num_bals=3)
    with pytest.raises(ConfigError, match="num_balls"):
        make_world("cradle", num_balls=1)
    with pytest.raises(ConfigError, match="frame_skip"):
        make_world("cradle", frame_skip=0)
    with pytest.raises(ConfigError):
        make_world("cradle", steps="many")


def test_state_before_reset_and_bad_actions_raise_state_error():
    world = NewtonsCradle()
    with pytest.raises(StateError, match="reset"):
        world.state()
    world.reset(0)
    with pytest.raises(StateError, match="actuated"):
        world.step(np.ones(3))
    with pytest.raises(StateError, match=r"\[10, 3\]"):
        world.step(np.ones((4, 3)))
    cid = world._cid
    world.close()
    assert not pybullet_module().getConnectionInfo(physicsClientId=cid)["isConnected"]
    world.close()  # twice is fine
    with pytest.raises(StateError, match="closed"):
        world.reset(0)


def test_measure_sim_speed_reports_positive_rates():
    res = measure_sim_speed("cradle", steps=20, repeats=1)
    assert res["world"] == "cradle" and res["steps_per_s"] > 0 and res["nodes"] == 10
    with make_world("cradle", num_balls=3, steps=5) as world:
        config = dict(world.rollout(seed=0).meta["config"])
    assert measure_sim_speed("cradle", steps=5, repeats=1, overrides=config)["nodes"] == 6
    assert res["physics_steps_per_s"] == pytest.approx(res["steps_per_s"] * res["frame_skip"])


@pytest.mark.parametrize("name", PYBULLET_WORLDS)
def test_replay_reproduces_the_recording_from_its_seed_and_actions(name):
    with make_world(name, steps=SHORT[name]) as world:
        traj = world.rollout(seed=5)
    pos = replay(traj)
    assert pos.shape == traj.positions.shape and pos.dtype == np.float64
    # only the float32 rounding of stored actions and positions separates them at first; the
    # rope can amplify it later in the episode
    np.testing.assert_allclose(pos[:20], traj.positions[:20], atol=1e-6)
    res = replay_errors([traj, traj])
    assert res["mse_per_trajectory"][0] == res["mse_per_trajectory"][1] == res["mse_full"] == res["mse_max"]
    assert res["mse_full"] < 1e-7


def test_replay_follows_the_stored_actions_and_needs_the_seed():
    with make_world("rope", steps=SHORT["rope"]) as world:
        traj = world.rollout(seed=5)
    pulled = dataclasses.replace(traj, actions=traj.actions * 0.5)  # a different pull than was recorded
    assert replay_errors([pulled])["mse_full"] > 1e-5
    with pytest.raises(DataError, match="seed"):
        replay(dataclasses.replace(traj, meta={k: v for k, v in traj.meta.items() if k != "seed"}))
    with pytest.raises(DataError, match="no trajectories"):
        replay_errors([])


# --------------------------------------------------------------------------- rope
def test_rope_links_keep_their_length_and_the_rope_stays_on_the_floor():
    with make_world("rope", steps=120) as world:
        traj = world.rollout(seed=2)
        cfg = world.config
    beads = traj.positions[:, : cfg.num_beads]
    links = np.linalg.norm(np.diff(beads, axis=1), axis=-1)
    assert np.allclose(links, cfg.link_length, rtol=0.02)
    assert np.allclose(traj.edge_attr, cfg.link_length)
    assert np.abs(beads[..., 2] - cfg.link_length / 2).max() < cfg.link_length  # lies flat, never flies


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_rope_never_rolls_about_its_axis(seed):
    # a torsion-stiff chain that rolls tilts its joint axes and lifts beads off the floor as it
    # bends; the carrier joints keep every bead centre at bead height (seeds that rolled before)
    with make_world("rope") as world:
        traj = world.rollout(seed=seed)
        r = world.config.link_length / 2
    assert np.abs(traj.positions[:, : world.config.num_beads, 2] - r).max() < 1e-3


def test_rope_is_dragged_by_its_actuated_end_and_obstacles_stay_fixed():
    with make_world("rope", steps=120) as world:
        traj = world.rollout(seed=4)
        b = world.config.num_beads
    assert np.flatnonzero(np.abs(traj.actions).sum(axis=(0, 2))).tolist() == [0]  # only bead 0 is driven
    assert traj.node_attr[0].tolist() == [0.0, 0.0, 1.0]
    head_travel = np.linalg.norm(np.diff(traj.positions[:, 0], axis=0), axis=-1).sum()
    assert head_travel > 0.2
    assert np.array_equal(traj.positions[:, b:], np.broadcast_to(traj.positions[:1, b:], traj.positions[:, b:].shape))
    # the force changes smoothly: step-to-step change well below its cap
    force = traj.actions[:, 0, :2]
    assert np.abs(np.diff(force, axis=0)).max() < 0.5 * world.config.max_force


def test_rope_beads_never_pass_through_the_obstacles():
    with make_world("rope", steps=200) as world:
        cfg = world.config
        for seed in range(3):
            traj = world.rollout(seed=seed)
            beads, obst = traj.positions[:, : cfg.num_beads, :2], traj.positions[0, cfg.num_beads :, :2]
            gap = np.linalg.norm(beads[:, :, None] - obst[None, None], axis=-1).min()
            assert gap > cfg.obstacle_radius + 0.4 * cfg.link_length  # bead radius is link/2


def test_rope_without_force_lies_still():
    with make_world("rope") as world:
        world.reset(0)
        before = world.state()
        for _ in range(30):
            world.step(None)
        assert np.abs(world.state() - before).max() < 1e-3


# --------------------------------------------------------------------------- boxes
def test_boxes_move_only_when_pushed():
    with make_world("boxes") as world:
        world.reset(1)
        before = world.state()
        for _ in range(60):
            world.step(None)
        assert np.abs(world.state() - before).max() < 1e-3, "nothing moves without the pusher"

        traj = world.rollout(seed=1, steps=150)
        b = world.config.num_boxes
        radius = world.config.pusher_radius
    pos = traj.positions
    moved = np.linalg.norm(pos[-1, :b, :2] - pos[0, :b, :2], axis=-1) > 5e-3
    assert moved.any(), "the policy pushes at least one box"
    # a box that moved was touched: the pusher, or a box that moved, came within reach of it
    reach = np.linalg.norm(traj.node_attr[:b, 2:4], axis=1) / 2
    touched = np.zeros(b, bool)
    pusher_gap = np.linalg.norm(pos[:, :b, :2] - pos[:, b : b + 1, :2], axis=-1).min(axis=0)
    touched |= pusher_gap < reach + radius + 0.01
    for _ in range(b):  # pushes pass on through chains of boxes
        gaps = np.linalg.norm(pos[:, :b, None, :2] - pos[:, None, :b, :2], axis=-1).min(axis=0)
        near = gaps < reach[:, None] + reach[None, :] + 0.01
        touched |= (near & (touched & moved)[None, :]).any(axis=1)
    assert not (moved & ~touched).any()


def test_boxes_pusher_follows_its_velocity_action_and_observation_is_partial():
    with make_world("boxes", steps=60, observed_fraction=0.5) as world:
        traj = world.rollout(seed=3)
        b = world.config.num_boxes
    vel = np.diff(traj.positions[:, b, :2], axis=0) / traj.dt
    assert np.abs(vel - traj.actions[:-1, b, :2]).mean() < 0.02
    assert np.abs(traj.actions[:, :b]).max() == 0
    assert traj.observed[b] and traj.observed[:b].sum() == b // 2
    assert traj.instance.tolist() == list(range(b + 1))
    assert traj.edges.shape == (2, 0)
    assert traj.node_attr[:b, 2:4].min() >= world.config.box_size[0]


def test_render_rollout_replays_the_recorded_episode():
    with make_world("boxes", steps=6) as world:
        world.rollout(seed=2)
        recorded_end = world.state()
        frames = world.render_rollout(seed=2, width=32, height=24, every=3)
        assert frames.shape == (2, 24, 32, 3) and frames.dtype == np.uint8
        assert np.array_equal(world.state(), recorded_end), "rendering must not change the episode"


@pytest.mark.slow
@pytest.mark.parametrize("name", PYBULLET_WORLDS)
def test_many_seeds_never_explode(name):
    with make_world(name, steps=300) as world:
        for seed in range(25):
            traj = world.rollout(seed=seed)  # raises StateError past config.bound
            assert np.abs(traj.positions).max() < 1.0


def test_boxes_as_corner_particles_are_rigid_and_match_the_centre_world():
    with make_world("boxes", box_nodes="corners", steps=100) as world:
        corners = world.rollout(seed=1)
        b = world.config.num_boxes
    with make_world("boxes", steps=100) as world:
        centres = world.rollout(seed=1)
    assert corners.positions.shape == (100, 4 * b + 1, 3)
    assert corners.instance.tolist() == np.repeat(np.arange(b), 4).tolist() + [b]
    assert np.array_equal(corners.observed[:-1], np.repeat(centres.observed[:b], 4))
    s, r = corners.edges
    assert (corners.instance[s] == corners.instance[r]).all() and corners.edges.shape[1] == 12 * b
    dist = np.linalg.norm(corners.positions[:, s] - corners.positions[:, r], axis=-1)
    assert np.allclose(dist, corners.edge_attr[:, 0], atol=1e-5)  # rigid bodies stay rigid
    box_mean = corners.positions[:, : 4 * b].reshape(100, b, 4, 3).mean(axis=2)
    assert np.allclose(box_mean, centres.positions[:, :b], atol=1e-6)  # same episode, other nodes


def test_docstring_examples_run():
    import doctest

    from physics.worlds.dynamics import base, registry

    for module in (base, registry):
        result = doctest.testmod(module, verbose=False)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_boxes_pusher_starts_clear_of_every_box():
    with make_world("boxes", num_boxes=20, steps=1) as world:
        for seed in range(20):
            world.reset(seed)
            pos = world.state()
            b, r = world.config.num_boxes, world.config.pusher_radius
            reach = np.linalg.norm(world.node_attr[:b, 2:4], axis=1) / 2
            assert (np.linalg.norm(pos[:b, :2] - pos[b, :2], axis=1) > reach + r).all()
