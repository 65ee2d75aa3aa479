"""The video Dynamics interface: ground truth answers the truth, the learned PropNet conforms and is
deterministic, one training step lowers its loss, and the state collision rule on hand-made states."""

from __future__ import annotations

import math
from dataclasses import replace as dataclass_replace
from pathlib import Path

import numpy as np
import pytest
import torch

from physics.errors import CheckpointError, ConfigError, DataError, StateError
from physics.models import load_model, make_model, preset
from physics.models.video_propnet import (
    NODE_ATTR_DIM,
    SHIPPED_CHECKPOINT,
    STATE_DIM,
    WORLD_RESTITUTION,
    PropNetVideoDynamics,
    RolloutConfig,
    _tracks,
    contact_step_weights,
    counterfactual_trajectory,
    edge_collisions,
    fitted_start,
    late_collision_start,
    launch_actions,
    load_trajectory_pack,
    lookahead_collisions,
    near_miss_candidates,
    near_miss_collisions,
    rollout_config,
    save_trajectory_pack,
    unknown_yaw_cubes,
    unrecorded_edge_collisions,
    velocity_fitted_start,
    video_trajectories,
    video_trajectory,
)
from physics.video_dynamics import (
    CUBE_MEAN_REACH,
    HALF_EXTENT,
    VIDEO_DYNAMICS,
    GroundTruthDynamics,
    VideoDynamics,
    make_video_dynamics,
    match_collisions,
    state_collisions,
    vote_collisions,
    yaw_of,
)
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_truth import simulate_video
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld

FRAMES, FUTURE = 16, 6
SHORT = RolloutConfig(future_frames=4)  # counterfactuals 4 frames past the video: fast tests


@pytest.fixture(scope="module")
def videos():
    """Two short simulated videos (no renders): (annotation, truth) each."""
    world = ClevrerWorld(ClevrerConfig(width=96, height=64, frames=FRAMES, future_frames=FUTURE, launch_fraction=0.3,
                                       late_fraction=0.2, min_objects=3, max_objects=3))
    try:
        return [simulate_video(world, (3, k), k, f"video_{k:05d}.gif") for k in range(2)]
    finally:
        world.close()


@pytest.fixture(scope="module")
def propnet():
    return PropNetVideoDynamics.load(config=SHORT)


def test_both_providers_conform_and_are_registered(videos, propnet):
    ann, truth = videos[0]
    assert {"gt", "propnet"} <= set(VIDEO_DYNAMICS.names())
    gt = make_video_dynamics("gt", truth=truth)
    assert isinstance(gt, GroundTruthDynamics) and isinstance(gt, VideoDynamics)
    assert isinstance(propnet, VideoDynamics)
    assert isinstance(make_video_dynamics("propnet"), PropNetVideoDynamics)
    with pytest.raises(ConfigError, match="truth"):
        make_video_dynamics("gt")
    with pytest.raises(ConfigError, match="unknown video dynamics"):
        make_video_dynamics("physx")
    with pytest.raises(CheckpointError):
        make_video_dynamics("propnet", checkpoint="/nonexistent/model.pt")


def test_ground_truth_returns_the_recorded_truth_exactly(videos):
    ann, truth = videos[0]
    gt = GroundTruthDynamics(truth)
    states, collisions = gt.future(ann, FUTURE)
    assert states == truth.future_trajectory and collisions == truth.future_collisions
    few, _ = gt.future(ann, 3)
    assert few == truth.future_trajectory[:3]
    for p in ann.object_property:
        assert gt.counterfactual(ann, p.object_id) == truth.counterfactual(p.object_id)
    assert gt.future(ann, FUTURE + 10)[0] == truth.future_trajectory  # no more than the world recorded
    with pytest.raises(DataError, match="-1 future frames"):
        gt.future(ann, -1)
    with pytest.raises(DataError, match="no counterfactual"):
        gt.counterfactual(ann, 99)
    with pytest.raises(DataError, match="asked about video 1"):
        gt.future(videos[1][0], 2)


def test_propnet_future_continues_from_the_last_observed_frame(videos, propnet):
    ann, _ = videos[0]
    states, collisions = propnet.future(ann, FUTURE)
    last = ann.motion_trajectory[-1]
    assert [f.frame_id for f in states] == list(range(last.frame_id + 1, last.frame_id + 1 + FUTURE))
    assert all({o.object_id for o in f.objects} == {o.object_id for o in last.objects} for f in states)
    assert all(math.isfinite(x) for f in states for o in f.objects for x in o.location + o.velocity)
    assert all(c.frame_id > last.frame_id for c in collisions)
    assert propnet.future(ann, 0) == ((), ())


def test_propnet_counterfactual_is_deterministic_and_drops_the_object(videos, propnet):
    ann, truth = videos[1]
    removed = ann.object_property[0].object_id
    a = propnet.counterfactual(ann, removed)
    b = propnet.counterfactual(ann, removed)
    assert a == b
    assert a.removed_object_id == removed and len(a.trajectory) == FRAMES + propnet.config.future_frames
    assert all(removed not in f.by_id() for f in a.trajectory)
    assert all(removed not in c.object_ids for c in a.collisions)
    assert a.trajectory[0].objects == tuple(o for o in ann.motion_trajectory[0].objects if o.object_id != removed)
    assert a.events[0].kind == "start" and any(e.kind == "end" and e.frame == FRAMES - 1 for e in a.events)
    with pytest.raises(DataError, match="no object 42"):
        propnet.counterfactual(ann, 42)


def test_objects_out_of_reach_of_the_removed_one_follow_the_video():
    """Two objects far apart: removing one leaves the other exactly on its observed states."""
    from physics.worlds.clevrer_annotation import ObjectProperty, VideoAnnotation

    def state(k, x, y, vx=0.0):
        return ObjectState(k, (x, y, 0.35), (0.0, 0.0, 0.0), (vx, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    frames = tuple(FrameStates(f, (state(0, -2.0 + 0.1 * f, -2.0, 2.5), state(1, 2.0, 2.0))) for f in range(10))
    ann = VideoAnnotation(0, "v.gif", (ObjectProperty(0, "red", "metal", "sphere"), ObjectProperty(1, "blue", "rubber", "cube")),
                          frames, ())
    cf = PropNetVideoDynamics.load(config=SHORT).counterfactual(ann, 1)
    assert tuple(f.objects[0] for f in cf.trajectory[:10]) == tuple(f.objects[0] for f in frames)


def _two_object_video(removed_path, other_path, collisions=()):
    from physics.worlds.clevrer_annotation import ObjectProperty, VideoAnnotation

    def state(k, xy):
        return ObjectState(k, (xy[0], xy[1], 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    frames = tuple(FrameStates(f, (state(0, removed_path[f]), state(1, other_path[f]))) for f in range(len(other_path)))
    props = (ObjectProperty(0, "red", "metal", "sphere"), ObjectProperty(1, "blue", "rubber", "cylinder"))
    return VideoAnnotation(0, "v.gif", props, frames, tuple(collisions))


def test_an_object_the_removed_one_passes_without_touching_follows_the_video():
    """Removing an object that passes 1 unit from another (no contact) changes nothing about the other."""
    passing = [(-2.0 + 0.2 * f, 1.0) for f in range(20)]
    resting = [(0.0, 0.0)] * 20
    ann = _two_object_video(passing, resting)
    cf = PropNetVideoDynamics.load(config=SHORT).counterfactual(ann, 0)
    assert tuple(f.objects for f in cf.trajectory[:20]) == tuple(
        tuple(o for o in f.objects if o.object_id == 1) for f in ann.motion_trajectory)


def test_an_object_the_removed_one_hits_is_predicted_from_just_before_the_contact():
    """The removed object strikes a resting one at frame 10: without it the other stays put, predicted from frame 8."""
    striker = [(-2.0 + 0.13 * f, 0.0) for f in range(11)] + [(-0.7, 0.0)] * 9
    struck = [(0.0, 0.0)] * 11 + [(0.15 * k, 0.0) for k in range(1, 10)]
    ann = _two_object_video(striker, struck, [Collision((0, 1), 10, (-0.35, 0.0, 0.35))])
    dyn = PropNetVideoDynamics.load(config=SHORT)
    assert dyn.config.contact_lead == 2
    cf = dyn.counterfactual(ann, 0)
    xs = [f.by_id()[1].location[0] for f in cf.trajectory[:20]]
    assert xs[:8] == [0.0] * 8  # followed, exactly the video's states
    assert all(abs(x) < 0.1 for x in xs[8:])  # predicted: no push without the striker
    assert all(0 not in c.object_ids for c in cf.collisions)


def test_one_training_step_lowers_the_loss(videos):
    from torch_geometric.data import Batch

    from physics.graph.builder import GraphBuilder
    from physics.models.data import make_samples

    torch.manual_seed(0)
    model = make_model("propnet", preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM))
    trajs = [video_trajectory(a, t) for a, t in videos]
    graphs = make_samples(trajs, GraphBuilder(model.config.graph), max_samples=40, seed=0)
    model.fit_normalizers(graphs)
    batch = Batch.from_data_list(graphs)
    model.eval()
    with torch.no_grad():
        before = float(model.loss(batch))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    opt.zero_grad()
    model.loss(batch).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        assert float(model.loss(batch)) < before


def test_video_trajectory_holds_states_attributes_and_launches(videos):
    ann, truth = videos[0]
    traj = video_trajectory(ann, truth)
    n = len(ann.object_property)
    assert traj.positions.shape == (FRAMES + FUTURE, n, STATE_DIM) and traj.node_attr.shape == (n, NODE_ATTR_DIM)
    assert traj.edges.shape == (2, n * (n - 1))
    launched = {(o.launch_frame, o.object_id) for o in truth.initial_state.objects if o.velocity != (0.0, 0.0)}
    found = {(int(t), traj.meta["object_ids"][k]) for t, k in zip(*np.nonzero(np.abs(traj.actions).sum(-1)), strict=True)}
    assert found <= launched and found  # every launch found is a true one


def test_counterfactual_trajectories_hold_the_rerun_without_the_removed_object(videos):
    ann, truth = videos[1]
    removed = ann.object_property[0].object_id
    traj = counterfactual_trajectory(ann, truth, removed)
    cf = truth.counterfactual(removed)
    kept = [p.object_id for p in ann.object_property if p.object_id != removed]
    assert traj.meta["object_ids"] == kept and traj.meta["removed"] == removed and traj.meta["video"] == ann.scene_index
    assert traj.positions.shape == (len(cf.trajectory), len(kept), STATE_DIM)
    for f, frame in enumerate(cf.trajectory):
        for i, k in enumerate(kept):
            assert traj.positions[f, i, :2] == pytest.approx(frame.by_id()[k].location[:2], abs=1e-6)
    assert traj.meta["collision_frames"] == sorted({c.frame_id - cf.trajectory[0].frame_id for c in cf.collisions})
    every = video_trajectories(ann, truth, counterfactuals=True)
    assert len(every) == 1 + len(ann.object_property) and every[0].meta["removed"] is None
    assert [t.meta["removed"] for t in every[1:]] == [p.object_id for p in ann.object_property]
    factual = every[0].meta["collision_frames"]
    assert factual == sorted({c.frame_id for c in ann.collision + truth.future_collisions})


def test_a_trajectory_pack_reads_back_the_same_trajectories(videos, tmp_path):
    trajs = [t for a, tr in videos for t in video_trajectories(a, tr, counterfactuals=True)]
    path = tmp_path / "pack.npz"
    save_trajectory_pack(path, trajs)
    back = load_trajectory_pack(path)
    assert len(back) == len(trajs)
    for a, b in zip(trajs, back, strict=True):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.actions, b.actions)
        assert np.array_equal(a.node_attr, b.node_attr) and np.array_equal(a.edges, b.edges) and a.meta == b.meta
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="damaged"):
        load_trajectory_pack(path)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match="not a .npz file"):
        load_trajectory_pack(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", positions=np.zeros(3))
    with pytest.raises(DataError, match="not a video trajectory pack"):
        load_trajectory_pack(tmp_path / "other.npz")
    with pytest.raises(DataError, match="not found"):
        load_trajectory_pack(tmp_path / "none.npz")


def test_a_pack_lacking_an_array_or_holding_nan_names_the_file_and_what(videos, tmp_path):
    """Before: "is damaged: 'positions'" (a KeyError's text) and "video 0: positions holds NaN" (no file)."""
    path = tmp_path / "pack.npz"
    save_trajectory_pack(path, [video_trajectory(*videos[0])])
    arrays = dict(np.load(path))
    np.savez(tmp_path / "short.npz", **{k: v for k, v in arrays.items() if k != "positions"})
    with pytest.raises(DataError, match=r"short.npz is damaged: it lacks the array 'positions'"):
        load_trajectory_pack(tmp_path / "short.npz")
    arrays["positions"][4] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(StateError, match=r"nan.npz: .*positions holds NaN"):
        load_trajectory_pack(tmp_path / "nan.npz")


def test_contact_weights_cover_the_samples_whose_targets_reach_a_contact(videos):
    ann, truth = videos[0]
    traj = dataclass_replace(video_trajectory(ann, truth), meta={"collision_frames": [10], "name": "v"})
    w = contact_step_weights(traj, 5.0, after=3, horizon=2, before=1)
    # a sample at t predicts t+1, t+2: it reaches frames 9 (10 - before) .. 13 (10 + after) for t in 7 .. 12
    assert np.flatnonzero(w == 5.0).tolist() == [7, 8, 9, 10, 11, 12] and set(w.tolist()) == {1.0, 5.0}
    with pytest.raises(ConfigError):
        contact_step_weights(traj, -1.0, after=3)


def test_contact_lead_starts_long_unrolls_before_the_contact(videos):
    ann, truth = videos[0]
    traj = dataclass_replace(video_trajectory(ann, truth), meta={"collision_frames": [16], "name": "v"})
    assert traj.num_steps > 20
    # 12-step samples starting 6 frames before the contact to 1 after: each holds the contact and 5+ frames past it
    w = contact_step_weights(traj, 4.0, after=2, horizon=12, lead=6)
    assert np.flatnonzero(w == 4.0).tolist() == list(range(10, 18))
    # without lead the window reaches back a whole horizon (t + 12 >= 15), so some samples end at the contact
    assert np.flatnonzero(contact_step_weights(traj, 4.0, after=2, horizon=12) == 4.0).tolist() == list(range(3, 18))
    with pytest.raises(ConfigError, match="lead"):
        contact_step_weights(traj, 4.0, after=2, horizon=12, lead=-1)


def test_samples_are_drawn_with_the_step_weights():
    from physics.graph.builder import GraphBuilder
    from physics.models.data import make_samples

    cfg = preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM, edge_attr_dim=0)
    pos = np.zeros((40, 2, 3), np.float32)
    pos[:, 1, 0] = 2.0 + 0.01 * np.arange(40)  # frame t's x encodes t
    w = np.zeros(40)
    w[20:25] = 1.0
    from physics.models.video_propnet import _make_trajectory

    traj = _make_trajectory(pos, np.zeros((2, NODE_ATTR_DIM)), 25, {"name": "w", "step_weights": w.tolist()})
    graphs = make_samples([traj], GraphBuilder(cfg.graph), max_samples=5, seed=3)
    steps = sorted(round((float(g.pos_hist[1, -1, 0]) - 2.0) / 0.01) for g in graphs)
    assert steps == [20, 21, 22, 23, 24]  # only the weighted steps
    plain = dataclass_replace(traj, meta={"name": "p"})
    assert len(make_samples([plain], GraphBuilder(cfg.graph), max_samples=5, seed=3)) == 5
    bad = dataclass_replace(traj, meta={"name": "b", "step_weights": [1.0] * 3})
    with pytest.raises(DataError, match="step_weights"):
        make_samples([bad], GraphBuilder(cfg.graph), max_samples=5)


