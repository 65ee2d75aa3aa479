"""Rollout training that sees the walls and keeps the fluid in: the unroll's neighbour edges rebuilt
from the predicted positions (``rebuild_edges``), and the epoch kept by a containment-limited
rollout check (``select_max_outside``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from benchmarks.dynamics_eval import left_container
from physics.errors import ConfigError
from physics.graph import GraphBuilder, collate
from physics.graph.builder import Relation
from physics.models import (
    TrainConfig,
    load_model,
    make_model,
    one_step_graphs,
    preset,
    rollout,
    train,
)
from physics.models.data import trajectory_tensors
from physics.models.training import _flags, _rollout_score
from physics.trajectory import Trajectory
from tests.physics.test_models import chain_config, spring_chain
from tests.physics.test_models_training import FAST
from tests.physics.test_rollout_walls import FLUID, _drifting_model, _leaking_in, _tank

MATERIALS = ["fluid", "rigid", "plastic", "wall"]
RADIUS = 0.08


def _approaching(shift: float = 0.0) -> Trajectory:
    """Two fluid particles closing at 0.08 per step along x (0.14 apart at step 2, 0.06 at step 3) while
    they drift apart in y with constant accelerations, and two at rest."""
    t = np.arange(12, dtype=np.float32)[:, None]
    a = np.concatenate([0.2 + 0.04 * t, 0.5 - 0.001 * t**2], 1)
    b = np.concatenate([0.5 - 0.04 * t, 0.5 + 0.0005 * t**2], 1)
    rest = np.broadcast_to(np.array([[0.2, 0.2], [0.6, 0.2]], np.float32), (12, 2, 2))
    pos = np.concatenate([a[:, None], b[:, None], rest], 1) + np.float32(shift)
    attr = np.zeros((4, 4), np.float32)
    attr[:, 0] = 1
    return Trajectory(
        positions=pos, node_attr=attr, instance=np.full(4, -1, np.int64), edges=np.zeros((2, 0), np.int64),
        edge_attr=np.zeros((0, 0), np.float32), actions=np.zeros((12, 4, 2), np.float32),
        observed=np.ones(4, bool), dt=0.008, meta={"materials": MATERIALS, "name": "approach"},
    )


@torch.no_grad()
def _manual_unroll(model, traj: Trajectory, t: int, horizon: int) -> torch.Tensor:
    """The positions ``[N, K, D]`` a K-step unroll of one sample reaches when every step gets a
    fresh graph from the graph builder, as in a test rollout."""
    builder = GraphBuilder(model.config.graph)
    a = trajectory_tensors(traj)
    sample = g = one_step_graphs(traj, builder, [t], horizon=horizon)[0]
    pos_hist, out = g.pos_hist, []
    for k in range(horizon):
        out.append(model.next_positions(g, pos_hist, sample.action_seq[:, k]))
        pos_hist = torch.cat([pos_hist[:, 1:], out[-1][:, None]], 1)
        g = builder.build(pos_hist.transpose(0, 1), a["node_attr"], a["actions"][t + k + 1], a["edges"],
                          a["edge_attr"], a["instance"], a["observed"])
    return torch.stack(out, 1)


def test_rebuilt_unroll_edges_are_those_a_test_rollout_builds_and_never_join_two_graphs():
    cfg = preset("fluidfall", "in", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=8, **{"graph.radius": RADIUS})
    torch.manual_seed(0)
    model = make_model("in", cfg)
    trajs = [_approaching(), _approaching(0.03)]  # two graphs on top of each other in one batch
    builder = GraphBuilder(cfg.graph)
    model.fit_normalizers(one_step_graphs(trajs[0], builder))
    model.eval()
    batch = collate([one_step_graphs(tr, builder, [2], horizon=3)[0] for tr in trajs])
    first = batch.edge_index[:, batch.edge_type == Relation.NEIGHBOR].T.tolist()
    assert [0, 1] not in first and [1, 0] not in first  # 0.14 apart: no edge in the first state
    rebuilt = model.with_neighbors_of(batch, batch.target_seq[:, 0])  # 0.06 apart one step later
    pairs = rebuilt.edge_index[:, rebuilt.edge_type == Relation.NEIGHBOR].T.tolist()
    assert [0, 1] in pairs and [5, 4] in pairs
    assert all((s < 4) == (r < 4) for s, r in pairs), "an edge joins the two graphs of the batch"
    assert batch.edge_index.shape[1] == len(first)  # the input batch is not changed
    # against the positions of unrolls with a fresh graph per step as targets, the rebuilt unroll's loss is
    # float rounding (about 1e-9 in units of the target std), the unroll on the first state's edges is not
    batch.target_seq = torch.cat([_manual_unroll(model, tr, 2, 3) for tr in trajs])
    with torch.no_grad():
        rebuilt_loss, kept_loss = float(model.loss(batch, rebuild_edges=True)), float(model.loss(batch))
    assert rebuilt_loss < 1e-8 and kept_loss > 100 * max(rebuilt_loss, 1e-9), (rebuilt_loss, kept_loss)
    no_radius = make_model("in", dataclasses.replace(cfg, graph=dataclasses.replace(cfg.graph, radius=None)))
    with pytest.raises(ConfigError, match="radius"):
        no_radius.with_neighbors_of(batch, batch.target_seq[:, 0])


def test_the_selection_score_counts_the_fluid_outside_as_the_bench_does():
    traj = _tank(FLUID)  # the tank slides right under fluid that the recording keeps at rest
    found = {}
    for step in ((0.0, 0.0), (0.05, 0.0)):
        model = _drifting_model(step)
        mse, found[step] = _rollout_score(model, [traj], torch.device("cpu"))
        assert found[step] == pytest.approx(left_container([traj], [rollout(model, traj)]))
        assert (mse > 0) == (step != (0.0, 0.0))
    assert found[(0.0, 0.0)] == 0.25  # the particle at x = 0.25 ends left of the left wall
    assert found[(0.05, 0.0)] == 0.5  # drifting right by 5 cm a step, two of the four end past the right wall


SCRIPTED = {  # (rollout MSE, fraction outside) of epochs 1.. of a scripted rollout check
    "mixed": [(0.1, 0.30), (0.05, 0.20), (0.2, 0.01), (0.3, 0.04)],
    "all_out": [(0.1, 0.30), (0.05, 0.20), (0.2, 0.10)],
}


def _selected(tmp, monkeypatch, scores, limit: float) -> tuple[int, list[dict]]:
    import physics.models.training as training

    calls = iter(scores)
    monkeypatch.setattr(training, "_rollout_score", lambda *a, **k: next(calls))
    torch.manual_seed(0)
    model = make_model("propnet", chain_config("propnet"))
    cfg = TrainConfig(epochs=len(scores), seed=0, select_rollouts=1, select_max_outside=limit, **FAST)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp, cfg, progress=False)
    rows = [json.loads(x) for x in (tmp / "loss.jsonl").read_text().splitlines()]
    assert load_model(tmp / "model.pt")[1]["epoch"] == summary["best_epoch"]
    return summary["best_epoch"], rows


def test_a_containment_limit_keeps_the_best_epoch_within_it_and_else_the_one_with_least_outside(tmp_path, monkeypatch):
    kept, rows = _selected(tmp_path / "a", monkeypatch, SCRIPTED["mixed"], 0.05)
    assert kept == 3  # epoch 2's lower error was bought with 20% outside; epoch 4 is within but worse
    assert [r["valid_rollout_outside"] for r in rows] == [o for _, o in SCRIPTED["mixed"]]
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["train_state"]
    assert state["flags"]["select_max_outside"] == 0.05 and state["extra"]["best_excess"] == 0.0
    assert _selected(tmp_path / "b", monkeypatch, SCRIPTED["mixed"], 1.0)[0] == 2  # no limit: lowest error
    assert _selected(tmp_path / "c", monkeypatch, SCRIPTED["all_out"], 0.05)[0] == 3  # none within: least out
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["train_state"]
    assert "select_max_outside" not in state["flags"] and "best_excess" not in state["extra"]
    assert "rebuild_edges" not in _flags(TrainConfig()) and _flags(TrainConfig(rebuild_edges=True))["rebuild_edges"]
    assert "select_max_outside" not in _flags(TrainConfig(select_max_outside=0.05))  # only with a rollout check
    with pytest.raises(ConfigError, match="select_max_outside"):
        TrainConfig(select_max_outside=1.5)


def test_with_a_limit_a_projected_check_counts_the_fluid_outside_on_an_unprojected_rollout(monkeypatch):
    """A model whose raw rollout leaks (all of it out through the floor and the left wall) but whose projected
    rollout is inside: the limit's outside fraction is the raw one, the MSE stays the projected one's."""
    import physics.models.training as training

    trajs, cpu = [_tank(FLUID)], torch.device("cpu")
    plain, declared = _leaking_in(None), _leaking_in(True)
    mse_declared, out_declared = _rollout_score(declared, trajs, cpu)
    mse_plain, out_plain = _rollout_score(plain, trajs, cpu)
    assert out_declared == 0.0 and out_plain == 1.0  # projected: inside by construction; raw: all out
    assert _rollout_score(declared, trajs, cpu, raw_outside=True) == (mse_declared, out_plain)
    assert _rollout_score(plain, trajs, cpu, True, raw_outside=True) == (mse_declared, out_plain)  # forced on
    calls = []
    real = training.rollout_errors
    monkeypatch.setattr(training, "rollout_errors", lambda *a, **k: calls.append(k["wall_projection"]) or real(*a, **k))
    assert _rollout_score(plain, trajs, cpu, raw_outside=True) == (mse_plain, out_plain)
    assert calls == [None]  # an unprojected check needs no second rollout
    calls.clear()
    _rollout_score(declared, trajs, cpu, raw_outside=True)
    assert calls == [None, False]  # the declared (projected) rollout, then one unprojected


def test_train_asks_for_the_unprojected_outside_at_every_check_only_with_a_limit(tmp_path, monkeypatch):
    """Epoch 0 (the --init start) and every epoch's check get ``raw_outside`` = (select_max_outside < 1)."""
    import physics.models.training as training
    from physics.models.resolver import save_model

    torch.manual_seed(0)
    start = make_model("propnet", chain_config("propnet"))
    start.fit_normalizers(one_step_graphs(spring_chain(1), GraphBuilder(start.config.graph)))
    save_model(tmp_path / "start.pt", start, {"seed": 0})
    for limit, want in ((0.2, True), (1.0, False)):
        seen = []
        monkeypatch.setattr(training, "_rollout_score",
                            lambda *a, seen=seen, **k: seen.append(k.get("raw_outside", False)) or (0.1, 0.0))
        cfg = TrainConfig(epochs=2, seed=0, select_rollouts=1, select_max_outside=limit,
                          init=str(tmp_path / "start.pt"), **FAST)
        train(make_model("propnet", chain_config("propnet")), [spring_chain(1), spring_chain(2)], [spring_chain(3)],
              tmp_path / f"run{limit}", cfg, progress=False)
        assert seen == [want] * 3  # epoch 0, 1, 2
