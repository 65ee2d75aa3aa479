"""The bulk-step term of the training loss (``TrainConfig.bulk_weight``, ``DynamicsModel.bulk_error``):
it charges the error of each graph's mean moving particle (a bias that moves every particle the same
way), not the scatter around it, leaves the wall markers out, and is stored only when on."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from physics.errors import ConfigError
from physics.graph import GraphBuilder, collate
from physics.models import TrainConfig, one_step_graphs
from physics.models.training import _flags
from tests.physics.test_own_states import _leaking_model, _tank


def _batch(model, horizon: int, copies: int = 1):
    traj = _tank()
    return collate(one_step_graphs(traj, GraphBuilder(model.config.graph), steps=[2, 4, 6][:copies], horizon=horizon))


@pytest.mark.parametrize("horizon", [1, 3])
def test_a_shared_shift_is_charged_in_full_and_the_markers_are_left_out(horizon):
    model = _leaking_model(shift=-0.002)  # every node, markers included, 2 mm left per step
    batch = _batch(model, horizon, copies=2)
    std = model.acc_norm.std
    with torch.no_grad():
        extra = float(model.loss(batch, bulk_weight=2.0) - model.loss(batch))
    # step k of the unroll is k shifts off (the tank is at rest); mean over the D = 2 axes
    per_step = [((k * model.shift / std) ** 2).mean().item() for k in range(1, horizon + 1)]
    assert extra == pytest.approx(2.0 * float(np.mean(per_step)), rel=1e-5)
    rows = model.moving_leaves(batch, batch.node_type >= 0)
    assert int(rows.sum()) == 2 * 2  # the two fluid particles of each copy, no marker


def test_a_scatter_that_cancels_in_each_graph_costs_nothing():
    model = _leaking_model()
    spread = torch.tensor([0.003, -0.001])

    def apart(g, pos_hist=None, *_):
        pos = (g.pos_hist if pos_hist is None else pos_hist)[:, -1]
        moving = model.moving_leaves(g, torch.ones(pos.shape[0], dtype=torch.bool))
        sign = torch.zeros(pos.shape[0])
        sign[moving.nonzero()[:, 0]] = torch.tensor([1.0, -1.0]).repeat(int(moving.sum()) // 2)
        return pos + sign[:, None] * spread

    model.next_positions = apart
    batch = _batch(model, 1, copies=3)
    with torch.no_grad():
        plain, with_bulk = float(model.loss(batch)), float(model.loss(batch, bulk_weight=10.0))
    assert plain > 0 and with_bulk == pytest.approx(plain, abs=1e-9)


def test_the_weight_is_checked_stored_and_spelled_only_when_on():
    from benchmarks.commands.train_dynamics import _command_line

    with pytest.raises(ConfigError, match="bulk_weight"):
        TrainConfig(bulk_weight=-1.0)
    with pytest.raises(ConfigError, match="bulk_weight"):
        TrainConfig(bulk_weight=float("nan"))
    assert "bulk_weight" not in _flags(TrainConfig())
    assert _flags(TrainConfig(bulk_weight=5.0))["bulk_weight"] == 5.0
    args = argparse.Namespace(world="fluidfall", model="dpinet", data=["d"], set=None)
    assert "--bulk-weight 5.0" in _command_line(args, TrainConfig(bulk_weight=5.0), Path("o"))
    assert "--bulk-weight" not in _command_line(args, TrainConfig(), Path("o"))


def test_a_training_run_adds_the_term_to_its_loss(tmp_path):
    import json

    from physics.models import train

    def run(out, weight):
        torch.manual_seed(0)
        model = _leaking_model(shift=-0.002)
        cfg = TrainConfig(epochs=1, batch_size=4, max_samples=8, valid_samples=4, lr=1e-3, lr_final=1e-3,
                          device="cpu", rollout_steps=3, bulk_weight=weight)
        train(model, [_tank()], [_tank()], out, cfg, progress=False)
        row = json.loads((out / "loss.jsonl").read_text().splitlines()[0])
        return row, torch.load(out / "checkpoint.pt", weights_only=False)["train_state"]["flags"]

    plain, flags0 = run(tmp_path / "a", 0.0)
    bulk, flags1 = run(tmp_path / "b", 5.0)
    assert bulk["train_loss"] > 1.5 * plain["train_loss"]  # a shared shift is all bulk: (1 + 5) times
    assert bulk["valid_loss"] == pytest.approx(plain["valid_loss"], rel=1e-3)  # validation: the plain error
    assert "bulk_weight" not in flags0 and flags1["bulk_weight"] == 5.0