def test_launch_actions_find_unprovoked_starts_only():
    pos = np.zeros((6, 3, 3))
    pos[:, 1, 0] = 3.0  # object 1 rests far away, launched at frame 2
    pos[3:, 1, 0] = 3.0 + 0.2 * np.arange(1, 4)
    pos[:, 2, 0] = -3.0  # object 2 is pushed at frame 2 by object 0 arriving beside it
    pos[3:, 2, 0] = -3.0 + 0.2 * np.arange(1, 4)
    pos[:, 0, 0] = -3.7
    act = launch_actions(pos)
    assert np.allclose(act[2, 1], [0.2, 0.0, 0.0]) and np.abs(act).sum() == pytest.approx(0.2)


def _frames(tracks: dict[int, list[tuple[float, float, float]]]) -> list[FrameStates]:
    """Frames from per-object (x, y, yaw) lists."""
    n = len(next(iter(tracks.values())))
    return [FrameStates(f, tuple(ObjectState(k, (xs[f][0], xs[f][1], 0.35), (0.0, 0.0, xs[f][2]), (0.0,) * 3, (0.0,) * 3, True)
                                 for k, xs in tracks.items())) for f in range(n)]


def test_collision_rule_counts_a_head_on_touch_once_and_a_later_one_again():
    d = 2 * HALF_EXTENT
    # two spheres close in, touch for three frames, part, and touch again 8 frames later (gap is 5)
    gaps = [0.6, 0.3, 0.0, -0.01, 0.0, 0.2, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.2, 0.0, 0.3]  # 0: touching
    frames = _frames({0: [(0.0, 0.0, 0.0)] * len(gaps), 1: [(d + g, 0.0, 0.0) for g in gaps]})
    got = state_collisions(frames, {0: "sphere", 1: "sphere"}, substeps=1)
    assert [(c.object_ids, c.frame_id) for c in got] == [((0, 1), 2), ((0, 1), 13)]
    assert got[0].location == pytest.approx((d / 2, 0.0, 0.35))


def test_collision_rule_uses_cube_footprints_and_catches_bounces_within_a_frame():
    hc = HALF_EXTENT / math.sqrt(2)
    near = HALF_EXTENT + hc + 0.05  # a sphere this far from a cube's centre misses its face ...
    straight = _frames({0: [(0.0, 0.0, 0.0)] * 2, 1: [(near, 0.0, 0.0)] * 2})
    assert state_collisions(straight, {0: "cube", 1: "sphere"}) == ()
    turned = _frames({0: [(0.0, 0.0, math.pi / 4)] * 2, 1: [(near, 0.0, 0.0)] * 2})  # ... but meets its corner
    assert len(state_collisions(turned, {0: "cube", 1: "sphere"})) == 1
    apart = _frames({0: [(0.0, 0.0, 0.0)] * 2, 1: [(2 * HALF_EXTENT + 0.01, 0.0, 0.0)] * 2})
    assert state_collisions(apart, {0: "sphere", 1: "cylinder"}) == ()
    # a sphere comes in at 0.4 a frame and bounces back inside the frame: never touching at a frame
    xs = [1.8, 1.4, 1.0, 1.0, 1.4]
    bounce = _frames({0: [(0.0, 0.0, 0.0)] * 5, 1: [(x, 0.0, 0.0) for x in xs]})
    assert [c.frame_id for c in state_collisions(bounce, {0: "sphere", 1: "sphere"})] == [3]
    with pytest.raises(ConfigError):
        state_collisions(bounce, {}, gap=0)


def test_a_cube_listed_as_a_disc_reaches_that_radius_every_way():
    hc = HALF_EXTENT / math.sqrt(2)
    # a sphere slides in along x, slowing, and stops 0.63 from an unturned cube's centre: 0.03 off its
    # face (0.02 on the rule's bounce path), inside a disc of 0.315 (the yaw-averaged reach of the square)
    xs = [0.95, 0.83, 0.74, 0.68, 0.65, 0.635, 0.63, 0.63]
    frames = _frames({0: [(0.0, 0.0, 0.0)] * len(xs), 1: [(x, 0.0, 0.0) for x in xs]})
    shapes = {0: "cube", 1: "sphere"}
    assert 0.63 - HALF_EXTENT - hc == pytest.approx(0.0325, abs=1e-3)
    assert state_collisions(frames, shapes) == ()
    got = state_collisions(frames, shapes, discs={0: 0.315})
    assert [(c.object_ids, c.frame_id) for c in got] == [((0, 1), 3)]  # 0.65 on the bounce path, under 0.665
    assert state_collisions(frames, shapes, discs={0: 0.24}) == ()  # 0.62 at the closest, over 0.59
    # a disc that is not a cube (a sphere listed) shrinks or grows the same way
    spheres = {0: "sphere", 1: "sphere"}
    far = _frames({0: [(0.0, 0.0, 0.0)] * 2, 1: [(0.72, 0.0, 0.0)] * 2})
    assert state_collisions(far, spheres) == () and len(state_collisions(far, spheres, discs={1: 0.38})) == 1
    with pytest.raises(ConfigError, match="disc radii"):
        state_collisions(frames, shapes, discs={0: 0.0})
    with pytest.raises(ConfigError, match="disc radii"):
        state_collisions(frames, shapes, discs={0: math.nan})


def _still_annotation(shapes: dict[int, str], yaws: dict[int, float], at: dict[int, tuple[float, float]],
                      frames: int = 8) -> VideoAnnotation:
    colors = ("red", "blue", "green")
    props = tuple(ObjectProperty(k, colors[i], "rubber", shapes[k]) for i, k in enumerate(sorted(shapes)))
    traj = tuple(FrameStates(f, tuple(ObjectState(k, (*at[k], 0.35), (0.0, 0.0, yaws[k]), (0.0,) * 3, (0.0,) * 3, True)
                                      for k in sorted(shapes))) for f in range(frames))
    return VideoAnnotation(0, "video_00000.mp4", props, traj, ())


def test_unknown_yaw_cubes_are_cubes_whose_orientation_is_never_given():
    ann = _still_annotation({0: "cube", 1: "cube", 2: "sphere"}, {0: 0.0, 1: 0.4, 2: 0.0},
                            {0: (0.0, 0.0), 1: (2.0, 0.0), 2: (4.0, 0.0)})
    assert unknown_yaw_cubes(ann) == {0}
    # one frame with a yaw is enough to know it
    turned = dataclass_replace(ann, motion_trajectory=(*ann.motion_trajectory[:-1], FrameStates(7, tuple(
        dataclass_replace(o, orientation=(0.0, 0.0, 0.1)) for o in ann.motion_trajectory[-1].objects))))
    assert unknown_yaw_cubes(turned) == frozenset()


def test_unknown_yaw_reach_makes_an_unturned_cube_a_disc_in_the_future_rule_unless_off():
    ann = _still_annotation({0: "cube", 1: "sphere"}, {0: 0.0, 1: 0.0}, {0: (0.0, 0.0), 1: (1.07, 0.0)})
    last = ann.motion_trajectory[-1].frame_id
    # hand-made future: the sphere slides in and comes to rest 0.63 from the cube's centre (the test above)
    future = tuple(FrameStates(last + 1 + i, (
        ObjectState(0, (0.0, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True),
        ObjectState(1, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True)))
        for i, x in enumerate((0.95, 0.83, 0.74, 0.68, 0.65, 0.635, 0.63)))
    frames = (*ann.motion_trajectory, *future)
    plain = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, unknown_yaw_reach=0.0))
    disc = PropNetVideoDynamics.load(config=SHORT)
    assert RolloutConfig().unknown_yaw_reach == 0.315  # the shipped default (held-out seed 61937)
    assert plain.future_collisions(ann, frames) == ()
    assert [(c.object_ids, c.frame_id) for c in disc.future_collisions(ann, frames)] == [((0, 1), last + 4)]
    # a cube whose yaw is given keeps its square footprint under the option
    known = _still_annotation({0: "cube", 1: "sphere"}, {0: 1e-3, 1: 0.0}, {0: (0.0, 0.0), 1: (1.07, 0.0)})
    assert disc.future_collisions(known, frames) == ()
    for bad in (-0.1, 0.5, math.nan):
        with pytest.raises(ConfigError, match="unknown_yaw_reach"):
            RolloutConfig(unknown_yaw_reach=bad)


def test_edge_frames_makes_a_contact_recorded_at_the_end_and_still_on_a_future_collision():
    d = 2 * HALF_EXTENT
    # two spheres touching (0.01 overlap) through the last frames; the annotation records their collision at frame 6
    ann = _still_annotation({0: "sphere", 1: "sphere"}, {0: 0.0, 1: 0.0}, {0: (0.0, 0.0), 1: (d - 0.01, 0.0)})
    last = ann.motion_trajectory[-1].frame_id
    ann = dataclass_replace(ann, collision=(Collision((0, 1), last - 1, (d / 2, 0.0, 0.35)),))

    def future(xs):  # hand-made predicted frames: sphere 1 at these x
        return (*ann.motion_trajectory, *(FrameStates(last + 1 + i, (
            ObjectState(0, (0.0, 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True),
            ObjectState(1, (x, 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True))) for i, x in enumerate(xs)))

    still_on = future([d - 0.005, d + 0.1, d + 0.3])  # touching at the first predicted frame, then apart
    parted = future([d + 0.02, d + 0.1, d + 0.3])  # apart from the first predicted frame on
    assert RolloutConfig().edge_frames == 0  # the shipped default: off
    plain = PropNetVideoDynamics.load(config=SHORT)
    edge2 = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_frames=2))
    edge1 = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_frames=1))
    assert plain.future_collisions(ann, still_on) == ()  # the touch began in the observed frames: no new collision
    got = edge2.future_collisions(ann, still_on)
    assert [(c.object_ids, c.frame_id) for c in got] == [((0, 1), last + 1)]
    assert got[0].location == pytest.approx(((d - 0.005) / 2, 0.0, 0.35))
    assert edge1.future_collisions(ann, still_on) == ()  # recorded at last - 1: not within the last frame
    assert edge2.future_collisions(ann, parted) == ()  # the contact ended with the video
    # a pair the rollout finds again later keeps that collision only
    again = future([d - 0.005, d + 0.1, d + 0.3, d + 0.3, d + 0.3, d + 0.3, d + 0.3, d + 0.3, d - 0.01])
    assert [c.frame_id for c in edge2.future_collisions(ann, again)] == [last + 9]
    assert [c.frame_id for c in plain.future_collisions(ann, again)] == [last + 9]
    # a pair never recorded by the annotation is no edge collision; no predicted frame: none
    assert edge_collisions(dataclass_replace(ann, collision=()), still_on, (), 2, 0.0) == []
    assert edge_collisions(ann, ann.motion_trajectory, (), 2, 0.0) == []
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="edge_frames"):
            RolloutConfig(edge_frames=bad)


