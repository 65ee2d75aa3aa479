"""The functional model interface: batched learned rollouts and the simulator with saved states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physics.control import (
    BoxPushCornersEnv,
    BoxPushCornersTaskConfig,
    BoxPushEnv,
    BoxPushTaskConfig,
    LearnedModel,
    RopeShapeEnv,
    SimulatorModel,
    make_planning_model,
)
from physics.errors import ConfigError


def _env_at_seed_4(cls):
    env = cls()
    env.reset(seed=4)
    yield env
    env.close()


@pytest.fixture(scope="module")
def boxes():
    yield from _env_at_seed_4(BoxPushEnv)


def _actions(env, b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return env.node_actions(2 * torch.rand(b, t, 2, generator=g) - 1)


@pytest.mark.parametrize("name", ["propnet", "dpinet"])
def test_batched_candidates_equal_one_at_a_time(boxes, name):
    model = make_planning_model(name, "boxes")
    model.bind(boxes)
    hist = torch.as_tensor(boxes.history(model.history_frames), dtype=torch.float32)
    acts = _actions(boxes, 5, 3)
    with torch.no_grad():
        batched = model.predict(hist, acts)
        single = torch.cat([model.predict(hist, acts[i : i + 1]) for i in range(5)])
    assert batched.shape == (5, 3 * boxes.config.repeat, boxes.world.num_nodes, 3)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_simulator_model_restores_the_world_and_matches_stepping_it(boxes):
    gt = SimulatorModel()
    gt.bind(boxes)
    before = boxes.world.state()
    acts = _actions(boxes, 2, 2)
    pred = gt.predict(torch.zeros(1), acts)
    np.testing.assert_array_equal(boxes.world.state(), before)
    env = BoxPushEnv()
    env.reset(seed=4)
    for k in range(acts.shape[1]):
        env.world.step(acts[1, k].double().numpy())
    # restoreState does not restore the contact solver's warm start: 1e-4 m is the drift seen
    np.testing.assert_allclose(pred[1, -1].numpy(), env.world.state(), atol=2e-4)
    env.close()


def test_learned_boxes_model_follows_the_simulator_and_has_gradients(boxes):
    model = make_planning_model("propnet", "boxes")
    model.bind(boxes)
    gt = SimulatorModel()
    gt.bind(boxes)
    raw = (2 * torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(1)) - 1).requires_grad_(True)
    hist = torch.as_tensor(boxes.history(model.history_frames), dtype=torch.float32)
    pred = model.predict(hist, boxes.node_actions(raw))
    true = gt.predict(hist, boxes.node_actions(raw.detach()))
    err = (pred.detach() - true).norm(dim=-1).mean()
    assert float(err) < 2e-3  # metres, over 8 world steps
    boxes.cost(pred).sum().backward()
    assert raw.grad is not None and float(raw.grad.abs().sum()) > 0


def test_rope_models_plan_on_the_rope_task():
    env = RopeShapeEnv()
    env.reset(seed=0)
    model = make_planning_model("dpinet", "rope")
    assert isinstance(model, LearnedModel)
    model.bind(env)
    hist = torch.as_tensor(env.history(model.history_frames), dtype=torch.float32)
    with torch.no_grad():
        pred = model.predict(hist, _actions(env, 4, 2))
    assert pred.shape == (4, 8, env.world.num_nodes, 3) and torch.isfinite(pred).all()
    env.close()


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match="gt"):
        make_planning_model("propnett", "boxes")


def test_a_checkpoint_of_another_world_is_refused_naming_both_worlds(boxes):
    from physics.control.model import CHECKPOINTS
    from physics.errors import CheckpointError

    # same model and same attribute sizes: without the check it would plan silently
    model = make_planning_model("dpinet", "fluidshake", CHECKPOINTS / "ricegrip_dpinet.pt")
    assert model.trained_on == "ricegrip"
    with pytest.raises(CheckpointError, match="trained on world 'rope'; this task runs on 'boxes'"):
        make_planning_model("dpinet", "boxes", CHECKPOINTS / "rope_dpinet.pt").bind(boxes)


def test_boxes_propnet_plans_with_its_registered_control_checkpoint(boxes):
    from physics.control.model import CHECKPOINTS, CONTROL_CHECKPOINTS, default_checkpoint

    assert "boxes_propnet" in CONTROL_CHECKPOINTS and default_checkpoint("propnet", "boxes").is_file()
    assert default_checkpoint("propnet", "rope") == CHECKPOINTS / "rope_propnet.pt"  # none registered: the shipped one
    control = make_planning_model("propnet", "boxes")
    shipped = make_planning_model("propnet", "boxes", CHECKPOINTS / "boxes_propnet.pt")
    changed = [k for k, v in control.model.state_dict().items() if not torch.equal(v, shipped.model.state_dict()[k])]
    assert changed  # a different model from the dynamics checkpoint, same architecture


@pytest.fixture(scope="module")
def corners():
    yield from _env_at_seed_4(BoxPushCornersEnv)


def _corner_propnet(seed=0):
    """An untrained PropNet with shape matching on the corner world (the checkpoint's architecture)."""
    from physics.models import make_model, preset

    torch.manual_seed(seed)
    cfg = preset("boxes", "propnet", dim=3, node_attr_dim=5, edge_attr_dim=1, shape_matching=True)
    return LearnedModel(make_model("propnet", cfg))


def test_focused_rollout_holds_far_boxes_and_keeps_boxes_rigid(corners):
    model = _corner_propnet()
    model.bind(corners)
    hist = torch.as_tensor(corners.history(model.history_frames), dtype=torch.float32)
    keep = corners.focus_nodes(hist[-1])
    assert keep is not None and 0 < int(keep.sum()) < corners.world.num_nodes
    assert keep[corners.actuated_node] and keep[4 * corners.target: 4 * corners.target + 4].all()
    assert (keep.reshape(-1)[:-1].reshape(-1, 4).all(dim=1) == keep[:-1].reshape(-1, 4).any(dim=1)).all()  # whole boxes
    acts = _actions(corners, 3, 2)
    with torch.no_grad():
        pred = model.predict(hist, acts)
        single = torch.cat([model.predict(hist, acts[i: i + 1]) for i in range(3)])
    assert pred.shape == (3, 8, corners.world.num_nodes, 3) and torch.isfinite(pred).all()
    torch.testing.assert_close(pred, single, atol=1e-5, rtol=0)
    far = ~keep
    torch.testing.assert_close(pred[:, :, far], hist[-1, far].expand(3, 8, -1, 3))  # out of focus: still
    box = pred[:, -1, 4 * corners.target: 4 * corners.target + 4]
    rest = hist[-1, 4 * corners.target: 4 * corners.target + 4]
    torch.testing.assert_close(torch.cdist(box, box), torch.cdist(rest, rest)[None].expand(3, 4, 4), atol=1e-4, rtol=0)


def test_focused_rollout_has_gradients_and_no_focus_rolls_every_node(corners):
    model = _corner_propnet()
    model.bind(corners)
    hist = torch.as_tensor(corners.history(model.history_frames), dtype=torch.float32)
    raw = (2 * torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(1)) - 1).requires_grad_(True)
    corners.cost(model.predict(hist, corners.node_actions(raw))).sum().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    whole = BoxPushCornersEnv(BoxPushCornersTaskConfig(focus=None))
    whole.reset(seed=4)
    assert whole.focus_nodes(hist[-1]) is None and BoxPushTaskConfig().focus is None
    whole.close()


