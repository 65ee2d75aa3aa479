"""Training windows of the video PropNet turned about the vertical axis: a turned window is the window of the turned
scene, batches turn graph by graph, inputs stay as they were, and the option is typed, stored only when on, and
refused where a world declares no turn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from physics.errors import ConfigError
from physics.graph.builder import GraphBuilder
from physics.models import make_model, preset
from physics.models.contact import contact_features
from physics.models.data import one_step_graphs
from physics.models.training import TrainConfig, _flags, train
from physics.models.video_propnet import NODE_ATTR_DIM, STATE_DIM, random_rotation, rotate_windows
from physics.models.video_propnet.trajectories import _make_trajectory
from physics.worlds.clevr_properties import MATERIALS, SHAPES

FPS = 25.0
STEPS = (4, 7, 10)  # sample frames: the sphere's launch (frame 4) is the first one's action
HORIZON = 3


def _attrs(shapes: list[str]) -> np.ndarray:
    a = np.zeros((len(shapes), len(SHAPES) + len(MATERIALS)), np.float32)
    for k, s in enumerate(shapes):
        a[k, SHAPES.index(s)] = 1.0
        a[k, len(SHAPES)] = 1.0
    return a


def _scene(phi: float = 0.0) -> np.ndarray:
    """States [T, 3, 3] of a turning, sliding cube, a sphere launched from rest at frame 4 and a cylinder sliding by,
    the whole scene turned by ``phi`` about the origin (the cube's yaw + phi, brought into [-pi, pi) at frame 0)."""
    t = np.arange(16, dtype=np.float64)
    pos = np.zeros((16, 3, 3))
    pos[:, 0, 0], pos[:, 0, 1], pos[:, 0, 2] = 1.0 + 0.05 * t, -0.5 + 0.02 * t, 0.3 + 0.04 * t
    pos[:, 1, 0], pos[:, 1, 1] = -2.0 + 0.08 * np.clip(t - 4, 0, None), 1.5
    pos[:, 2, 0], pos[:, 2, 1] = 2.5 - 0.03 * t, 2.0 + 0.06 * t
    c, s = math.cos(phi), math.sin(phi)
    x, y = pos[..., 0].copy(), pos[..., 1].copy()
    pos[..., 0], pos[..., 1] = c * x - s * y, s * x + c * y
    yaw = pos[:, 0, 2] + phi
    pos[:, 0, 2] = yaw - 2 * math.pi * math.floor((yaw[0] + math.pi) / (2 * math.pi))
    return pos


def _samples(pos: np.ndarray):
    traj = _make_trajectory(pos, _attrs(["cube", "sphere", "cylinder"]), FPS, {"name": "scene"})
    cfg = preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM, edge_attr_dim=0)
    return traj, one_step_graphs(traj, GraphBuilder(cfg.graph), list(STEPS), horizon=HORIZON)


@pytest.mark.parametrize("phi", [0.9, -2.4, 3.0])
def test_a_turned_window_is_the_window_of_the_turned_scene_and_leaves_its_input_alone(phi):
    traj, plain = _samples(_scene(0.0))
    _, turned_scene = _samples(_scene(phi))
    assert np.abs(traj.actions[4, 1, :2]).sum() > 0  # the launch is an action of the first sample
    for g, want in zip(plain, turned_scene, strict=True):
        before = {k: g[k].clone() for k in ("pos_hist", "target_pos", "target_seq", "action", "action_seq")}
        got = rotate_windows(g, torch.tensor([phi]))
        for key, old in before.items():
            torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=0, msg=key)
            assert torch.equal(g[key], old)  # the input is not changed
        # spheres and cylinders keep a zero orientation channel; the cube's yaw turned with the scene
        assert torch.equal(got.pos_hist[1:, :, 2], torch.zeros_like(got.pos_hist[1:, :, 2]))
        # the gaps and approach speeds the model reads are the same for the turned window
        s, r = g.edge_index
        leaf = torch.ones(s.shape[0], dtype=torch.bool)
        torch.testing.assert_close(contact_features("clevrer", got.pos_hist, g.node_attr, s, r, 0.05, leaf),
                                   contact_features("clevrer", g.pos_hist, g.node_attr, s, r, 0.05, leaf), atol=1e-5, rtol=0)


def test_a_batch_turns_each_graph_by_its_own_angle_and_random_angles_stay_within_the_bound():
    _, plain = _samples(_scene(0.0))
    batch = Batch.from_data_list(plain[:2])
    got = rotate_windows(batch, torch.tensor([0.9, -2.4]))
    for k, phi in enumerate((0.9, -2.4)):
        _, want = _samples(_scene(phi))
        rows = batch.batch == k
        torch.testing.assert_close(got.pos_hist[rows], want[k].pos_hist, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.target_seq[rows], want[k].target_seq, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="3 angles for 2 graphs"):
        rotate_windows(batch, torch.zeros(3))
    # random turns: within +-10 degrees the sphere's heading changes by at most 10 degrees, and the draws repeat
    many = Batch.from_data_list([plain[1]] * 64)
    a = random_rotation(many, 10.0, torch.Generator().manual_seed(3))
    b = random_rotation(many, 10.0, torch.Generator().manual_seed(3))
    assert torch.equal(a.pos_hist, b.pos_hist)
    step = a.pos_hist[many.batch == 0][1, -1, :2] - a.pos_hist[many.batch == 0][1, -2, :2]
    heads = []
    for k in range(64):
        v = a.pos_hist[many.batch == k][1]
        d = v[-1, :2] - v[-2, :2]
        heads.append(math.degrees(math.atan2(float(d[1]), float(d[0]))))
    assert max(abs(h) for h in heads) <= 10.0 + 1e-4 and np.std(heads) > 2.0
    assert float(step.norm()) == pytest.approx(0.08, abs=1e-5)