def test_edge_unrecorded_makes_a_rule_touch_at_the_last_observed_frame_the_annotation_lacks_a_future_collision():
    """A case met in perceived videos (docs/results/clevrer.md, nsdr20, video 63): the rule dates a touch at the
    last observed frame (the world a frame later), so the future filter drops it and the annotation has none; with
    ``edge_unrecorded`` it is a future collision at the first predicted frame when the pair still touches there.
    Off by default; counterfactuals do not read it."""
    d = 2 * HALF_EXTENT
    ann = _still_annotation({0: "sphere", 1: "sphere"}, {0: 0.0, 1: 0.0}, {0: (0.0, 0.0), 1: (d + 1.0, 0.0)})
    last = ann.motion_trajectory[-1].frame_id

    def state(k, x):
        return ObjectState(k, (x, 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True)

    # sphere 1 slides at sphere 0 and first touches it on the path into the last observed frame
    moving = tuple(FrameStates(f, (state(0, 0.0), state(1, d + 0.05 + 0.1 * (last - 1 - f)))) for f in range(last + 1))
    ann = dataclass_replace(ann, motion_trajectory=moving)

    def future(xs):
        return (*moving, *(FrameStates(last + 1 + i, (state(0, 0.0), state(1, x))) for i, x in enumerate(xs)))

    still_on = future([d - 0.06, d + 0.1, d + 0.3])
    parted = future([d + 0.02, d + 0.1, d + 0.3])
    shapes = {0: "sphere", 1: "sphere"}
    assert [(c.object_ids, c.frame_id) for c in state_collisions(still_on, shapes)] == [((0, 1), last)]
    assert RolloutConfig().edge_unrecorded is False  # off by default
    plain = PropNetVideoDynamics.load(config=SHORT)
    on = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_unrecorded=True))
    assert plain.future_collisions(ann, still_on) == ()  # dated at the last observed frame: not a future one
    got = on.future_collisions(ann, still_on)
    assert [(c.object_ids, c.frame_id) for c in got] == [((0, 1), last + 1)]
    assert got[0].location == pytest.approx(((d - 0.06) / 2, 0.0, 0.35))
    assert on.future_collisions(ann, parted) == ()  # apart at the first predicted frame: none
    # a collision the annotation records (the perceiver saw it) is edge_frames' business, not this rule's
    seen = dataclass_replace(ann, collision=(Collision((0, 1), last, (d / 2, 0.0, 0.35)),))
    assert on.future_collisions(seen, still_on) == ()
    ruled = state_collisions(still_on, shapes)
    assert unrecorded_edge_collisions(ann, moving, ruled, (), 10, 0.0) == []  # no predicted frame: none
    assert unrecorded_edge_collisions(ann, still_on, ruled, ruled, 10, 0.0) == []  # the future already has the pair
    # counterfactuals and rolled-out states are the same with it on
    video = _sphere_past_a_resting_cylinder(0.8)
    base = dataclass_replace(SHORT, future_frames=8)
    off_dyn = PropNetVideoDynamics.load(config=base)
    on_dyn = PropNetVideoDynamics.load(config=dataclass_replace(base, edge_unrecorded=True))
    assert on_dyn.future(video, 8)[0] == off_dyn.future(video, 8)[0]
    for k in (0, 1, 2):
        assert on_dyn.counterfactual(video, k) == off_dyn.counterfactual(video, k)
    for bad in (1, "yes", None):
        with pytest.raises(ConfigError, match="edge_unrecorded must be true or false"):
            RolloutConfig(edge_unrecorded=bad)


def test_edge_tolerance_lets_an_edge_pair_a_hair_apart_at_the_first_predicted_frame_count_and_is_off_by_default():
    """A pair perceived colliding at the video's end reads 0.008 apart at the first predicted frame; the
    edge rule finds it with ``edge_tolerance`` 0.01 only, never beyond it, and counterfactuals do not read it."""
    d = 2 * HALF_EXTENT
    ann = _still_annotation({0: "sphere", 1: "sphere"}, {0: 0.0, 1: 0.0}, {0: (0.0, 0.0), 1: (d - 0.01, 0.0)})
    last = ann.motion_trajectory[-1].frame_id
    ann = dataclass_replace(ann, collision=(Collision((0, 1), last - 1, (d / 2, 0.0, 0.35)),))

    def future(xs):
        return (*ann.motion_trajectory, *(FrameStates(last + 1 + i, (
            ObjectState(0, (0.0, 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True),
            ObjectState(1, (x, 0.0, 0.35), (0.0,) * 3, (0.0,) * 3, (0.0,) * 3, True))) for i, x in enumerate(xs)))

    hair = future([d + 0.008, d + 0.1, d + 0.3])  # 0.008 apart at the first predicted frame, then apart
    wide = future([d + 0.02, d + 0.1, d + 0.3])  # 0.02 apart: beyond the tolerance
    assert RolloutConfig().edge_tolerance is None  # off: the future rule's tolerance (0)
    plain = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_frames=2))
    tol = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_frames=2, edge_tolerance=0.01))
    assert plain.future_collisions(ann, hair) == ()
    assert [(c.object_ids, c.frame_id) for c in tol.future_collisions(ann, hair)] == [((0, 1), last + 1)]
    assert tol.future_collisions(ann, wide) == ()
    # without edge_frames the tolerance adds nothing
    assert PropNetVideoDynamics.load(config=dataclass_replace(SHORT, edge_tolerance=0.01)).future_collisions(ann, hair) == ()
    moving = _sphere_past_a_resting_cylinder(0.8)
    base = dataclass_replace(SHORT, future_frames=8, edge_frames=2)
    off = PropNetVideoDynamics.load(config=base)
    on = PropNetVideoDynamics.load(config=dataclass_replace(base, edge_tolerance=0.01))
    assert on.future(moving, 8)[0] == off.future(moving, 8)[0]
    for k in (0, 1, 2):
        assert on.counterfactual(moving, k) == off.counterfactual(moving, k)
    for bad in (-0.01, math.nan, math.inf, True):
        with pytest.raises(ConfigError, match="edge_tolerance"):
            RolloutConfig(edge_tolerance=bad)


def test_yaw_discs_cubes_makes_a_cube_with_a_given_yaw_a_disc_in_the_collision_rule_only():
    known = _still_annotation({0: "cube", 1: "sphere"}, {0: 1e-3, 1: 0.0}, {0: (0.0, 0.0), 1: (1.07, 0.0)})
    last = known.motion_trajectory[-1].frame_id
    future = tuple(FrameStates(last + 1 + i, (
        ObjectState(0, (0.0, 0.0, 0.35), (0.0, 0.0, 1e-3), (0.0,) * 3, (0.0,) * 3, True),
        ObjectState(1, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True)))
        for i, x in enumerate((0.95, 0.83, 0.74, 0.68, 0.65, 0.635, 0.63)))
    frames = (*known.motion_trajectory, *future)
    assert RolloutConfig().yaw_discs == "unknown"  # the shipped default: a given yaw keeps the square
    square = PropNetVideoDynamics.load(config=SHORT)
    every = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, yaw_discs="cubes"))
    assert square.future_collisions(known, frames) == ()
    assert [(c.object_ids, c.frame_id) for c in every.future_collisions(known, frames)] == [((0, 1), last + 4)]
    # the yaw still reaches the PropNet: its orientation channel is the given yaw, not the disc's zero
    tracks = _tracks(known, frames)
    assert np.allclose(tracks[0].xyt[:, 2], 1e-3)
    # off with unknown_yaw_reach 0: no disc whatever yaw_discs says
    off = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, yaw_discs="cubes", unknown_yaw_reach=0.0))
    assert off.future_collisions(known, frames) == ()
    with pytest.raises(ConfigError, match="yaw_discs"):
        RolloutConfig(yaw_discs="all")


def test_yaw_input_zeros_feeds_the_propnet_zeros_and_carries_the_observed_yaw_to_the_collision_rule():
    at = {0: (0.0, 0.0), 1: (1.2, 0.3)}
    known = _still_annotation({0: "cube", 1: "sphere"}, {0: 0.5, 1: 0.0}, at)
    unturned = _still_annotation({0: "cube", 1: "sphere"}, {0: 0.0, 1: 0.0}, at)
    assert RolloutConfig().yaw_input == "given"  # the shipped default: the PropNet sees the annotation's yaw
    given = PropNetVideoDynamics.load(config=SHORT)
    zeros = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, yaw_input="zeros"))

    def xy(frames):
        return np.array([[o.location[:2] for o in fr.objects] for fr in frames])

    def yaws(frames):
        return [yaw_of(fr.by_id()[0].orientation) for fr in frames]

    with_yaw, _ = zeros.future(known, 6)
    without, _ = given.future(unturned, 6)
    turned, _ = given.future(known, 6)
    # the PropNet's input is the same as with no yaw at all: the same predicted centres
    assert np.allclose(xy(with_yaw), xy(without))
    assert not np.allclose(xy(turned), xy(without))  # (the yaw does reach it by default)
    # every predicted frame keeps the cube's last observed yaw, exactly
    assert yaws(with_yaw) == [0.5] * 6
    # counterfactual frames too: the sphere removed, the cube is followed then carried on at 0.5
    cf = zeros.counterfactual(known, 1)
    assert len(cf.trajectory) == len(known.motion_trajectory) + SHORT.future_frames
    assert all(abs(y - 0.5) < 1e-12 for y in yaws(cf.trajectory))
    # a given yaw is no unknown yaw: the cube stays a square in the collision rule
    assert unknown_yaw_cubes(known) == frozenset()
    with pytest.raises(ConfigError, match="yaw_input"):
        RolloutConfig(yaw_input="fitted")


def test_approach_speed_keeps_closing_touches_and_drops_neighbours_at_rest():
    d = 2 * HALF_EXTENT
    # two spheres resting 0.02 apart, and two closing in at 0.1 a frame (2.5 units/s) to 0.02 apart
    rest = _frames({0: [(0.0, 0.0, 0.0)] * 4, 1: [(d + 0.02, 0.0, 0.0)] * 4})
    come = _frames({0: [(0.0, 0.0, 0.0)] * 4, 1: [(d + g, 0.0, 0.0) for g in (0.32, 0.22, 0.12, 0.02)]})
    shapes = {0: "sphere", 1: "sphere"}
    assert state_collisions(rest, shapes) == () and state_collisions(come, shapes) == ()  # 0.02 apart: no touch
    assert len(state_collisions(rest, shapes, tolerance=0.03)) == 1  # a tolerance alone makes neighbours collide
    assert state_collisions(rest, shapes, tolerance=0.03, approach_speed=0.5) == ()
    got = state_collisions(come, shapes, tolerance=0.03, approach_speed=0.5)
    assert [c.frame_id for c in got] == [3]
    assert state_collisions(come, shapes, tolerance=0.03, approach_speed=3.0) == ()  # closing at 2.5 units/s only
    with pytest.raises(ConfigError, match="approach_speed"):
        state_collisions(come, shapes, approach_speed=-1.0)


def test_votes_keep_the_collisions_enough_rollouts_agree_on():
    def c(pair, f, x=0.0):
        return Collision(pair, f, (x, 0.0, 0.35))

    members = [
        [c((0, 1), 10, 1.0), c((1, 2), 40)],
        [c((1, 0), 12, 3.0)],
        [c((0, 1), 11, 2.0), c((0, 2), 20)],
        [c((0, 1), 30)],  # the same pair far later: another collision
    ]
    assert vote_collisions(members, 3, window=5) == (Collision((0, 1), 11, (2.0, 0.0, 0.35)),)  # median frame, mean place
    union = vote_collisions(members, 1, window=5)
    assert [(x.object_ids, x.frame_id) for x in union] == [((0, 1), 11), ((0, 2), 20), ((0, 1), 30), ((1, 2), 40)]
    assert vote_collisions(members, 2, window=1) == (Collision((0, 1), 10, (1.5, 0.0, 0.35)),)  # frame 12 too far
    assert vote_collisions(members, 4, window=50) == (Collision((0, 1), 11, (1.5, 0.0, 0.35)),)
    assert vote_collisions([[c((0, 1), 10)], [c((0, 1), 10)]], 2, window=0) != ()  # one member twice is one vote ...
    assert vote_collisions([[c((0, 1), 10), c((0, 1), 12)], []], 2, window=5) == ()  # ... not two
    with pytest.raises(ConfigError, match="votes"):
        vote_collisions(members, 0, window=5)