def test_shipped_corner_propnet_pushes_the_box_like_the_simulator(corners):
    """Drive the pusher into the target box for 24 world steps: the corners follow pybullet."""
    model = make_planning_model("propnet", corners.checkpoint_world)
    assert model.model.config.shape_matching
    model.bind(corners)
    gt = SimulatorModel()
    gt.bind(corners)
    state = corners.world.state()
    toward = torch.as_tensor(corners.box_centres(state)[corners.target] - state[corners.actuated_node, :2])
    raw = (toward / toward.norm()).float().expand(1, 6, 2).clone()
    hist = torch.as_tensor(corners.history(model.history_frames), dtype=torch.float32)
    with torch.no_grad():
        pred = model.predict(hist, corners.node_actions(raw))
    true = gt.predict(hist, corners.node_actions(raw))
    assert float((true[0, -1, 4 * corners.target: 4 * corners.target + 4] - hist[-1, 4 * corners.target: 4 * corners.target + 4]).norm(dim=-1).max()) > 1e-3  # pushed
    assert float((pred - true).norm(dim=-1).max()) < 5e-3  # metres, over 24 world steps


def test_kinematic_pusher_moves_by_its_commanded_velocity_and_passes_gradients(corners):
    model = _corner_propnet()
    model.bind(corners)
    node, dt = corners.kinematic_node()
    assert node == corners.actuated_node and dt == pytest.approx(corners.world.dt)
    hist = torch.as_tensor(corners.history(model.history_frames), dtype=torch.float32)
    raw = (2 * torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(2)) - 1).requires_grad_(True)
    acts = corners.node_actions(raw)
    pred = model.predict(hist, acts)
    expected = hist[-1, node] + dt * acts[:, :, node].cumsum(dim=1)
    torch.testing.assert_close(pred[:, :, node], expected, atol=1e-6, rtol=0)
    pred[:, -1, node, :2].sum().backward()
    assert raw.grad is not None and float(raw.grad.abs().sum()) > 0
    assert BoxPushTaskConfig().kinematic_pusher is False  # the centre task's rows predict the pusher
