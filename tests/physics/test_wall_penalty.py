"""The containment penalty of the training loss (``TrainConfig.wall_penalty``, ``DynamicsModel.loss``'s
``wall_penalty``): a prediction past a wall costs, and its gradient points back inside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from physics.errors import ConfigError
from physics.graph import GraphBuilder, collate
from physics.models import TrainConfig, make_model, one_step_graphs, preset
from physics.models.base import wall_excess
from physics.models.training import _flags
from physics.trajectory import Trajectory
from tests.physics.test_rollout_walls import MATERIALS, _walls

INF = float("inf")
BOX = torch.tensor([[[0.2, 0.1], [0.8, INF]]])  # [1, 2, D]: walls at x = 0.2, 0.8, floor 0.1, open top


def test_a_row_past_a_wall_costs_its_squared_excess_and_its_gradient_points_back_inside():
    pos = torch.tensor([[0.15, 0.5], [0.5, 0.5], [0.5, 0.07], [0.5, 3.0], [0.9, 0.05]], requires_grad=True)
    bounds = BOX.expand(5, 2, 2).clone()
    per_row = [float(wall_excess(pos[i : i + 1], bounds[i : i + 1])) for i in range(5)]
    assert per_row[0] == pytest.approx(0.05**2)  # 5 cm past the left wall
    assert per_row[1] == 0.0 and per_row[3] == 0.0  # inside; far above the open top
    assert per_row[2] == pytest.approx(0.03**2)  # 3 cm below the floor
    assert per_row[4] == pytest.approx(0.1**2 + 0.05**2)  # past the right wall and the floor
    wall_excess(pos, bounds, scale=0.5).backward()
    step = -pos.grad  # gradient descent's direction
    assert step[0, 0] > 0 and step[0, 1] == 0  # pushed right, back across the left wall
    assert step[2, 1] > 0 and step[2, 0] == 0  # pushed up, back over the floor
    assert step[4, 0] < 0 and step[4, 1] > 0
    assert torch.all(step[[1, 3]] == 0)


def test_rows_without_walls_cost_nothing():
    pos = torch.tensor([[5.0, -5.0]], requires_grad=True)
    bounds = torch.tensor([[[-INF, -INF], [INF, INF]]])
    out = wall_excess(pos, bounds)
    out.backward()
    assert float(out) == 0.0 and torch.all(pos.grad == 0)


def _static_tank(steps: int = 8) -> Trajectory:
    """Two fluid particles at rest near the left wall of a static tank, and the tank's markers."""
    free = np.array([[0.205, 0.3], [0.5, 0.3]], np.float32)
    start = np.concatenate([free, _walls()]).astype(np.float32)
    n = len(start)
    attr = np.zeros((n, 4), np.float32)
    attr[:2, 0] = 1
    attr[2:, 3] = 1
    return Trajectory(
        positions=np.repeat(start[None], steps, 0), node_attr=attr,
        instance=np.concatenate([[-1, -1], np.zeros(n - 2, int)]).astype(np.int64),
        edges=np.zeros((2, 0), np.int64), edge_attr=np.zeros((0, 0), np.float32),
        actions=np.zeros((steps, n, 2), np.float32), observed=np.ones(n, bool), dt=0.008,
        meta={"materials": MATERIALS, "name": "static tank"},
    )


def _shifting_model(wall_box: float):
    """An IN whose prediction is 'every node moves by a learnable shift' (0.02 m left to start)."""
    cfg = preset("fluidshake", "in", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=8)
    cfg = dataclasses.replace(cfg, graph=dataclasses.replace(cfg.graph, wall_box=wall_box), noise_std=0.0)
    model = make_model("in", cfg)
    model.shift = torch.nn.Parameter(torch.tensor([-0.02, 0.0]))
    model.next_positions = lambda g, pos_hist, *_: pos_hist[:, -1] + model.shift
    return model


@pytest.mark.parametrize("horizon", [1, 3])
def test_the_loss_adds_the_penalty_for_a_prediction_past_the_wall_and_its_gradient_points_inside(horizon):
    model = _shifting_model(wall_box=0.04)
    traj = _static_tank()
    batch = collate(one_step_graphs(traj, GraphBuilder(model.config.graph), steps=[2], horizon=horizon))
    plain = model.loss(batch)
    penalised = model.loss(batch, wall_penalty=10.0)
    assert float(penalised) > float(plain)  # the particle at x = 0.205 lands 1.5 cm past the wall
    model.zero_grad()
    (penalised - plain).backward()
    assert float(-model.shift.grad[0]) > 0  # the penalty's descent moves the prediction back right, inside
    assert float(model.shift.grad[1]) == 0
    model.shift.data = torch.tensor([0.02, 0.0])  # everything stays inside: no penalty
    assert float(model.loss(batch, wall_penalty=10.0)) == pytest.approx(float(model.loss(batch)))


def test_the_penalty_needs_the_containers_bounds():
    model = _shifting_model(wall_box=0.0)
    batch = collate(one_step_graphs(_static_tank(), GraphBuilder(model.config.graph), steps=[2]))
    with pytest.raises(ConfigError, match="wall_box"):
        model.loss(batch, wall_penalty=1.0)


def test_the_training_flag_is_checked_and_stored_only_when_on():
    with pytest.raises(ConfigError, match="wall_penalty"):
        TrainConfig(wall_penalty=-1.0)
    assert "wall_penalty" not in _flags(TrainConfig())
    assert _flags(TrainConfig(wall_penalty=2.5))["wall_penalty"] == 2.5