def test_an_ensemble_of_one_is_the_plain_rollout_and_members_differ_reproducibly(videos, propnet):
    ann, _ = videos[0]
    plain = propnet.future(ann, FUTURE)
    assert PropNetVideoDynamics.load(config=dataclass_replace(SHORT, ensemble=1, votes=1)).future(ann, FUTURE) == plain
    cfg = dataclass_replace(SHORT, ensemble=4, votes=2, ensemble_starts=2, ensemble_shift=0.05, ensemble_turn=0.1,
                            ensemble_speed=0.1)
    ens = PropNetVideoDynamics.load(config=cfg)
    runs = ens.future_runs(ann, FUTURE)
    assert len(runs) == 4 and runs[0].frames == propnet.future_runs(ann, FUTURE)[0].frames
    last = len(ann.motion_trajectory)
    tails = [r.frames[last - 2 :] for r in runs]
    assert all(t != tails[0] for t in tails[1:])  # each member starts elsewhere or perturbed
    assert runs[1].predicted[last - 1].all() and not runs[2].predicted[last - 1].any()  # member 1 starts a frame back
    assert ens.future_runs(ann, FUTURE)[3].frames == runs[3].frames  # reproducible
    states, collisions = ens.future(ann, FUTURE)
    assert states == plain[0]  # member 0's states; the collisions are the vote's
    members = [ens.future_collisions(ann, r.frames) for r in runs]
    assert collisions == vote_collisions(members, 2, cfg.vote_window)
    with pytest.raises(ConfigError, match="votes"):
        RolloutConfig(ensemble=2, votes=3)
    with pytest.raises(ConfigError, match="unknown"):
        rollout_config({"ensembel": 3})
    assert rollout_config({"ensemble": 3, "votes": 2}).ensemble == 3
    assert isinstance(make_video_dynamics("propnet", settings={"future_tolerance": 0.02}), PropNetVideoDynamics)
    with pytest.raises(ConfigError, match="no rollout settings"):
        make_video_dynamics("gt", truth=videos[0][1], settings={"ensemble": 3})


def test_fitted_start_smooths_a_jittery_slide_and_keeps_touches_gaps_and_other_frames():
    t = np.arange(12, dtype=float)
    slide = np.stack([0.1 * t - 0.002 * t * t, 0.05 * t, np.zeros(12)], axis=1)  # decelerating along x
    jitter = np.array([0.01, -0.01] * 6)
    noisy = slide.copy()
    noisy[:, 0] += jitter
    bounced = slide.copy()
    bounced[9:, :2] = bounced[8, :2] - (bounced[9:, :2] - bounced[8, :2])  # turned back at frame 8
    gap = slide.copy()
    gap[6] = np.nan
    obs = np.stack([noisy, bounced, gap], axis=1)  # [T, 3, 3]
    out = fitted_start(obs, t_pred=12, history=2, window=8, residual=0.03)
    np.testing.assert_allclose(out[9:, 0, :2], slide[9:, :2], atol=0.01)  # jitter gone from the history
    assert np.abs(np.diff(out[9:, 0, 0]) - np.diff(slide[9:, 0])).max() < 0.01 < np.abs(np.diff(noisy[9:, 0]) - np.diff(slide[9:, 0])).max()
    np.testing.assert_array_equal(out[:9], obs[:9])  # only the history frames change
    np.testing.assert_array_equal(out[:, 1], obs[:, 1])  # the touch inside the window: observed history kept
    np.testing.assert_array_equal(out[:, 2], obs[:, 2])  # a gap inside the window: kept
    np.testing.assert_array_equal(out[:, 0, 2], obs[:, 0, 2])  # the orientation channel is never fitted
    np.testing.assert_array_equal(fitted_start(obs, t_pred=5, history=2, window=8, residual=0.03), obs)  # too early
    with pytest.raises(ConfigError, match="start_fit 3"):
        fitted_start(obs, t_pred=12, history=2, window=3, residual=0.03)
    with pytest.raises(ConfigError, match="start_fit"):
        RolloutConfig(start_fit=-1)
    with pytest.raises(ConfigError, match="fit_residual"):
        RolloutConfig(start_fit=8, fit_residual=math.nan)


def test_start_fit_changes_futures_only(videos):
    ann, _ = videos[0]
    plain = PropNetVideoDynamics.load(config=SHORT)
    fitted = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, start_fit=6, fit_residual=10.0))
    oid = ann.object_property[0].object_id
    assert fitted.counterfactual(ann, oid) == plain.counterfactual(ann, oid)
    last = len(ann.motion_trajectory)
    a, b = plain.future_runs(ann, FUTURE)[0].frames, fitted.future_runs(ann, FUTURE)[0].frames
    assert a[:last] == b[:last] and a[last:] != b[last:]  # observed frames as recorded, the rollout from the fit
    with pytest.raises(ConfigError, match="start_fit 2 frames cannot fit"):  # refused when built, not at a rollout
        PropNetVideoDynamics.load(config=dataclass_replace(SHORT, start_fit=2))


def test_velocity_fitted_start_gives_a_late_entrant_its_fitted_slope_and_skips_rest_collisions_and_short_tracks():
    t = np.arange(16, dtype=float)
    slide = np.stack([0.16 * t - 0.003 * t * t, 0.02 * t, np.zeros(16)], axis=1)  # decelerating along x
    late = slide.copy()
    late[:8] = np.nan  # first seen at frame 8: 8 frames before t_pred 16
    late[8:, 0] += np.array([0.0, 0.01, -0.01, 0.01, -0.01, 0.0, 0.01, -0.02])  # jitter, the last frame's jump
    struck = slide.copy()
    struck[:6] = struck[6]  # at rest until a collision at frame 12; jitter after
    struck[13:, 0] += np.array([0.0, 0.015, -0.015])
    brief = late.copy()
    brief[:13] = np.nan  # 3 frames seen: too few
    obs = np.stack([late, struck, brief, late], axis=1)  # [T, 4, 3]
    cut = np.array([-1, 12, -1, -1])
    moving = np.array([True, True, True, False])
    out = velocity_fitted_start(obs, t_pred=16, history=2, window=12, last_collision=cut, moving=moving)
    true_step = slide[15, 0] - slide[14, 0]
    assert abs((out[15, 0, 0] - out[14, 0, 0]) - true_step) < 0.006 < abs((obs[15, 0, 0] - obs[14, 0, 0]) - true_step)
    np.testing.assert_array_equal(out[15], obs[15])  # the last centre is kept
    np.testing.assert_array_equal(out[:13], obs[:13])  # only the history frames (13, 14) change
    np.testing.assert_array_equal(out[:, 0, 2], obs[:, 0, 2])  # the orientation channel is never fitted
    np.testing.assert_array_equal(out[:, 1], obs[:, 1])  # 2 frames after its collision (+1): too few, kept
    np.testing.assert_array_equal(out[:, 2], obs[:, 2])  # 3 frames seen: kept
    np.testing.assert_array_equal(out[:, 3], obs[:, 3])  # not moving at the last frame: kept
    loose = velocity_fitted_start(obs, t_pred=16, history=2, window=12, last_collision=np.array([-1, 9, -1, -1]),
                                  moving=moving)
    assert not np.array_equal(loose[:, 1], obs[:, 1])  # the collision 3 frames earlier: 5 frames after it, fitted
    np.testing.assert_array_equal(velocity_fitted_start(obs, t_pred=2, history=2, window=12, last_collision=cut,
                                                        moving=moving), obs)  # before the history
    with pytest.raises(ConfigError, match="start_velocity_fit 3"):
        velocity_fitted_start(obs, t_pred=16, history=2, window=3, last_collision=cut, moving=moving)
    for bad in (3, -1, True, 6.0):
        with pytest.raises(ConfigError, match="start_velocity_fit"):
            RolloutConfig(start_velocity_fit=bad)
    assert RolloutConfig().start_velocity_fit == 0  # off by default


def test_start_velocity_fit_changes_futures_only(videos):
    ann, _ = videos[0]
    plain = PropNetVideoDynamics.load(config=SHORT)
    fitted = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, start_velocity_fit=12))
    oid = ann.object_property[0].object_id
    assert fitted.counterfactual(ann, oid) == plain.counterfactual(ann, oid)
    last = len(ann.motion_trajectory)
    a, b = plain.future_runs(ann, FUTURE)[0].frames, fitted.future_runs(ann, FUTURE)[0].frames
    assert a[:last] == b[:last] and a[last:] != b[last:]  # observed frames as recorded, the rollout from the fit


def _first_inputs(provider, ann, removed):
    """Per object id: the history ``[3, 2]`` the PropNet got for that object's first predicted frame of a counterfactual."""
    seen: dict[int, np.ndarray] = {}
    step = provider._step

    def spy(state, actions, attrs, ids, t, spin=None):
        out = step(state, actions, attrs, ids, t, spin)
        for i, k in enumerate(ids):
            seen.setdefault(k, []).append((t, state[t - 2 : t + 1, i, :2].copy()))
        return out

    provider._step = spy
    run = provider._run(ann, removed=removed, extra=SHORT.future_frames)
    first = {}
    for i, k in enumerate(run.ids):
        f = np.flatnonzero(run.predicted[:, i])
        if len(f):
            first[k] = [h for t, h in seen[k] if t == f[0] - 1][-1]  # the last call for that frame counts
    return first, run


def test_counterfactual_velocity_fit_gives_each_object_its_fitted_start_and_leaves_futures_alone(videos):
    ann, _ = videos[0]
    oid = ann.object_property[0].object_id
    plain = PropNetVideoDynamics.load(config=SHORT)
    fitted = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, counterfactual_velocity_fit=12))
    raw, run_raw = _first_inputs(plain, ann, oid)
    fit, run_fit = _first_inputs(fitted, ann, oid)
    tracks = _tracks(ann)
    ids = run_raw.ids
    observed = np.stack([tracks[k].xyt for k in ids], axis=1)
    contacts = {k: [c.frame_id - ann.motion_trajectory[0].frame_id for c in ann.collision if k in c.object_ids]
                for k in ids}
    changed = 0
    for i, k in enumerate(ids):
        f = int(np.flatnonzero(run_raw.predicted[:, i])[0])
        assert f == int(np.flatnonzero(run_fit.predicted[:, i])[0])  # the same first predicted frame here
        np.testing.assert_array_equal(raw[k], observed[f - 3 : f, i, :2])  # off: the observed history
        moving = np.zeros(len(ids), bool)
        st = tracks[k].states[f - 1]
        moving[i] = st is not None and any(st.velocity[:2])
        cut = np.full(len(ids), -1)
        cut[i] = max([c for c in contacts[k] if c < f], default=-1)
        want = velocity_fitted_start(observed, f, 2, 12, cut, moving)[f - 3 : f, i, :2]
        np.testing.assert_allclose(fit[k], want)  # on: the fitted history, the centre at f - 1 kept
        np.testing.assert_array_equal(fit[k][-1], observed[f - 1, i, :2])
        changed += not np.array_equal(fit[k], raw[k])
    assert changed  # some object of this video moves where its prediction starts
    t_obs = len(ann.motion_trajectory)
    first = int(run_fit.predicted.any(axis=1).argmax())
    assert run_fit.frames[:first] == run_raw.frames[:first]  # observed frames as recorded
    assert fitted.counterfactual(ann, oid) != plain.counterfactual(ann, oid)
    a, b = plain.future_runs(ann, FUTURE)[0].frames, fitted.future_runs(ann, FUTURE)[0].frames
    assert a == b and t_obs < len(a)  # futures never take it
    for bad in (3, -1, True, 6.0):
        with pytest.raises(ConfigError, match="counterfactual_velocity_fit"):
            RolloutConfig(counterfactual_velocity_fit=bad)
    assert RolloutConfig().counterfactual_velocity_fit == 0  # off by default


def test_counterfactual_fit_residual_keeps_the_observed_history_of_a_span_with_an_uncut_bounce():
    t = np.arange(16, dtype=float)[:, None]
    zero = np.zeros((16, 1))
    smooth = np.concatenate([0.1 * t - 0.001 * t**2, zero, zero], axis=1)
    smooth[::2, 1] += 0.004  # jitter of a perceived centre, well under the residual
    bounce = np.concatenate([0.1 * t, 1.0 + zero, zero], axis=1)
    bounce[10:, 0] = bounce[9, 0] - 0.08 * (t[10:, 0] - 9)  # turned back at frame 9, no collision recorded
    obs = np.stack([smooth, bounce], axis=1)
    cut, moving = np.full(2, -1), np.ones(2, bool)
    fit = velocity_fitted_start(obs, 16, 2, 12, cut, moving)
    kept = velocity_fitted_start(obs, 16, 2, 12, cut, moving, max_residual=0.03)
    assert not np.array_equal(fit[13:15, 1], obs[13:15, 1])  # without the bound the bounce is fitted over
    np.testing.assert_array_equal(kept[:, 1], obs[:, 1])  # with it: the observed history, a one-frame difference
    np.testing.assert_array_equal(kept[:, 0], fit[:, 0])  # a smooth span is fitted either way
    assert not np.array_equal(kept[13:15, 0], obs[13:15, 0])
    with_cut = velocity_fitted_start(obs, 16, 2, 12, np.array([-1, 9]), moving, max_residual=0.03)
    assert not np.array_equal(with_cut[13:15, 1], obs[13:15, 1])  # after the bounce alone the fit holds again


