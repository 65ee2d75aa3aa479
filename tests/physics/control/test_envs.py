"""The control tasks speak Gymnasium: check_env on every registered one, seeded goals, reward and success."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from physics.control import (
    TASKS,
    BoxPushCornersEnv,
    BoxPushCornersTaskConfig,
    BoxPushEnv,
    BoxPushTaskConfig,
    ParticleEnv,
    RopeShapeEnv,
)
from physics.control.envs import around_distance
from physics.errors import ConfigError


@pytest.mark.parametrize("task", [t for t in TASKS.names() if not issubclass(TASKS.get(t).env_cls, ParticleEnv)])
def test_every_registered_task_passes_check_env(task):
    """(The particle tasks pass it with tiny worlds in test_particle_envs.py: the MPM at full size is slow.)"""
    env = gym.make(TASKS.get(task).gym_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_gym_ids_are_versioned_and_wrap_the_world_classes():
    assert {TASKS.get(t).gym_id for t in TASKS} >= {"nesy/BoxPush-v0", "nesy/BoxPushCorners-v0", "nesy/RopeShape-v0"}
    env = gym.make("nesy/BoxPush-v0")
    assert type(env.unwrapped.world).__name__ == "BoxPushing"
    env.close()


@pytest.mark.parametrize("cls", [BoxPushEnv, RopeShapeEnv])
def test_same_seed_same_episode_other_seed_other_goal(cls):
    env = cls()
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    c, _ = env.reset(seed=6)
    env.close()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[-env.goal_size:], c[-env.goal_size:])


def test_box_goal_lies_at_the_configured_distance_and_reward_is_minus_distance():
    env = BoxPushEnv(BoxPushTaskConfig(goal_distance=(0.1, 0.1), max_steps=2))
    obs, info = env.reset(seed=1)
    assert info["distance"] == pytest.approx(0.1, abs=1e-3)
    _, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert reward == pytest.approx(-info["distance"])
    assert not terminated and not truncated
    *_, truncated, _ = env.step(np.zeros(2, np.float32))
    assert truncated
    env.close()


def test_box_success_when_the_box_sits_on_the_goal():
    env = BoxPushEnv()
    env.reset(seed=2)
    env.goal = env.world.state()[env.target, :2].copy()
    _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert terminated and info["success"] and info["distance"] < env.config.tolerance
    env.close()


def test_rope_goal_is_a_shape_the_rope_reaches_and_the_start_is_restored():
    env = RopeShapeEnv()
    _, info = env.reset(seed=3)
    beads = env.world.state()[: env.world.config.num_beads, :2]
    goal = env.goal.reshape(-1, 2)
    links = np.linalg.norm(np.diff(goal, axis=0), axis=1)
    np.testing.assert_allclose(links, env.world.config.link_length, atol=2e-3)  # a real rope shape
    assert info["distance"] == pytest.approx(np.linalg.norm(beads - goal, axis=1).mean())
    assert info["distance"] > 0.05  # the goal is away from the start
    env.close()


def test_corner_task_carries_the_yaw_and_measures_the_box_centre():
    env = BoxPushCornersEnv(BoxPushCornersTaskConfig(max_steps=3))
    obs, info = env.reset(seed=4)
    state = env.world.state()
    assert env.world.num_nodes == 4 * env.world.config.num_boxes + 1 and env.actuated_node == env.world.num_nodes - 1
    corners = state[4 * env.target: 4 * env.target + 4, :2]
    centre = corners.mean(axis=0)
    assert info["distance"] == pytest.approx(float(np.linalg.norm(centre - env.goal)))
    lo, hi = env.config.goal_distance
    assert lo - 1e-9 <= info["distance"] <= hi + 1e-9 or np.abs(env.goal).max() == pytest.approx(env.world.config.layout)
    edge = corners[1] - corners[0]  # the yaw is in the state: the first edge runs along the box's x side
    size_x = env.world.node_attr[4 * env.target, 2]
    assert np.linalg.norm(edge) == pytest.approx(size_x, abs=1e-6)
    assert env.checkpoint_world == "boxes_corners" and BoxPushEnv().checkpoint_world == "boxes"
    env.goal = centre.copy()
    _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert terminated and info["success"]
    env.close()


def test_corner_cost_uses_the_mean_of_the_box_corners():
    env = BoxPushCornersEnv()
    env.reset(seed=4)
    pos = torch.as_tensor(env.world.state(), dtype=torch.float32)[None, None]
    far = pos.clone()
    far[:, :, 4 * env.target: 4 * env.target + 4, :2] += torch.as_tensor(env.goal - env.box_centres(env.world.state())[env.target],
                                                                          dtype=torch.float32)
    assert env.cost(far).item() < env.cost(pos).item()  # the box on the goal costs less
    env.close()


def test_corner_config_refuses_centre_nodes():
    with pytest.raises(ConfigError, match="corners"):
        BoxPushCornersTaskConfig(world={"box_nodes": "centre"})


def test_side_term_charges_a_pusher_within_reach_in_front_of_the_box_but_not_behind_or_far():
    plain, sided = BoxPushEnv(BoxPushTaskConfig(side_weight=0.0)), BoxPushEnv(BoxPushTaskConfig(side_weight=2.0))
    for env in (plain, sided):
        env.reset(seed=4)
    state = plain.world.state()
    box = state[plain.target, :2]
    to_goal = (plain.goal - box) / np.linalg.norm(plain.goal - box)

    def at(offset: np.ndarray) -> torch.Tensor:  # the pusher at box + offset, [1, 1, N, 3]
        pos = state.copy()
        pos[plain.actuated_node, :2] = box + offset
        return torch.as_tensor(pos, dtype=torch.float32)[None, None]

    size = plain.world.node_attr[plain.target, 2:4]
    reach = 0.5 * float(np.linalg.norm(size)) + plain.world.config.pusher_radius
    behind, in_front, far_in_front = at(-0.9 * reach * to_goal), at(0.9 * reach * to_goal), at(1.5 * reach * to_goal)
    for pos in (behind, far_in_front):  # behind the box or out of reach: no side charge
        torch.testing.assert_close(sided.cost(pos), plain.cost(pos))
    extra = float(sided.cost(in_front) - plain.cost(in_front))
    assert extra == pytest.approx(2 * 2.0 * 0.1 * reach, rel=1e-3)  # weight * (reach - d) * (1 - cos) / 2, last step twice
    with pytest.raises(ConfigError, match="side_weight"):
        BoxPushTaskConfig(side_weight=-1.0)
    for env in (plain, sided):
        env.close()


def test_side_term_is_on_for_centre_boxes_and_off_for_corners_by_default():
    assert BoxPushTaskConfig().side_weight > 0  # measured on centre nodes (docs/results/control.md)
    assert BoxPushCornersTaskConfig().side_weight == 0.0


def test_around_distance_goes_round_the_disk_and_is_straight_where_the_spot_is_in_view():
    r = 0.075
    spot = torch.tensor([[-r, 0.0]])

    def around(x: float, y: float) -> tuple[float, np.ndarray]:
        p = torch.tensor([[x, y]], requires_grad=True)
        d = around_distance(p, spot, (p - spot).norm(dim=-1), r)
        d.sum().backward()
        return float(d), p.grad[0].numpy()

    far_side, _ = around(0.13, 0.0)  # opposite the spot: tangent plus the arc beyond the tangent point
    alpha = np.arccos(r / 0.13)
    assert far_side == pytest.approx(np.sqrt(0.13**2 - r**2) + r * (np.pi - alpha), rel=1e-3)  # acos clamped at the pole
    assert far_side > 0.13 + r  # longer than the straight line through the box
    in_view, grad = around(-0.2, 0.05)  # the spot in view: the straight line
    assert in_view == pytest.approx(float(np.hypot(-0.2 + r, 0.05)), rel=1e-5)
    assert np.isfinite(grad).all()
    # a step round the disk, either way, shortens the way from the far side (the straight line does not
    # prefer either side and barely changes: the pusher there has no way round)
    assert around(0.13, 0.01)[0] < far_side - 0.004 and around(0.13, -0.01)[0] < far_side - 0.004
    behind_in_contact, grad = around(-0.05, 0.0)  # inside the disk behind the box: no pull back out to the circle
    assert behind_in_contact == pytest.approx(0.0, abs=1e-3) and np.isfinite(grad).all()
    assert around(0.05, 0.0)[0] == pytest.approx(r * np.pi, rel=1e-3)  # inside, in front: the arc round


def test_approach_path_around_is_the_centre_task_default_and_changes_only_the_approach_term():
    assert BoxPushTaskConfig().approach_path == "around"
    assert BoxPushCornersTaskConfig().approach_path == "straight"  # measured on centre nodes only
    with pytest.raises(ConfigError, match="approach_path"):
        BoxPushTaskConfig(approach_path="sideways")
    straight, around = (BoxPushEnv(BoxPushTaskConfig(approach_path=a, side_weight=0.0)) for a in ("straight", "around"))
    for env in (straight, around):
        env.reset(seed=4)
    state = straight.world.state()
    box = state[straight.target, :2]
    to_goal = (straight.goal - box) / np.linalg.norm(straight.goal - box)
    size = straight.world.node_attr[straight.target, 2:4]
    reach = 0.5 * float(np.linalg.norm(size)) + straight.world.config.pusher_radius

    def at(offset: np.ndarray) -> torch.Tensor:
        pos = state.copy()
        pos[straight.actuated_node, :2] = box + offset
        return torch.as_tensor(pos, dtype=torch.float32)[None, None]

    far_behind, in_front = at(-3 * reach * to_goal), at(2 * reach * to_goal)
    torch.testing.assert_close(around.cost(far_behind), straight.cost(far_behind))  # the spot in view: the same
    assert float(around.cost(in_front)) > float(straight.cost(in_front))  # the way round is longer
    for env in (straight, around):
        env.close()