def test_augment_rotate_is_typed_stored_only_when_on_and_refused_without_a_turn(tmp_path):
    assert "augment_rotate" not in _flags(TrainConfig())
    assert _flags(TrainConfig(augment_rotate=180.0))["augment_rotate"] == 180.0
    for bad in (-1.0, 181.0, float("nan")):
        with pytest.raises(ConfigError, match="augment_rotate must be a turn in degrees"):
            TrainConfig(augment_rotate=bad)
    with pytest.raises(ConfigError, match="augment_rotate"):
        TrainConfig(augment_rotate="ninety")
    traj, _ = _samples(_scene(0.0))
    model = make_model("propnet", preset("clevrer", "propnet", dim=STATE_DIM, node_attr_dim=NODE_ATTR_DIM))
    with pytest.raises(ConfigError, match="--augment-rotate 90: this world's trainer declares no turn"):
        train(model, [traj, traj], [], tmp_path / "run", TrainConfig(augment_rotate=90.0, epochs=1, device="cpu"))
    g = _samples(_scene(0.0))[1][0].clone()
    g.box_bounds = torch.zeros(g.num_nodes, 2, 3)
    with pytest.raises(ConfigError, match="box_bounds"):
        rotate_windows(g, torch.tensor([0.5]))


def test_training_with_augment_rotate_turns_the_batches_and_stores_the_flag(tmp_path, monkeypatch):
    import physics.models.video_propnet.augment as augment
    from physics.models.video_propnet import train_video_model

    traj, _ = _samples(_scene(0.0))
    other = _make_trajectory(_scene(1.0), _attrs(["cube", "sphere", "cylinder"]), FPS, {"name": "other"})
    seen = []
    orig = augment.rotate_windows

    def spy(g, angles):
        seen.append(angles.clone())
        return orig(g, angles)

    monkeypatch.setattr(augment, "rotate_windows", spy)
    cfg = TrainConfig(epochs=1, batch_size=4, max_samples=8, valid_samples=4, seed=0, device="cpu", augment_rotate=180.0)
    out = train_video_model("propnet", [traj, other], tmp_path / "run", cfg, valid_fraction=0.5,
                            overrides={"contact": "clevrer"}, progress=False)
    assert seen and all(float(a.abs().max()) <= math.pi for a in seen) and float(torch.cat(seen).std()) > 0.1
    ckpt = torch.load(out["files"]["checkpoint"], weights_only=True)
    assert ckpt["train_state"]["flags"]["augment_rotate"] == 180.0


def test_the_turn_averaged_step_is_equivariant_to_its_turns_and_the_rollout_option_is_off_by_default():
    from physics.models.resolver import load_model
    from physics.models.video_propnet import SHIPPED_CHECKPOINT, RolloutConfig
    from physics.models.video_propnet.augment import turn_averaged_step

    model, _ = load_model(SHIPPED_CHECKPOINT)
    model.eval()
    _, plain = _samples(_scene(0.0))
    g = plain[1]
    with torch.no_grad():
        step = turn_averaged_step(model, g, 4)
        # the scene turned by a quarter turn: the averaged step is the turned step (exactly, up to float error)
        turned = rotate_windows(g, torch.tensor([math.pi / 2]))
        want = rotate_windows(_with_pos(g, step), torch.tensor([math.pi / 2])).pos_hist[:, -1]
        torch.testing.assert_close(turn_averaged_step(model, turned, 4), want, atol=2e-5, rtol=0)
        # the plain learned step is not equivariant (the reason for the option)
        plain_turned = model.next_positions(turned)
        plain_want = rotate_windows(_with_pos(g, model.next_positions(g)), torch.tensor([math.pi / 2])).pos_hist[:, -1]
        assert float((plain_turned - plain_want)[:, :2].abs().max()) > 1e-4
    assert RolloutConfig().turn_average == 0
    for bad in (1, -2):
        with pytest.raises(ConfigError, match="turn_average must be 0"):
            RolloutConfig(turn_average=bad)
    with pytest.raises(ConfigError, match="turns >= 2"):
        turn_averaged_step(model, g, 1)


def _with_pos(g, nxt):
    """``g`` with its history's last frame replaced by ``nxt`` (to turn a prediction as a window is turned)."""
    out = g.clone()
    out.pos_hist = torch.cat([g.pos_hist[:, :-1], nxt[:, None]], dim=1)
    return out