def test_counterfactual_fit_residual_reaches_counterfactual_rollouts_only_and_is_refused_unless_valid(videos):
    ann, _ = videos[0]
    oid = ann.object_property[0].object_id
    plain = PropNetVideoDynamics.load(config=SHORT)
    fitted = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, counterfactual_velocity_fit=12))
    loose = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, counterfactual_velocity_fit=12,
                                                               counterfactual_fit_residual=1e6))
    tight = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, counterfactual_velocity_fit=12,
                                                               counterfactual_fit_residual=1e-12))
    assert fitted.counterfactual(ann, oid) != plain.counterfactual(ann, oid)
    assert loose.counterfactual(ann, oid) == fitted.counterfactual(ann, oid)  # no fit lies that far: the fit alone
    assert tight.counterfactual(ann, oid) == plain.counterfactual(ann, oid)  # every fit refused: the observed start
    assert tight.future_runs(ann, FUTURE)[0].frames == plain.future_runs(ann, FUTURE)[0].frames
    for bad in (-0.01, float("nan"), True, "0.05"):
        with pytest.raises(ConfigError, match="counterfactual_fit_residual"):
            RolloutConfig(counterfactual_velocity_fit=12, counterfactual_fit_residual=bad)
    with pytest.raises(ConfigError, match="counterfactual_fit_residual needs counterfactual_velocity_fit"):
        RolloutConfig(counterfactual_fit_residual=0.05)
    assert RolloutConfig().counterfactual_fit_residual == 0.0  # off by default


def test_late_collision_start_exchanges_a_late_struck_pair_and_keeps_phantoms_early_and_ambiguous_ones():
    t = np.arange(16, dtype=float)[:, None]
    zero = np.zeros((16, 1))
    striker = np.concatenate([0.1 * t, zero, zero], axis=1)  # +x at 0.1 a frame, meets the resting one at frame 13
    struck = np.concatenate([np.full((16, 1), 1.9), zero, zero], axis=1)  # at rest, then still read at rest (lost track)
    striker[14:, 0] = striker[13, 0] + np.array([0.03, 0.05])  # two jittery frames after the contact
    twin_a = np.concatenate([0.05 * t, 2.0 + zero, zero], axis=1)  # side by side, same velocity: a phantom at 14
    twin_b = twin_a + np.array([0.0, 0.65, 0.0])
    twin_a[15, 0] += 0.04
    early = np.concatenate([0.08 * t, 5.0 + zero, zero], axis=1)  # its collision at 5 leaves 9 frames to fit: kept
    obs = np.stack([striker, struck, twin_a, twin_b, early], axis=1)
    contacts = {0: {1: [13]}, 1: {0: [13]}, 2: {3: [14]}, 3: {2: [14]}, 4: {9: [5]}}
    ids = [0, 1, 2, 3, 4]
    out = late_collision_start(obs, t_pred=16, history=2, window=12, frames=3, contacts=contacts, ids=ids,
                               restitution=0.49, min_speed=0.01)
    give = 0.5 * 1.49 * 0.1  # the equal-mass exchange of a closing speed of 0.1 a frame
    np.testing.assert_allclose(out[15, 1, :2] - out[14, 1, :2], [give, 0.0], atol=1e-9)  # struck: moving now
    np.testing.assert_allclose(out[14, 1, :2] - out[13, 1, :2], [give, 0.0], atol=1e-9)
    np.testing.assert_allclose(out[15, 0, :2] - out[14, 0, :2], [0.1 - give, 0.0], atol=1e-9)
    np.testing.assert_array_equal(out[15], obs[15])  # the last centres are kept
    np.testing.assert_array_equal(out[:13], obs[:13])  # only the history frames (13, 14) change
    np.testing.assert_array_equal(out[:, 2:], obs[:, 2:])  # the phantom pair and the early collision: kept
    short = late_collision_start(obs, 16, 2, 12, 2, contacts, ids, 0.49, 0.01)  # frame 13 is 3 frames back: not late
    np.testing.assert_array_equal(short, obs)
    two = {**contacts, 0: {1: [13], 2: [13]}}  # two partners at the contact: ambiguous, kept
    np.testing.assert_array_equal(late_collision_start(obs, 16, 2, 12, 3, two, ids, 0.49, 0.01)[:, 0], obs[:, 0])
    with pytest.raises(ConfigError, match="late_collision_start"):
        late_collision_start(obs, 16, 2, 3, 3, contacts, ids, 0.49, 0.01)
    with pytest.raises(ConfigError, match="late_collision_start needs start_velocity_fit"):
        RolloutConfig(late_collision_start=2)
    for bad in (True, -1, 2.0):
        with pytest.raises(ConfigError, match="late_collision_start must be an integer"):
            RolloutConfig(late_collision_start=bad, start_velocity_fit=12)
    assert RolloutConfig().late_collision_start == 0  # off by default


def test_late_collision_start_changes_futures_only(videos):
    ann, _ = videos[0]
    fit = dataclass_replace(SHORT, start_velocity_fit=12)
    plain = PropNetVideoDynamics.load(config=fit)
    late = PropNetVideoDynamics.load(config=dataclass_replace(fit, late_collision_start=2))
    oid = ann.object_property[0].object_id
    assert late.counterfactual(ann, oid) == plain.counterfactual(ann, oid)
    last = len(ann.motion_trajectory)
    assert late.future_runs(ann, FUTURE)[0].frames[:last] == plain.future_runs(ann, FUTURE)[0].frames[:last]


def test_late_collision_restitution_sets_the_late_exchange_alone_and_needs_late_collision_start(videos, monkeypatch):
    import physics.models.video_propnet.rollout as rollout_module

    seen = []
    real = rollout_module.late_collision_start

    def spy(*args):
        seen.append(args[7])  # the restitution the exchange is given
        return real(*args)

    monkeypatch.setattr(rollout_module, "late_collision_start", spy)
    ann, _ = videos[0]
    late = dataclass_replace(SHORT, start_velocity_fit=12, late_collision_start=5)
    PropNetVideoDynamics.load(config=late).future_runs(ann, FUTURE)
    PropNetVideoDynamics.load(config=dataclass_replace(late, late_collision_restitution=WORLD_RESTITUTION)).future_runs(
        ann, FUTURE)
    assert seen == [late.carry_restitution, WORLD_RESTITUTION]  # None: the carry's 0.49; else its own
    cfg = dataclass_replace(late, late_collision_restitution=0.0)
    assert (cfg.late_restitution, cfg.carry_restitution) == (0.0, 0.49)  # the contact carry keeps its own
    with pytest.raises(ConfigError, match="read only by late_collision_start"):
        RolloutConfig(late_collision_restitution=0.18)
    for bad in (-0.1, 1.5, math.nan, True, "0.2"):
        with pytest.raises(ConfigError, match="late_collision_restitution"):
            RolloutConfig(start_velocity_fit=12, late_collision_start=5, late_collision_restitution=bad)
    assert RolloutConfig().late_collision_restitution is None  # off by default
    # the late exchange at restitution 0 leaves a struck pair moving together along the line of centres
    t = np.arange(16, dtype=float)[:, None]
    zero = np.zeros((16, 1))
    striker = np.concatenate([0.1 * t, zero, zero], axis=1)
    struck = np.concatenate([np.full((16, 1), 1.9), zero, zero], axis=1)
    obs = np.stack([striker, struck], axis=1)
    out = late_collision_start(obs, 16, 2, 12, 3, {0: {1: [14]}, 1: {0: [14]}}, [0, 1], 0.0, 0.01)
    np.testing.assert_allclose(out[15, 0, :2] - out[14, 0, :2], out[15, 1, :2] - out[14, 1, :2], atol=1e-9)
    np.testing.assert_allclose(out[15, 1, :2] - out[14, 1, :2], [0.05, 0.0], atol=1e-9)


def test_match_collisions_pairs_events_within_the_window():
    def c(pair, f):
        return Collision(pair, f, (0.0, 0.0, 0.0))

    true = [c((0, 1), 10), c((1, 2), 30)]
    assert match_collisions([c((1, 0), 12), c((1, 2), 33), c((0, 2), 30)], true) == (1, 2, 1)
    assert match_collisions(true, true, window=0) == (2, 0, 0)


def test_the_shipped_checkpoint_loads_small_and_reproducible():
    assert SHIPPED_CHECKPOINT.is_file() and SHIPPED_CHECKPOINT.stat().st_size < 2_000_000
    model, meta = load_model(SHIPPED_CHECKPOINT)  # weights_only, digest checked
    assert meta["command"].startswith("nesy train video-dynamics --model propnet")
    assert meta["world"] == "clevrer" and bool(model.vel_norm.fitted)
    assert model.config == preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM, edge_attr_dim=0,
                                  contact="clevrer")  # footprint gaps on every edge
    assert Path(SHIPPED_CHECKPOINT).parent.name == "video"


