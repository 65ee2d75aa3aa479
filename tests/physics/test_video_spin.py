"""The video PropNet's spin input (off by default): a sliding sphere's flag from the truth and from a track."""

from __future__ import annotations

from dataclasses import replace as dataclass_replace

import numpy as np
import pytest

from physics.errors import ConfigError
from physics.models import load_model
from physics.models.video_propnet import (
    ROLL_SPEED,
    SHIPPED_CHECKPOINT,
    SLIDE_INPUT,
    PropNetVideoDynamics,
    RolloutConfig,
    grow_spin_input,
    launch_actions,
    load_trajectory_pack,
    save_trajectory_pack,
    sliding_read,
    sliding_states,
    video_trajectories,
    video_trajectory,
)
from physics.worlds.clevrer_annotation import (
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_truth import simulate_video
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld

SHORT = RolloutConfig(future_frames=4)


def _state(k: int, v: float, w: float) -> ObjectState:
    return ObjectState(k, (0.0, float(k), 0.35), (0.0,) * 3, (v, 0.0, 0.0), (0.0, w, 0.0), True)


def test_sliding_states_flag_moving_spheres_whose_spin_is_short_of_rolling():
    shapes = {0: "sphere", 1: "sphere", 2: "sphere", 3: "cube"}
    frames = [FrameStates(0, (_state(0, 2.0, 0.0), _state(1, 2.0, 2.0 / 0.35), _state(2, 0.2, 0.0), _state(3, 2.0, 0.0))),
              FrameStates(1, (_state(0, 2.0, 0.8 * 2.0 / 0.35), _state(1, 2.0, 0.95 * 2.0 / 0.35)))]
    got = sliding_states(frames, [0, 1, 2, 3], shapes)
    # sliding / rolling / too slow / a cube; frame 1: 80% of rolling slides, 95% rolls, absent objects never slide
    assert got.tolist() == [[True, False, False, False], [True, False, False, False]]


@pytest.fixture(scope="module")
def video():
    world = ClevrerWorld(ClevrerConfig(width=96, height=64, frames=16, future_frames=6, launch_fraction=0.6,
                                       late_fraction=0.0, min_objects=3, max_objects=3))
    try:
        return simulate_video(world, (5, 0), 0, "video_00000.gif")
    finally:
        world.close()


def test_spin_trajectories_carry_the_truths_sliding_flag_in_the_actions_and_survive_a_pack(video, tmp_path):
    ann, truth = video
    plain, spun = video_trajectory(ann, truth), video_trajectory(ann, truth, spin=True)
    assert "sliding" not in plain.meta and not plain.actions[..., 2].any()
    frames = (*ann.motion_trajectory, *truth.future_trajectory)
    want = sliding_states(frames, spun.meta["object_ids"], {p.object_id: p.shape for p in ann.object_property})
    assert np.array_equal(spun.actions[..., 2] != 0, want) and np.allclose(spun.actions[..., 2][want], SLIDE_INPUT) and want.any()  # this video has a sliding sphere
    assert np.array_equal(spun.actions[..., :2], launch_actions(spun.positions)[..., :2])  # launches unchanged
    trajs = video_trajectories(ann, truth, counterfactuals=True, spin=True)
    assert all("sliding" in t.meta for t in trajs)
    save_trajectory_pack(tmp_path / "p.npz", trajs)
    for a, b in zip(trajs, load_trajectory_pack(tmp_path / "p.npz"), strict=True):
        assert np.array_equal(a.actions, b.actions) and a.meta == b.meta


def test_sliding_read_reads_a_braking_track_as_sliding_and_a_rolling_one_not():
    def track(v0, dv, n=9):  # centres of a straight slide, speed v0 units/s less dv a frame
        speeds = v0 + dv * np.arange(n - 1)
        return np.concatenate([[0.0], np.cumsum(speeds / 25.0)])[:, None] * np.array([[1.0, 0.0]])

    slides, start = sliding_read(track(3.0, -0.168))
    assert slides and start == pytest.approx(3.0, abs=1e-6)
    assert not sliding_read(track(3.0, -0.037))[0]
    assert not sliding_read(track(0.5, -0.168, 4))[0]  # slow by the end: no flag
    nan = track(3.0, -0.168)
    nan[3] = np.nan
    assert not sliding_read(nan)[0]


def _sphere_video(speeds: list[float]) -> VideoAnnotation:
    """One sphere moving along x at the given per-step speeds (units/s), a cube at rest far off."""
    xs = np.concatenate([[-2.0], -2.0 + np.cumsum(np.array(speeds) / 25.0)])
    props = (ObjectProperty(0, "red", "rubber", "sphere"), ObjectProperty(1, "blue", "metal", "cube"))
    traj = tuple(FrameStates(f, (ObjectState(0, (float(x), 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True),
                                 ObjectState(1, (2.5, 2.5, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True)))
                 for f, x in enumerate(xs))
    return VideoAnnotation(0, "video_00000.mp4", props, traj, ())


def test_spin_input_flags_a_sliding_sphere_until_it_would_roll_and_is_off_by_default():
    assert RolloutConfig().spin_input is False
    with pytest.raises(ConfigError, match="spin_input"):
        RolloutConfig(spin_input="false")  # a string from a settings file is refused, not taken as true
    state = np.full((30, 1, 3), np.nan)
    speeds = 6.0 - 0.168 * np.arange(29)  # 8 frames of sliding need a fast launch
    state[:, 0, 0] = np.concatenate([[0.0], np.cumsum(speeds / 25.0)])
    state[:, 0, 1:] = 0.0
    sphere, cube = np.array([0, 1, 0, 1, 0], float), np.array([1, 0, 0, 1, 0], float)  # SHAPES: cube, sphere, cylinder
    memory: dict = {}
    flags = [PropNetVideoDynamics._sliding(state, sphere, 0, t, memory) for t in range(8, 29)]
    # the window's first speed is 6.0: sliding while the speed stays above 5/7 of it, then rolling
    want = [speeds[t - 1] > ROLL_SPEED * 6.0 + 1e-9 for t in range(8, 29)]
    assert flags[0] and not flags[-1] and flags == want
    assert not PropNetVideoDynamics._sliding(state, cube, 0, 8, {})
    # a rollout with the input differs from one without only where a sphere slides
    braking = _sphere_video(list(6.0 - 0.168 * np.arange(12)))
    steady = _sphere_video([1.5] * 12)
    off = PropNetVideoDynamics.load(config=SHORT)
    on = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, spin_input=True))

    def xs(model, ann):
        return [fr.by_id()[0].location[0] for fr in model.future(ann, 4)[0]]

    assert xs(on, steady) == xs(off, steady)
    assert xs(on, braking) != xs(off, braking)


def test_grow_spin_input_gives_the_shipped_outputs_exactly_with_or_without_the_spin_input(video):
    import torch
    from torch_geometric.data import Batch

    from physics.graph.builder import GraphBuilder
    from physics.models.data import make_samples

    ann, truth = video
    shipped, _ = load_model(SHIPPED_CHECKPOINT)
    grown = grow_spin_input(load_model(SHIPPED_CHECKPOINT)[0])
    traj = video_trajectory(ann, truth, spin=True)
    batch = Batch.from_data_list(make_samples([traj], GraphBuilder(shipped.config.graph), max_samples=40, seed=0))
    spun = batch.action.clone()
    spun[:, 2] = SLIDE_INPUT  # every object gets the spin input
    plain = spun.clone()
    plain[:, 2] = 0.0
    with torch.no_grad():
        want = shipped.next_positions(batch, action=plain)
        assert torch.equal(grown.next_positions(batch, action=spun), want)
        assert torch.equal(grown.next_positions(batch, action=plain), want)
        assert not torch.equal(shipped.next_positions(batch, action=spun), want)  # the untrained weights it zeroes
    changed = [k for k, v in grown.state_dict().items() if not torch.equal(v, shipped.state_dict()[k])]
    assert changed == ["node_encoder.0.weight"]
    shipped.action_norm.mean[2] = 0.5
    with pytest.raises(ConfigError, match="centres the spin channel"):
        grow_spin_input(shipped)
