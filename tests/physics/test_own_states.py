"""The containment penalty on the model's own rollouts (``TrainConfig.own_rollouts``,
:class:`physics.models.own_states.OwnStates`, ``DynamicsModel.loss(errors=False)``): the states are
the model's own rollout frames, the penalty reaches a leak that short unrolls from recorded states
never see, and a training run with it is deterministic and logs the term."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from physics.errors import ConfigError
from physics.graph import GraphBuilder, collate
from physics.graph.builder import NodeType
from physics.models import TrainConfig, make_model, one_step_graphs, preset, rollout, train
from physics.models import own_states as own_module
from physics.models.own_states import OwnStates
from physics.models.training import _flags
from physics.trajectory import Trajectory
from tests.physics.test_rollout_walls import MATERIALS, _walls

STEPS = 14
FREE = np.array([[0.3, 0.3], [0.5, 0.3]], np.float32)  # 10 cm and 30 cm from the left wall (x = 0.2)


def _tank(free: np.ndarray = FREE, steps: int = STEPS) -> Trajectory:
    """Fluid particles at rest in a static tank (walls x = 0.2, 0.8, floor 0.1), and its markers."""
    start = np.concatenate([free, _walls()]).astype(np.float32)
    n, nf = len(start), len(free)
    attr = np.zeros((n, 4), np.float32)
    attr[:nf, 0] = 1
    attr[nf:, 3] = 1
    return Trajectory(
        positions=np.repeat(start[None], steps, 0), node_attr=attr,
        instance=np.concatenate([np.full(nf, -1), np.zeros(n - nf, int)]).astype(np.int64),
        edges=np.zeros((2, 0), np.int64), edge_attr=np.zeros((0, 0), np.float32),
        actions=np.zeros((steps, n, 2), np.float32), observed=np.ones(n, bool), dt=0.008,
        meta={"materials": MATERIALS, "name": "tank"},
    )


def _leaking_model(projection: bool = False, shift: float = -0.02):
    """An IN whose prediction is 'every node moves by a learnable shift' (2 cm left per step: out
    through the left wall within a few steps); optionally declaring the wall projection."""
    cfg = preset("fluidshake", "in", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=8)
    cfg = dataclasses.replace(cfg, graph=dataclasses.replace(cfg.graph, wall_box=0.04), noise_std=0.0,
                              wall_projection=projection)
    model = make_model("in", cfg)
    model.shift = torch.nn.Parameter(torch.tensor([shift, 0.0]))
    model.next_positions = lambda g, pos_hist=None, *_: (g.pos_hist if pos_hist is None else pos_hist)[:, -1] + model.shift
    return model


def _pool(model, trajs, rollouts=2, samples=3, horizon=3, batches=6, seed=0) -> OwnStates:
    return OwnStates(trajs, GraphBuilder(model.config.graph), rollouts, samples, horizon, batches, seed)


def test_the_loss_without_errors_is_the_penalty_alone_and_needs_one():
    model = _leaking_model()
    traj = _tank(np.array([[0.205, 0.3]], np.float32))  # 0.5 cm from the left wall: the first step goes out
    for horizon in (1, 3):
        batch = collate(one_step_graphs(traj, GraphBuilder(model.config.graph), steps=[2], horizon=horizon))
        alone = model.loss(batch, wall_penalty=10.0, errors=False)
        assert float(alone.detach()) > 0
        both = model.loss(batch, wall_penalty=10.0) - model.loss(batch)
        assert float(alone.detach()) == pytest.approx(float(both.detach()), rel=1e-5)
    model.shift.data = torch.tensor([0.02, 0.0])  # moving right, inside: nothing to pay
    assert float(model.loss(batch, wall_penalty=10.0, errors=False)) == 0.0
    with pytest.raises(ConfigError, match="wall_penalty > 0"):
        model.loss(batch, errors=False)


def test_the_states_are_frames_of_the_models_own_rollout_and_the_model_stays_in_training_mode(monkeypatch):
    model = _leaking_model()
    trajs = [_tank(), _tank(FREE + [0.1, 0.05])]
    calls = []
    real = own_module.rollout
    monkeypatch.setattr(own_module, "rollout", lambda m, t, **kw: calls.append(t) or real(m, t, **kw))
    pool = _pool(model, trajs, rollouts=2, batches=6)  # a new rollout every 3 batches
    h = model.config.graph.history
    preds = {id(t): rollout(model, t) for t in trajs}
    model.train()
    seen = []
    for _ in range(6):
        batch = pool.next_batch(model, torch.device("cpu"))
        assert model.training
        assert batch.num_graphs == 3
        pred = preds[id(calls[-1])]
        for g in batch.to_data_list():
            leaf = (g.node_type == NodeType.LEAF).nonzero(as_tuple=True)[0]
            match = [t for t in range(h + 1, STEPS - 3)
                     if torch.allclose(g.pos_hist[leaf].transpose(0, 1), torch.from_numpy(pred[t - h : t + 1]))]
            assert match, "a state that is not a frame of the model's own rollout"
            seen.append(match[0])
    assert len(calls) == 2 and {id(c) for c in calls} == {id(t) for t in trajs}  # two rollouts, each trajectory once
    assert len(set(seen)) > 1
    # the draws depend on (seed, epoch) alone
    again = _pool(model, trajs, rollouts=2, batches=6)
    first = [b.pos_hist for b in (pool.start_epoch(0) or [pool.next_batch(model, torch.device("cpu")) for _ in range(3)])]
    second = [b.pos_hist for b in [again.next_batch(model, torch.device("cpu")) for _ in range(3)]]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_states_of_a_model_that_declares_the_projection_lie_inside_the_container():
    model = _leaking_model(projection=True)
    pool = _pool(model, [_tank()], rollouts=1, samples=6, batches=1)
    g = pool.next_batch(model, torch.device("cpu"))
    free = (g.node_type == NodeType.LEAF) & torch.isfinite(g.box_bounds[:, 0, 0])
    assert bool((g.pos_hist[free][..., 0] >= 0.2 - 1e-6).all())  # pushed back onto the left wall, not past it
    last = g.pos_hist[free][:, -1, 0]
    assert bool((last <= 0.46 + 1e-6).all()) and bool((last == 0.2).any())  # drifted, some onto the wall line


def test_the_penalty_reaches_a_leak_that_short_unrolls_from_recorded_states_never_see():
    model = _leaking_model()  # 2 cm left per step; the nearest particle is 10 cm from the wall
    traj = _tank()
    builder = GraphBuilder(model.config.graph)
    recorded = collate(one_step_graphs(traj, builder, horizon=3))  # every recorded state, a 3-step unroll
    assert float(model.loss(recorded, wall_penalty=10.0, errors=False)) == 0.0  # 6 cm in 3 steps: still inside
    pool = _pool(model, [traj], rollouts=1, samples=8, batches=1)
    drifted = pool.next_batch(model, torch.device("cpu"))
    penalty = model.loss(drifted, wall_penalty=10.0, errors=False)
    assert float(penalty) > 0  # the model's own rollout carries the fluid to the wall and through it
    model.zero_grad()
    penalty.backward()
    assert float(-model.shift.grad[0]) > 0  # descent turns the drift back right, into the tank


def test_the_flags_are_checked_and_stored_only_when_on():
    with pytest.raises(ConfigError, match="wall-penalty"):
        TrainConfig(own_rollouts=4)
    with pytest.raises(ConfigError, match="own_rollouts"):
        TrainConfig(own_rollouts=-1, wall_penalty=1.0)
    with pytest.raises(ConfigError, match="own_samples"):
        TrainConfig(own_rollouts=2, own_samples=0, wall_penalty=1.0)
    flags = _flags(TrainConfig())
    assert "own_rollouts" not in flags and "own_samples" not in flags
    flags = _flags(TrainConfig(own_rollouts=3, own_samples=2, wall_penalty=1.0))
    assert flags["own_rollouts"] == 3 and flags["own_samples"] == 2
    with pytest.raises(ConfigError, match="at least"):
        _pool(_leaking_model(), [_tank(steps=5)])


def _train(out, own: int):
    torch.manual_seed(0)
    model = _leaking_model()
    cfg = TrainConfig(epochs=2, batch_size=4, max_samples=16, valid_samples=4, lr=1e-3, lr_final=1e-3, device="cpu",
                      rollout_steps=3, wall_penalty=10.0, own_rollouts=own, own_samples=2)
    train(model, [_tank(), _tank(FREE + [0.05, 0.0])], [_tank()], out, cfg, progress=False)
    return model, [json.loads(x) for x in (out / "loss.jsonl").read_text().splitlines()]


def test_a_run_with_own_rollouts_logs_the_term_and_is_deterministic(tmp_path):
    model, rows = _train(tmp_path / "a", own=2)
    again, rows2 = _train(tmp_path / "b", own=2)
    assert float(model.shift[0]) == float(again.shift[0])
    assert [r["own_penalty"] for r in rows] == [r["own_penalty"] for r in rows2]
    assert rows[0]["own_penalty"] > 0  # the own rollouts reach the wall, the recorded 3-step unrolls do not
    assert rows[0]["train_loss"] > rows[0]["own_penalty"] > 0
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert ckpt["train_state"]["flags"]["own_rollouts"] == 2
    _, plain = _train(tmp_path / "c", own=0)
    assert "own_penalty" not in plain[0]
    assert plain[0]["train_loss"] < rows[0]["train_loss"]  # the same batches without the own term


def test_the_stored_command_spells_the_options_only_when_on():
    import argparse
    from pathlib import Path

    from benchmarks.commands.train_dynamics import _command_line

    args = argparse.Namespace(world="fluidfall", model="dpinet", data=["d"], set=None)
    on = _command_line(args, TrainConfig(wall_penalty=3.0, own_rollouts=10, own_samples=2), Path("o"))
    assert "--wall-penalty 3.0 --own-rollouts 10 --own-samples 2" in on
    assert "--own-" not in _command_line(args, TrainConfig(), Path("o"))
    # the velocity loss (video PropNet fine-tunes) likewise
    assert "--velocity-weight 10.0" in _command_line(args, TrainConfig(rollout_steps=3, velocity_weight=10.0), Path("o"))
    assert "--velocity-weight" not in _command_line(args, TrainConfig(), Path("o"))