@pytest.mark.parametrize("name", ["future_tolerance", "approach_speed", "ensemble_shift", "contact_tolerance"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_rollout_settings_that_are_not_finite_are_refused_by_name(name, value):
    # NaN passes every `< 0` check and would make the collision rule find nothing, silently
    with pytest.raises(ConfigError, match=name):
        RolloutConfig(**{name: value})


def test_collision_impulses_compare_the_velocity_change_into_a_recorded_collision(videos, propnet):
    ann, truth = videos[0]
    frames = (*ann.motion_trajectory, *truth.future_trajectory)
    a, b = ann.object_property[0].object_id, ann.object_property[1].object_id
    f = FRAMES - 2  # a collision recorded at this frame: the step f - 1 -> f carries its impulse
    truth = dataclass_replace(truth, future_collisions=(Collision((a, b), f, (0.0, 0.0, 0.0)),))
    ann = dataclass_replace(ann, collision=())
    pairs = propnet.collision_impulses(ann, truth)
    assert len(pairs) == 2 and all(math.isfinite(x) and x >= 0 for p in pairs for x in p)
    xy = {k: [np.array(fr.by_id()[k].location[:2]) for fr in frames[f - 2 : f + 1]] for k in (a, b)}
    fps = propnet.config.fps
    for (true_change, _), k in zip(pairs, (a, b), strict=True):
        p0, p1, p2 = xy[k]
        assert true_change == pytest.approx(float(np.linalg.norm((p2 - p1) - (p1 - p0)) * fps), abs=1e-4)
    early = dataclass_replace(truth, future_collisions=(Collision((a, b), 1, (0.0, 0.0, 0.0)),))
    assert propnet.collision_impulses(ann, early) == []  # inside the model's history of the first frame


def test_contact_carry_exchanges_momentum_at_a_touch_the_rollout_makes_and_carries_both_objects_on():
    from physics.models.video_propnet import CUBE_MEAN_REACH, _Carry

    cfg = dataclass_replace(SHORT, contact_carry=2)
    assert RolloutConfig().contact_carry == 0  # the shipped default: off
    carry = _Carry(cfg, [False, False])
    d = 2 * HALF_EXTENT
    # sphere 0 slides at 0.05 a frame towards sphere 1 at rest; they first touch at frame 3

    state = np.zeros((7, 2, 3))

    state[:, 0, 0] = [-0.2 - d + 0.05 * f for f in range(7)]
    state[3, 0, 0] = -d + 0.01  # overlapping by 0.01 at frame 3
    predicted = np.ones((7, 2), bool)
    for f in range(4):
        carry.step(state, predicted, f)
    kick = 0.5 * (1 + 0.49) * 0.05
    assert carry.until.tolist() == [5, 5]
    assert carry.velocity[1] == pytest.approx([kick, 0.0]) and carry.velocity[0] == pytest.approx([0.05 - kick, 0.0])
    state[4:] = 0.0  # whatever the network would have said
    for f in (4, 5, 6):
        carry.step(state, predicted, f)
    assert state[4, 1, :2] == pytest.approx([kick, 0.0]) and state[5, 1, :2] == pytest.approx([2 * kick, 0.0])
    assert state[5, 0, 0] == pytest.approx(-d + 0.01 + 2 * (0.05 - kick))
    assert state[6, 1, 0] == 0.0  # carried for contact_carry frames only
    # a touch already on the frame before, one closing slower than carry_min_speed, or objects followed: no carry
    for setup in ("on", "slow", "followed"):
        c = _Carry(cfg, [False, True])
        s = np.zeros((4, 2, 3))
        s[:, 1, 0] = HALF_EXTENT + CUBE_MEAN_REACH - 0.001  # cube 1 touching sphere 0 throughout
        if setup == "slow":
            s[:, 0, 0] = [-0.1, -0.099, -0.098, 0.0]
            s[:3, 1, 0] += 0.2
        elif setup == "followed":
            s[:, 0, 0] = [-0.3, -0.2, -0.1, 0.0]
            s[:3, 1, 0] += 0.2
        p = np.ones((4, 2), bool)
        if setup == "followed":
            p[:, 1] = False
        for f in range(4):
            c.step(s, p, f)
        assert c.until.tolist() == [-1, -1], setup
    for bad in ({"contact_carry": -1}, {"contact_carry": True}, {"carry_restitution": 1.5}, {"carry_min_speed": math.nan}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            RolloutConfig(**bad)


def _sphere_past_a_resting_cylinder(offset: float) -> VideoAnnotation:
    """12 frames: a red sphere slides along y = ``offset`` at 0.3 units a frame, to reach a blue cylinder resting at
    the origin just after the video ends; a green sphere rests far off (2.5, 2.5)."""
    def state(k, x, y):
        return ObjectState(k, (x, y, 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    frames = tuple(FrameStates(f, (state(0, -4.1 + 0.3 * f, offset), state(1, 0.0, 0.0), state(2, 2.5, 2.5)))
                   for f in range(12))
    props = (ObjectProperty(0, "red", "metal", "sphere"), ObjectProperty(1, "blue", "rubber", "cylinder"),
             ObjectProperty(2, "green", "rubber", "sphere"))
    return VideoAnnotation(0, "v.gif", props, frames, ())


def test_carry_scope_future_carries_the_future_rollout_and_leaves_every_counterfactual_as_without_carry():
    """A sphere slides into a resting cylinder just after the video ends (a third object far off): scope ``all``
    carries the touch in the future and in the counterfactual without the far object; ``future`` in the future only."""
    from physics.models.video_propnet import CARRY_SCOPES

    ann = _sphere_past_a_resting_cylinder(0.0)  # head on
    base = dataclass_replace(SHORT, future_frames=8)
    assert RolloutConfig().carry_scope == "all" and CARRY_SCOPES == ("all", "future")
    plain = PropNetVideoDynamics.load(config=base)
    every = PropNetVideoDynamics.load(config=dataclass_replace(base, contact_carry=3))
    future = PropNetVideoDynamics.load(config=dataclass_replace(base, contact_carry=3, carry_scope="future"))
    assert future.future(ann, 8) == every.future(ann, 8) != plain.future(ann, 8)  # the future touch is carried
    assert every.counterfactual(ann, 2) != plain.counterfactual(ann, 2)  # scope all: the counterfactual's too
    for k in (0, 1, 2):  # scope future: every counterfactual exactly as without carry
        assert future.counterfactual(ann, k) == plain.counterfactual(ann, k)
    with pytest.raises(ConfigError, match="carry_scope"):
        RolloutConfig(carry_scope="counterfactual")


def test_lookahead_counts_a_fast_near_miss_and_never_a_slow_one_or_neighbours_at_rest():
    """Sphere 1 closes on resting sphere 0 at 0.1 units a frame (2.5 units/s) and stops 0.08 short (the rollout's
    chain cut short): the state rule finds nothing; lookahead 3 finds it, dated at the closest frame."""
    d = 2 * HALF_EXTENT
    gaps = [0.50, 0.40, 0.30, 0.20, 0.12, 0.08, 0.08, 0.10, 0.20]  # footprint gaps over frames: never touching
    fast = _frames({0: [(0.0, 0.0, 0.0)] * len(gaps), 1: [(d + g, 0.0, 0.0) for g in gaps]})
    shapes = {0: "sphere", 1: "sphere"}
    every = lambda pair, f: True  # noqa: E731
    assert state_collisions(fast, shapes) == ()
    got = lookahead_collisions(fast, shapes, 3, 0.5, 25, 0.0, 5, (), every)
    assert [(c.object_ids, c.frame_id) for c in got] == [((0, 1), 5)]  # fires at frame 3 (0.20 - 3 x 0.10 <= 0)
    assert got[0].location == pytest.approx(((d + 0.08) / 2, 0.0, 0.35))
    assert lookahead_collisions(fast, shapes, 0, 0.5, 25, 0.0, 5, (), every) == []  # off
    assert lookahead_collisions(fast, shapes, 3, 0.5, 25, 0.0, 5, (), lambda pair, f: f < 2) == []  # not eligible
    ruled = (Collision((0, 1), 7, (0.0, 0.0, 0.0)),)  # the state rule's touch 2 frames on: no second one
    assert lookahead_collisions(fast, shapes, 3, 0.5, 25, 0.0, 5, ruled, every) == []
    # the same pass at 0.01 units a frame (0.25 units/s, below 0.5) and neighbours at rest 0.02 apart: nothing
    slow = [0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04, 0.05]
    slow_frames = _frames({0: [(0.0, 0.0, 0.0)] * len(slow), 1: [(d + g, 0.0, 0.0) for g in slow]})
    assert lookahead_collisions(slow_frames, shapes, 3, 0.5, 25, 0.0, 5, (), every) == []
    rest = _frames({0: [(0.0, 0.0, 0.0)] * 5, 1: [(d + 0.02, 0.0, 0.0)] * 5})
    assert lookahead_collisions(rest, shapes, 8, 0.01, 25, 0.0, 5, (), every) == []
    # a farther stop (0.28 apart after 2.5 units/s) is not reached in 2 frames, is in 3
    far = [0.88, 0.78, 0.68, 0.58, 0.48, 0.38, 0.28, 0.35]
    far_frames = _frames({0: [(0.0, 0.0, 0.0)] * len(far), 1: [(d + g, 0.0, 0.0) for g in far]})
    assert lookahead_collisions(far_frames, shapes, 2, 0.5, 25, 0.0, 5, (), every) == []
    assert [c.frame_id for c in lookahead_collisions(far_frames, shapes, 3, 0.5, 25, 0.0, 5, (), every)] == [6]
    for bad in ({"lookahead": -1}, {"min_speed": 0.0}, {"tolerance": -0.1}, {"collision_gap": 0}):
        kw = {"lookahead": 3, "min_speed": 0.5, "fps": 25, "tolerance": 0.0, "collision_gap": 5} | bad
        with pytest.raises(ConfigError, match="lookahead_collisions"):
            lookahead_collisions(fast, shapes, ruled=(), eligible=every, **kw)


def test_lookahead_scope_adds_a_near_miss_to_the_future_and_to_counterfactuals_only_with_scope_all():
    """A sphere slides past a resting cylinder just after the video ends (a third object far off); the rollout's
    near misses count with lookahead, in the future always and in a counterfactual with scope ``all`` only."""
    ann = _sphere_past_a_resting_cylinder(0.72)  # passes 0.02 apart from the cylinder if it keeps its line and speed
    base = dataclass_replace(SHORT, future_frames=8)
    plain = PropNetVideoDynamics.load(config=base)
    wide = dataclass_replace(base, lookahead=40, lookahead_min_speed=0.01)  # every closing pair within reach
    every = PropNetVideoDynamics.load(config=wide)
    future = PropNetVideoDynamics.load(config=dataclass_replace(wide, lookahead_scope="future"))
    rolled, found = plain.future(ann, 8)
    gaps = []  # what the plain rule sees: the pair's footprint gaps over the rollout, never touching
    for fr in rolled:
        a, b = fr.by_id()[0].location, fr.by_id()[1].location
        gaps.append(math.hypot(a[0] - b[0], a[1] - b[1]) - 2 * HALF_EXTENT)
    expect = lookahead_collisions((ann.motion_trajectory[-1], *rolled), {0: "sphere", 1: "cylinder", 2: "sphere"}, 40, 0.01, 25, 0.0,
                                  5, found, lambda pair, f: f > 11)
    assert expect and min(gaps) > 0.0  # the plain rule misses what the lookahead finds
    assert every.future(ann, 8)[1] == future.future(ann, 8)[1] == tuple(sorted((*found, *expect), key=lambda c: c.frame_id))
    assert RolloutConfig().lookahead == 0 and RolloutConfig().lookahead_scope == "all"
    for k in (0, 1, 2):  # scope future: every counterfactual exactly as without lookahead
        assert future.counterfactual(ann, k) == plain.counterfactual(ann, k)
    with pytest.raises(ConfigError, match="lookahead_scope"):
        RolloutConfig(lookahead_scope="counterfactual")
    with pytest.raises(ConfigError, match="lookahead"):
        RolloutConfig(lookahead=-1)
    with pytest.raises(ConfigError, match="lookahead_min_speed"):
        RolloutConfig(lookahead_min_speed=0.0)


def test_near_miss_score_takes_a_fast_close_pass_and_never_a_slow_one_neighbours_at_rest_or_a_ruled_pair():
    """Sphere 1 closes on resting sphere 0 at 0.1 units a frame and stops 0.08 short (the state rule finds nothing):
    one near miss at the last frame of its closest approach, with its features; a score that weighs the gap against
    the closing speed takes it, and refuses the same pass at 0.01 units a frame; neighbours at rest have none."""
    d = 2 * HALF_EXTENT
    gaps = [0.50, 0.40, 0.30, 0.20, 0.12, 0.08, 0.08, 0.10, 0.20]
    fast = _frames({0: [(0.0, 0.0, 0.0)] * len(gaps), 1: [(d + g, 0.0, 0.0) for g in gaps]})
    shapes = {0: "sphere", 1: "cylinder"}
    every = lambda pair, f: True  # noqa: E731
    assert state_collisions(fast, shapes) == ()
    near = near_miss_candidates(fast, shapes, 0.0, 25, every, start=2)
    assert [(c.object_ids, c.frame_id) for c, _ in near] == [((0, 1), 6)]
    assert near[0][1] == pytest.approx((0.08, (0.20 - 0.08) * 25 / 3, 4 / 25, 1.0))  # gap, closing speed, s, spheres
    w = (0.0, -20.0, 2.0, 0.0, 0.0)  # collides when the closing speed (units/s) exceeds 10 x the gap (units)
    assert [(c.object_ids, c.frame_id) for c in near_miss_collisions(near, w, (), 5)] == [((0, 1), 6)]
    assert near_miss_collisions(near, (0.0, -20.0, 1.0, 0.0, 0.0), (), 5) == []  # a stricter score: none
    ruled = (Collision((0, 1), 9, (0.0, 0.0, 0.0)),)  # a touch of the pair 3 frames on: no second one
    assert near_miss_collisions(near, w, ruled, 5) == []
    assert near_miss_candidates(fast, shapes, 0.0, 25, lambda pair, f: f < 5) == []  # not eligible there
    assert near_miss_candidates(fast, shapes, 0.1, 25, every) == []  # within the tolerance: the state rule's
    slow = [0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04, 0.05]
    slow_frames = _frames({0: [(0.0, 0.0, 0.0)] * len(slow), 1: [(d + g, 0.0, 0.0) for g in slow]})
    assert len(near_miss_candidates(slow_frames, shapes, 0.0, 25, every)) == 1
    assert near_miss_collisions(near_miss_candidates(slow_frames, shapes, 0.0, 25, every), w, (), 5) == []
    rest = _frames({0: [(0.0, 0.0, 0.0)] * 6, 1: [(d + 0.02, 0.0, 0.0)] * 6})
    assert near_miss_candidates(rest, shapes, 0.0, 25, every) == []
    with pytest.raises(ConfigError, match="near_miss"):
        near_miss_collisions(near, (1.0, 2.0), (), 5)
    for bad in ((1.0, 2.0), (0.0, 1.0, 2.0, 3.0, float("nan")), [0.0] * 5, (0.0, True, 0.0, 0.0, 0.0)):
        with pytest.raises(ConfigError, match="near_miss"):
            RolloutConfig(near_miss=bad)
    with pytest.raises(ConfigError, match="near_miss_scope"):
        RolloutConfig(near_miss_scope="counterfactual")
    assert RolloutConfig().near_miss == () and RolloutConfig().near_miss_scope == "all"


def test_near_miss_adds_the_rollouts_close_pass_to_the_future_and_to_counterfactuals_only_with_scope_all():
    """A sphere slides past a resting cylinder just after the video ends; a score taking every near miss adds the
    pass to the future, and leaves every counterfactual as without it under scope ``future``."""
    ann = _sphere_past_a_resting_cylinder(0.72)
    base = dataclass_replace(SHORT, future_frames=8)
    plain = PropNetVideoDynamics.load(config=base)
    takes = (1.0, 0.0, 0.0, 0.0, 0.0)  # every near miss collides
    every = PropNetVideoDynamics.load(config=dataclass_replace(base, near_miss=takes))
    future = PropNetVideoDynamics.load(config=dataclass_replace(base, near_miss=takes, near_miss_scope="future"))
    rolled, found = plain.future(ann, 8)
    near = near_miss_candidates((ann.motion_trajectory[-1], *rolled), {0: "sphere", 1: "cylinder", 2: "sphere"}, 0.0, 25,
                                lambda pair, f: f > 11, start=12)
    assert near and all(c.object_ids == (0, 1) for c, _ in near)
    expect = near_miss_collisions(near, takes, found, 5)
    assert expect and every.future(ann, 8)[1] == future.future(ann, 8)[1] == tuple(
        sorted((*found, *expect), key=lambda c: c.frame_id))
    for k in (0, 1, 2):  # scope future: every counterfactual exactly as without the score
        assert future.counterfactual(ann, k) == plain.counterfactual(ann, k)


def test_velocity_loss_charges_the_marked_steps_after_a_contact(videos):
    from physics.graph.builder import GraphBuilder
    from physics.models.data import one_step_graphs
    from physics.models.video_propnet import contact_velocity_frames

    ann, truth = videos[0]
    traj = dataclass_replace(video_trajectory(ann, truth), meta={"collision_frames": [16], "name": "v"})
    frames = contact_velocity_frames(traj, after=2)
    assert np.flatnonzero(frames).tolist() == [16, 17, 18]
    with pytest.raises(ConfigError, match="after"):
        contact_velocity_frames(traj, after=-1)
    torch.manual_seed(0)
    model = make_model("propnet", preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM,
                                         edge_attr_dim=0)).eval()  # no input noise: the loss is exact
    builder = GraphBuilder(model.config.graph)

    def sample(mark, horizon=3):
        t = dataclass_replace(traj, meta={**traj.meta, "velocity_frames": mark})
        return one_step_graphs(t, builder, [15 - 1], horizon=horizon)[0]  # predicts frames 15, 16, 17

    g = sample(frames.tolist())
    leaves = torch.arange(traj.num_nodes)
    assert g.vel_mask_seq[leaves].tolist() == [[0.0, 1.0, 1.0]] * traj.num_nodes  # frames 16 and 17 marked
    assert float(g.vel_mask_seq[traj.num_nodes:].abs().sum()) == 0.0  # root rows never
    with torch.no_grad():
        plain = float(model.loss(g))
        l1, l3 = float(model.loss(g, velocity_weight=1.0)), float(model.loss(g, velocity_weight=3.0))
        none = float(model.loss(sample([0.0] * traj.num_steps), velocity_weight=3.0))
        # only the first step marked: its velocity error is its position error (one-step loss)
        first = np.zeros(traj.num_steps)
        first[15] = 1.0
        g1 = sample(first.tolist())
        only_first = float(model.loss(g1, velocity_weight=1.0)) - float(model.loss(g1))
        del g1.target_seq, g1.action_seq
        one_step = float(model.loss(g1))
    assert l1 > plain and math.isclose(l3 - plain, 3 * (l1 - plain), rel_tol=1e-4)
    assert math.isclose(none, plain, rel_tol=1e-6)  # nothing marked: nothing added
    assert math.isclose(only_first, one_step, rel_tol=1e-4)
    with pytest.raises(DataError, match="velocity_frames"):
        sample([1.0] * 3)


def test_velocity_weight_needs_a_rollout_and_is_stored_only_when_on():
    from physics.models.training import TrainConfig, _flags

    with pytest.raises(ConfigError, match="rollout-steps"):
        TrainConfig(velocity_weight=1.0)
    with pytest.raises(ConfigError, match="velocity_weight"):
        TrainConfig(velocity_weight=-1.0, rollout_steps=3)
    assert "velocity_weight" not in _flags(TrainConfig(rollout_steps=3))
    assert _flags(TrainConfig(rollout_steps=3, velocity_weight=2.0))["velocity_weight"] == 2.0


def test_train_only_moves_the_relation_path_and_keeps_every_other_weight_of_the_init(videos, tmp_path):
    from physics.models.training import TrainConfig
    from physics.models.video_propnet import SHIPPED_CHECKPOINT, train_video_model

    cfg = TrainConfig(epochs=1, batch_size=4, max_samples=16, valid_samples=8, rollout_steps=2, seed=0, device="cpu",
                      init=str(SHIPPED_CHECKPOINT), train_only="edge_encoder,convs.0.rel")
    train_video_model("propnet", videos, tmp_path / "run", cfg, overrides={"contact": "clevrer"})
    start = torch.load(SHIPPED_CHECKPOINT, weights_only=True)["state_dict"]
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    after = ckpt["state_dict"]
    relation = [k for k in start if k.startswith(("edge_encoder.", "convs.0.rel."))]
    frozen = [k for k in start if k.startswith(("node_encoder.", "decoder.", "convs.0.obj."))]
    assert relation and frozen
    assert any(not torch.equal(start[k], after[k]) for k in relation)
    assert all(torch.equal(start[k], after[k]) for k in frozen)
    assert ckpt["train_state"]["flags"]["train_only"] == "edge_encoder,convs.0.rel"


def test_train_only_is_stored_only_when_set_and_bad_prefixes_are_refused_by_name():
    from physics.models.training import TrainConfig, _flags, trainable_parameters

    assert "train_only" not in _flags(TrainConfig())
    with pytest.raises(ConfigError, match="train_only"):
        TrainConfig(train_only="edge_encoder,")
    model = make_model("propnet", preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM))
    with pytest.raises(ConfigError, match="--train-only: 'edges' names no parameter"):
        trainable_parameters(model, "edges")
    kept = trainable_parameters(model, "decoder")
    assert len(kept) == sum(1 for n, _ in model.named_parameters() if n.startswith("decoder"))
    assert not model.node_encoder[0].weight.requires_grad


def test_future_tolerance_makes_a_future_near_pass_a_collision_and_leaves_states_and_counterfactuals_alone():
    """Sphere 1 slides at resting sphere 0 after the video and stops 0.10 short; the
    plain rule finds nothing, ``future_tolerance`` 0.15 a collision dated where the gap first falls below 0.15.  A pair
    already that near at the video's end is no new collision; rolled-out states and counterfactuals never read it."""
    d = 2 * HALF_EXTENT
    ann = _still_annotation({0: "sphere", 1: "sphere", 2: "sphere"}, {0: 0.0, 1: 0.0, 2: 0.0},
                            {0: (0.0, 0.0), 1: (d + 0.6, 0.0), 2: (-d - 0.12, 0.0)})
    last = ann.motion_trajectory[-1].frame_id

    def state(k, x):
        return ObjectState(k, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True)

    gaps = (0.5, 0.35, 0.22, 0.14, 0.11, 0.10, 0.10)
    future = tuple(FrameStates(last + 1 + i, (state(0, 0.0), state(1, d + g), state(2, -d - 0.12)))
                   for i, g in enumerate(gaps))
    frames = (*ann.motion_trajectory, *future)
    plain = PropNetVideoDynamics.load(config=SHORT)
    near = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, future_tolerance=0.15))
    assert RolloutConfig().future_tolerance is None  # off by default: the contact tolerance, 0
    assert plain.future_collisions(ann, frames) == ()
    # (0, 1) first within 0.15 at the 4th future frame; (0, 2) sat 0.12 apart since the observed frames: not new
    assert [(c.object_ids, c.frame_id) for c in near.future_collisions(ann, frames)] == [((0, 1), last + 4)]
    tight = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, future_tolerance=0.05))
    assert tight.future_collisions(ann, frames) == ()  # 0.10 short stays a miss under 0.05
    # trajectories and counterfactuals do not read it (futures' collision reading only)
    moving = _sphere_past_a_resting_cylinder(0.8)
    base = dataclass_replace(SHORT, future_frames=8)
    off = PropNetVideoDynamics.load(config=base)
    on = PropNetVideoDynamics.load(config=dataclass_replace(base, future_tolerance=0.15))
    assert on.future(moving, 8)[0] == off.future(moving, 8)[0]
    for k in (0, 1, 2):
        assert on.counterfactual(moving, k) == off.counterfactual(moving, k)
    with pytest.raises(ConfigError, match="future_tolerance"):
        RolloutConfig(future_tolerance=-0.1)


def test_future_reach_adds_a_future_near_pass_and_never_drops_a_collision_the_plain_rule_finds():
    """``future_tolerance`` 0.15 loses a touch right after the video whose pair was already within 0.15 at
    its end (the widened rule dates it into the observed frames); ``future_reach`` 0.15 keeps it and adds the near
    pass.  States and counterfactuals never read it."""
    d = 2 * HALF_EXTENT
    ann = _still_annotation({0: "sphere", 1: "sphere", 2: "sphere"}, {0: 0.0, 1: 0.0, 2: 0.0},
                            {0: (0.0, 0.0), 1: (d + 0.6, 0.0), 2: (-d - 0.05, 0.0)})
    last = ann.motion_trajectory[-1].frame_id

    def state(k, x):
        return ObjectState(k, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True)

    gaps = (0.5, 0.35, 0.22, 0.14, 0.11, 0.10, 0.10)  # (0, 1): a near pass 0.10 short
    touch = (-0.01, -0.01, 0.05, 0.2, 0.3, 0.4, 0.5)  # (0, 2): 0.05 apart at the end, touching at once after
    future = tuple(FrameStates(last + 1 + i, (state(0, 0.0), state(1, d + g), state(2, -d - t)))
                   for i, (g, t) in enumerate(zip(gaps, touch, strict=True)))
    frames = (*ann.motion_trajectory, *future)
    plain = PropNetVideoDynamics.load(config=SHORT)
    wide = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, future_tolerance=0.15))
    reach = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, future_reach=0.15))
    assert RolloutConfig().future_reach == 0.0  # off by default
    assert [(c.object_ids, c.frame_id) for c in plain.future_collisions(ann, frames)] == [((0, 2), last + 1)]
    assert [(c.object_ids, c.frame_id) for c in wide.future_collisions(ann, frames)] == [((0, 1), last + 4)]
    assert [(c.object_ids, c.frame_id) for c in reach.future_collisions(ann, frames)] == [((0, 2), last + 1),
                                                                                          ((0, 1), last + 4)]
    moving = _sphere_past_a_resting_cylinder(0.8)  # passes the cylinder 0.1 apart
    base = dataclass_replace(SHORT, future_frames=8)
    off = PropNetVideoDynamics.load(config=base)
    on = PropNetVideoDynamics.load(config=dataclass_replace(base, future_reach=0.15))
    assert on.future(moving, 8)[0] == off.future(moving, 8)[0]
    for k in (0, 1, 2):
        assert on.counterfactual(moving, k) == off.counterfactual(moving, k)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ConfigError, match="future_reach"):
            RolloutConfig(future_reach=bad)


def test_counterfactual_reach_adds_a_near_pass_after_the_video_and_never_one_inside_it_or_a_known_pair():
    """Hand-made counterfactual frames, the video's last observed frame 2.  Sphere 1
    slides at resting sphere 0 and stops 0.10 short: ``counterfactual_reach`` 0.15 makes it a collision where the gap
    first falls below 0.15; sphere 2 sat 0.12 from 0 since the video (no new touch); a pair the counterfactual already
    holds within ``collision_gap`` frames is not added twice (another pair's does not count); 0.05 adds nothing; a
    near pass inside the video adds nothing."""
    from physics.models.video_propnet import _counterfactual_reach_collisions

    d = 2 * HALF_EXTENT

    def state(k, x):
        return ObjectState(k, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0,) * 3, (0.0,) * 3, True)

    gaps = (0.9, 0.7, 0.5, 0.35, 0.22, 0.14, 0.11, 0.10, 0.10)
    frames = tuple(FrameStates(f, (state(0, 0.0), state(1, d + g), state(2, -d - 0.12))) for f, g in enumerate(gaps))
    shapes = {0: "sphere", 1: "sphere", 2: "sphere"}
    reach = dataclass_replace(SHORT, counterfactual_reach=0.15)

    def added(cfg, last, have=()):
        return [(c.object_ids, c.frame_id) for c in _counterfactual_reach_collisions(frames, shapes, cfg, last, have)]

    assert added(reach, 2) == [((0, 1), 5)]
    assert added(reach, 2, (Collision((0, 1), 8, (0.0, 0.0, 0.0)),)) == []  # 3 frames from one it holds
    assert added(reach, 2, (Collision((0, 2), 5, (0.0, 0.0, 0.0)),)) == [((0, 1), 5)]
    assert added(dataclass_replace(SHORT, counterfactual_reach=0.05), 2) == []
    assert added(reach, 5) == []  # dated inside the video: the plain rule's business


def test_counterfactual_reach_reaches_counterfactual_collisions_only_and_is_refused_unless_valid():
    """The option adds to a counterfactual's collisions and never removes one; its rolled-out states, every future
    (states and collisions) and the default (off) are unchanged; bad values are refused by name."""
    moving = _sphere_past_a_resting_cylinder(0.8)  # the sphere passes the cylinder 0.1 apart
    base = dataclass_replace(SHORT, future_frames=8)
    off = PropNetVideoDynamics.load(config=base)
    on = PropNetVideoDynamics.load(config=dataclass_replace(base, counterfactual_reach=0.3))
    assert RolloutConfig().counterfactual_reach == 0.0  # off by default
    assert on.future(moving, 8) == off.future(moving, 8)
    grew = False
    for k in (0, 1, 2):
        a, b = on.counterfactual(moving, k), off.counterfactual(moving, k)
        assert a.trajectory == b.trajectory and set(b.collisions) <= set(a.collisions)
        grew |= len(a.collisions) > len(b.collisions)
    assert grew  # the far sphere removed: the pass within 0.3 of the cylinder after the video is a collision
    for bad in (-0.1, math.nan, math.inf, True, "0.1"):
        with pytest.raises(ConfigError, match="counterfactual_reach"):
            RolloutConfig(counterfactual_reach=bad)


def _free_roll(far: bool) -> VideoAnnotation:
    """12 frames: a red rubber sphere rolls along y = 0 at about 1.4 units/s, slowing; a blue cube rests at (3, 3)
    (``far``) or 0.1 beside the sphere's path ahead of it."""
    def state(k, x, y):
        return ObjectState(k, (x, y, 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    cube = (3.0, 3.0) if far else (-2.0, 2 * HALF_EXTENT + 0.1)
    frames = tuple(FrameStates(f, (state(0, -3.0 + 0.06 * f - 0.0002 * f * f, 0.0), state(1, *cube))) for f in range(12))
    props = (ObjectProperty(0, "red", "rubber", "sphere"), ObjectProperty(1, "blue", "rubber", "cube"))
    return VideoAnnotation(0, "v.gif", props, frames, ())


def test_free_slide_moves_a_free_rolling_sphere_by_the_friction_prior_only_in_futures_and_is_off_by_default():
    """A free rolling sphere's future steps lose exactly the rolling prior's deceleration (the PropNet's
    own lose about twice as much); near another object, or with the option off, the PropNet's steps stand;
    counterfactuals never read it."""
    from physics.models.video_propnet import FREE_SLIDES, prior_deceleration

    assert RolloutConfig().free_slide == "off" and FREE_SLIDES == ("off", "spheres", "all")
    fps = SHORT.fps

    def speeds(ann, mode):
        dyn = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, free_slide=mode))
        xs = [fr.by_id()[0].location[0] for fr in (ann.motion_trajectory[-1], *dyn.future(ann, 10)[0])]
        return np.diff(xs) * fps, dyn

    free = _free_roll(far=True)
    off, plain = speeds(free, "off")
    on, dyn = speeds(free, "spheres")
    expected = [on[0]]
    for _ in on[1:]:
        expected.append(expected[-1] - prior_deceleration(expected[-1], rolling=True))
    np.testing.assert_allclose(on, expected, atol=1e-6)
    assert on[-1] > off[-1] + 0.05  # the PropNet alone slows it faster than the world's rolling friction
    np.testing.assert_array_equal(speeds(free, "all")[0], on)  # the cube rests: "all" moves the same
    for k in (0, 1):
        assert dyn.counterfactual(free, k) == plain.counterfactual(free, k)
    near = _free_roll(far=False)  # the cube within the clearance of the sphere's path: the PropNet's steps
    np.testing.assert_array_equal(speeds(near, "spheres")[0], speeds(near, "off")[0])
    for bad in ("cubes", "", None):
        with pytest.raises(ConfigError, match="free_slide"):
            RolloutConfig(free_slide=bad)
    for bad in (0.0, -0.1, math.nan, True):
        with pytest.raises(ConfigError, match="free_slide_clearance"):
            RolloutConfig(free_slide_clearance=bad)


def test_free_slide_all_slows_a_free_sliding_cube_by_the_sliding_prior_and_spheres_leaves_it_to_the_propnet():
    from physics.models.video_propnet import prior_deceleration

    def state(k, x, y):
        return ObjectState(k, (x, y, 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    frames = tuple(FrameStates(f, (state(0, -3.0 + 0.1 * f - 0.002 * f * f, 0.0), state(1, 3.0, 3.0)))
                   for f in range(12))  # a cube sliding at about 2.5 units/s, losing 0.1 a frame
    ann = VideoAnnotation(0, "v.gif", (ObjectProperty(0, "red", "metal", "cube"),
                                       ObjectProperty(1, "blue", "rubber", "sphere")), frames, ())

    def speeds(mode):
        dyn = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, free_slide=mode))
        xs = [fr.by_id()[0].location[0] for fr in (ann.motion_trajectory[-1], *dyn.future(ann, 6)[0])]
        return np.diff(xs) * SHORT.fps

    on = speeds("all")
    np.testing.assert_allclose(on[1:], [s - prior_deceleration(s, rolling=False) for s in on[:-1]], atol=1e-6)
    np.testing.assert_array_equal(speeds("spheres"), speeds("off"))


def test_free_slide_clearance_decides_which_steps_beside_a_neighbour_the_prior_takes_and_counterfactuals_never_change():
    """The sphere of ``_free_roll(far=False)`` passes a resting cube 0.135 apart (footprints).  With a
    clearance below that gap every future step after the first is the rolling prior's; with 0.2 the PropNet takes the
    steps beside the cube.  At the clearances tried (0.2-0.3), in both modes, counterfactuals stay the PropNet's."""
    from physics.models.video_propnet import prior_deceleration

    near = _free_roll(far=False)

    def run(mode, clearance):
        dyn = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, free_slide=mode,
                                                                 free_slide_clearance=clearance))
        xs = [fr.by_id()[0].location[0] for fr in (near.motion_trajectory[-1], *dyn.future(near, 10)[0])]
        return np.diff(xs) * SHORT.fps, dyn

    def prior_chain(steps):
        out = [steps[0]]
        for _ in steps[1:]:
            out.append(out[-1] - prior_deceleration(out[-1], rolling=True))
        return out

    wide, _ = run("spheres", 0.1)
    np.testing.assert_allclose(wide, prior_chain(wide), atol=1e-6)
    tight, _ = run("spheres", 0.2)
    assert np.abs(np.asarray(tight) - prior_chain(tight)).max() > 1e-3
    off, plain = run("off", 0.5)
    for mode in ("spheres", "all"):
        for clearance in (0.2, 0.25, 0.3):
            _, dyn = run(mode, clearance)
            for k in (0, 1):
                assert dyn.counterfactual(near, k) == plain.counterfactual(near, k)


def test_rest_hold_keeps_a_resting_object_in_place_until_another_comes_near_and_never_touches_counterfactuals():
    """``RolloutConfig.rest_hold``.  RestHold on a synthetic rollout: a resting cube the 'PropNet' drifts
    stays put until a sphere's footprint comes within the distance, then its predicted steps stand; a moving
    object is never held.  Through the PropNet: the far resting cube of ``_free_roll`` stays exactly in place in
    the future, and counterfactuals are the same with the option on; off by default, bad values refused."""
    from physics.models.video_propnet import RestHold

    T, t_pred = 30, 5
    state = np.zeros((T, 2, 3))
    state[:, 1, 0] = 3.0 - 0.1 * np.arange(T)  # a sphere closing in along x at 0.1 a frame
    state[t_pred:, 0, 0] = 0.01 * np.arange(1, T - t_pred + 1)  # the PropNet's drift of the resting cube
    predicted = np.zeros((T, 2), bool)
    predicted[t_pred:] = True
    hold = RestHold(0.15, ["cube", "sphere"])
    for f in range(t_pred, T):
        hold.step(state, predicted, f)
    gap = np.abs(state[:, 1, 0] - state[:, 0, 0]) - CUBE_MEAN_REACH - HALF_EXTENT
    assert not hold.held.any()  # the cube released once the sphere came near; the moving sphere never held
    first_moved = int(np.flatnonzero(state[t_pred:, 0, 0] != 0.0)[0]) + t_pred
    assert gap[first_moved] < 0.15 + 0.1 and gap[first_moved - 1] >= 0.15 - 1e-9
    np.testing.assert_array_equal(state[t_pred:first_moved, 0], np.zeros((first_moved - t_pred, 3)))

    assert RolloutConfig().rest_hold == 0.0
    free = _free_roll(far=True)
    plain = PropNetVideoDynamics.load(config=SHORT)
    held = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, rest_hold=0.15))
    last = free.motion_trajectory[-1].by_id()[1].location[:2]
    for fr in held.future(free, 10)[0]:
        assert fr.by_id()[1].location[:2] == last
    for k in (0, 1):
        assert held.counterfactual(free, k) == plain.counterfactual(free, k)
    for bad in (-0.1, math.nan, True):
        with pytest.raises(ConfigError, match="rest_hold"):
            RolloutConfig(rest_hold=bad)


def _diagonal_roll(cube_at: tuple[float, float]) -> VideoAnnotation:
    """12 frames: a red rubber sphere rolls at 35 degrees at about 1.4 units/s, slowing; a blue cube rests at
    ``cube_at``."""
    def state(k, x, y):
        return ObjectState(k, (x, y, 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)

    a = math.radians(35.0)
    frames = tuple(FrameStates(f, (state(0, -3.0 + math.cos(a) * (0.06 * f - 0.0002 * f * f),
                                         -1.0 + math.sin(a) * (0.06 * f - 0.0002 * f * f)), state(1, *cube_at)))
                   for f in range(12))
    props = (ObjectProperty(0, "red", "rubber", "sphere"), ObjectProperty(1, "blue", "rubber", "cube"))
    return VideoAnnotation(0, "v.gif", props, frames, ())


def test_heading_hold_keeps_free_objects_on_their_last_heading_at_the_propnets_step_length_only_when_free():
    """``HeadingHold`` on a synthetic rollout whose 'PropNet' turns a sphere and a cube by 1 degree a
    frame: with ``spheres`` the sphere's steps keep the heading of its last observed step, each at the turned step's
    length, and the cube turns on; with ``all`` both are held; an object within the clearance of another keeps the
    turned step."""
    from physics.models.video_propnet import HEADING_HOLDS, HeadingHold

    assert HEADING_HOLDS == ("off", "spheres", "all") and RolloutConfig().heading_hold == "off"
    T, t_pred = 25, 5

    heading = np.radians(np.concatenate([np.full(t_pred, 20.0), 20.0 + np.arange(1, T - t_pred + 1)]))
    turned = 0.05 * np.stack([np.cos(heading), np.sin(heading)], axis=1)  # the 'PropNet's step into each frame

    def run(mode: str, cube_start: tuple[float, float]) -> np.ndarray:
        state = np.zeros((T, 2, 3))
        state[0, 0, :2], state[0, 1, :2] = (-3.0, -3.0), cube_start
        predicted = np.zeros((T, 2), bool)
        predicted[t_pred:] = True
        hold = HeadingHold(mode, 0.15, ["sphere", "cube"])
        for f in range(1, T):  # each frame: the PropNet's step from the frame before, then the hold
            state[f, :, :2] = state[f - 1, :, :2] + turned[f]
            hold.step(state, predicted, f)
        return state

    def headings(xy: np.ndarray) -> np.ndarray:
        steps = np.diff(xy, axis=0)
        return np.degrees(np.arctan2(steps[:, 1], steps[:, 0]))

    far = (-3.0, 1.0)
    held = run("spheres", far)
    np.testing.assert_allclose(headings(held[t_pred - 1:, 0, :2]), 20.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(np.diff(held[:, 0, :2], axis=0), axis=1), 0.05, atol=1e-12)
    np.testing.assert_allclose(headings(held[t_pred - 1:, 1, :2]), 20.0 + np.arange(1, T - t_pred + 1), atol=1e-9)
    both = run("all", far)
    np.testing.assert_allclose(headings(both[t_pred - 1:, 1, :2]), 20.0, atol=1e-9)
    near = run("all", (-3.0, -3.0 + 2 * HALF_EXTENT + 0.1))  # footprints 0.1 apart, side by side: never free
    np.testing.assert_allclose(headings(near[t_pred - 1:, 0, :2]), 20.0 + np.arange(1, T - t_pred + 1), atol=1e-9)


def test_heading_hold_straightens_the_propnets_future_of_a_free_sphere_and_never_touches_counterfactuals():
    """Through the shipped PropNet a free sphere rolling at 35 degrees turns by a few degrees over 20
    future frames; with ``heading_hold`` ``spheres`` every future step keeps 35 degrees; the cube near its path
    (inside the clearance) leaves its steps there to the PropNet; counterfactuals are the same with the option
    on; bad values are refused by name."""
    def future_headings(ann, mode):
        dyn = PropNetVideoDynamics.load(config=dataclass_replace(SHORT, heading_hold=mode))
        xy = np.array([fr.by_id()[0].location[:2] for fr in (ann.motion_trajectory[-1], *dyn.future(ann, 20)[0])])
        steps = np.diff(xy, axis=0)
        return np.degrees(np.arctan2(steps[:, 1], steps[:, 0])), dyn

    free = _diagonal_roll((3.0, -3.0))
    off, plain = future_headings(free, "off")
    on, dyn = future_headings(free, "spheres")
    assert np.abs(off - 35.0).max() > 1.0  # the PropNet alone turns the free sphere
    np.testing.assert_allclose(on, 35.0, atol=1e-6)
    for k in (0, 1):
        assert dyn.counterfactual(free, k) == plain.counterfactual(free, k)
    # a cube resting 0.05 beside the sphere's path 0.6 ahead: the steps beside it are the PropNet's
    a = math.radians(35.0)
    x, y = free.motion_trajectory[-1].by_id()[0].location[:2]
    side = HALF_EXTENT + CUBE_MEAN_REACH + 0.05
    near = _diagonal_roll((x + 0.6 * math.cos(a) - side * math.sin(a), y + 0.6 * math.sin(a) + side * math.cos(a)))
    near_on, _ = future_headings(near, "spheres")
    assert np.abs(near_on - 35.0).max() > 1e-3
    for bad in ("cubes", "", None):
        with pytest.raises(ConfigError, match="heading_hold"):
            RolloutConfig(heading_hold=bad)
    for bad in (0.0, -0.1, math.nan, True):
        with pytest.raises(ConfigError, match="heading_hold_clearance"):
            RolloutConfig(heading_hold_clearance=bad)
