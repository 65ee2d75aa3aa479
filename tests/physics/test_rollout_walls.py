"""Wall projection of particle rollouts: predicted particles are moved back inside the container the
wall markers outline, rigid objects as a whole; off, the rollout is the one before the option."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmarks.dynamics_eval import evaluate_dynamics, left_container
from physics.errors import ConfigError
from physics.models import (
    TrainConfig,
    declare_model,
    load_model,
    make_model,
    preset,
    rigidity_error,
    rollout,
    save_model,
)
from physics.models.rollout import container_box, project_into_container
from physics.models.training import _flags, _rollout_score
from physics.trajectory import Trajectory

MATERIALS = ["fluid", "rigid", "plastic", "wall"]
STEPS = 12
SHAKE = 0.01  # the container slides right by this much per recorded step


def _walls(x0: float = 0.2, x1: float = 0.8, floor: float = 0.1) -> np.ndarray:
    bottom = np.stack([np.linspace(x0, x1, 13), np.full(13, floor)], 1)
    left = np.stack([np.full(5, x0), np.linspace(floor, floor + 0.3, 5)], 1)
    return np.concatenate([bottom, left, left + [x1 - x0, 0.0]])


def _tank(free: np.ndarray, rigid_rows: int = 0, walls: bool = True) -> Trajectory:
    """Fluid (and, last, ``rigid_rows`` particles of one rigid object) in a tank that slides right."""
    marks = _walls() if walls else np.zeros((0, 2))
    start = np.concatenate([free, marks]).astype(np.float32)
    n, nf = len(start), len(free)
    shift = np.zeros((STEPS, n, 2), np.float32)
    shift[:, nf:, 0] = SHAKE * np.arange(STEPS)[:, None]
    attr = np.zeros((n, 4), np.float32)
    attr[: nf - rigid_rows, 0] = 1
    attr[nf - rigid_rows : nf, 1] = 1
    attr[nf:, 3] = 1
    instance = np.concatenate([np.full(nf - rigid_rows, -1), np.zeros(rigid_rows, int), np.ones(n - nf, int)])
    actions = np.zeros((STEPS, n, 2), np.float32)
    actions[:, nf:, 0] = SHAKE / 0.008
    return Trajectory(
        positions=start[None] + shift, node_attr=attr, instance=instance.astype(np.int64),
        edges=np.zeros((2, 0), np.int64), edge_attr=np.zeros((0, 0), np.float32), actions=actions,
        observed=np.ones(n, bool), dt=0.008, meta={"materials": MATERIALS if walls else [], "name": "tank"},
    )


def _drifting_model(step: tuple[float, float]):
    """An IN whose prediction is 'every node moves by ``step``' (a model that pushes the fluid out)."""
    cfg = preset("fluidshake", "in", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=8)
    model = make_model("in", cfg)
    model.next_positions = lambda g, *_: g.pos_hist[:, -1] + torch.tensor(step, dtype=g.pos_hist.dtype)
    return model


FLUID = np.array([[0.25, 0.15], [0.5, 0.12], [0.75, 0.3], [0.3, 0.2]])


def test_projection_keeps_every_particle_inside_the_moving_walls_over_the_whole_rollout():
    traj = _tank(FLUID)
    model = _drifting_model((-0.08, -0.03))  # out through the left wall and the floor within a few steps
    pred = rollout(model, traj, wall_projection=True)
    walls = traj.node_attr[:, 3] == 1
    assert np.array_equal(pred[:, walls], traj.positions[:, walls])  # markers still follow the recording
    for frame in pred:
        lo, hi = frame[walls].min(0), frame[walls].max(0)
        free = frame[~walls]
        assert (free[:, 0] >= lo[0]).all() and (free[:, 0] <= hi[0]).all() and (free[:, 1] >= lo[1]).all()
    assert left_container([traj], [pred], margin=0.0) == 0.0
    # they end on the floor, pressed against the left wall that moves right: carried along with it
    assert np.allclose(pred[-1, ~walls, 1], 0.1) and np.allclose(pred[-1, ~walls, 0], 0.2 + SHAKE * (STEPS - 1))


def test_projection_off_gives_the_old_rollout():
    traj = _tank(FLUID)
    model = _drifting_model((-0.04, -0.03))
    raw = rollout(model, traj)  # the default
    assert np.array_equal(raw, rollout(model, traj, wall_projection=False))
    walls = traj.node_attr[:, 3] == 1
    h = model.config.graph.history
    expected = traj.positions[h, ~walls] + np.arange(STEPS - h)[:, None, None] * np.float32([-0.04, -0.03])
    assert np.allclose(raw[h:, ~walls], expected, atol=1e-6)  # the model's own drift, nothing moved back
    assert left_container([traj], [raw]) == 1.0


def test_projection_translates_a_rigid_object_as_a_whole():
    box = np.array([[0.24, 0.2], [0.28, 0.2], [0.24, 0.24], [0.28, 0.24]])
    traj = _tank(np.concatenate([FLUID, box]), rigid_rows=4)
    pred = rollout(_drifting_model((-0.03, 0.0)), traj, wall_projection=True)
    rigid = torch.from_numpy(np.where(traj.node_attr[:, 1] == 1, 0, -1))
    assert rigidity_error(torch.from_numpy(pred), rigid) < 1e-6
    walls = traj.node_attr[:, 3] == 1
    rows = traj.node_attr[:, 1] == 1
    left = pred[:, walls, 0].min(1)
    # the box's left column rests on the (moving) left wall, its shape unchanged
    assert np.allclose(pred[-1, rows, 0].min(), left[-1], atol=1e-6)
    assert np.allclose(np.ptp(pred[-1, rows, 0]), 0.04, atol=1e-6)


def test_projection_does_nothing_inside_the_tank_or_without_wall_markers():
    traj = _tank(FLUID[1:3])  # clear of the walls over the whole shake
    still = _drifting_model((0.0, 0.0))
    assert np.array_equal(rollout(still, traj, wall_projection=True), rollout(still, traj))
    loose = _tank(FLUID, walls=False)  # no markers (a rigid-body world): untouched
    drift = _drifting_model((-0.3, -0.3))
    assert np.array_equal(rollout(drift, loose, wall_projection=True), rollout(drift, loose))


def test_project_into_container_moves_only_what_is_outside():
    marks = torch.tensor(_walls(), dtype=torch.float32)
    free = torch.tensor([[0.5, 0.2], [0.5, 0.9], [0.1, 0.3], [0.9, 0.05]])  # inside, above the open top, 2 outside
    pos = torch.cat([free, marks])
    walls = torch.cat([torch.zeros(4, dtype=torch.bool), torch.ones(len(marks), dtype=torch.bool)])
    lo, hi = container_box(pos, walls)
    assert lo.tolist() == pytest.approx([0.2, 0.1]) and hi[0] == pytest.approx(0.8) and hi[1] == float("inf")
    out = project_into_container(pos, walls, torch.full((len(pos),), -1))
    assert torch.equal(out[walls], marks) and torch.equal(out[:2], free[:2])
    assert out[2].tolist() == pytest.approx([0.2, 0.3]) and out[3].tolist() == pytest.approx([0.8, 0.1])


def test_the_rollout_check_of_training_stores_the_projection_only_when_it_projects():
    # off (the default), or without a rollout check, the flags are the ones before the option: old runs resume
    assert "wall_projection" not in _flags(TrainConfig()) and "wall_projection" not in _flags(TrainConfig(select_rollouts=2))
    assert "wall_projection" not in _flags(TrainConfig(wall_projection=True))
    assert _flags(TrainConfig(select_rollouts=2, wall_projection=True))["wall_projection"] is True


def _leaking_in(declared: bool | None):
    """A real IN (saved and loaded like any checkpoint) whose decoder predicts a constant acceleration down and
    to the left, out through the floor and the left wall; ``declared``: its config's ``wall_projection``
    (None: a config dict without the field, as every checkpoint saved before it existed)."""
    over = {} if declared is None else {"wall_projection": declared}
    model = make_model("in", preset("fluidshake", "in", dim=2, node_attr_dim=4, edge_attr_dim=0, hidden=8, **over))
    with torch.no_grad():
        model.decoder[4].weight.zero_()
        model.decoder[4].bias.fill_(-30.0)
    return model


def _save(model, path, drop_field: bool = False):
    save_model(path, model, {"seed": 0})
    if drop_field:  # the file as an older version of the code wrote it
        ckpt = torch.load(path, weights_only=True)
        del ckpt["config"]["wall_projection"]
        torch.save(ckpt, path)


def test_a_model_declaring_the_wall_projection_is_projected_by_default_and_old_checkpoints_load_unchanged(tmp_path):
    traj = _tank(FLUID)
    _save(_leaking_in(None), tmp_path / "old.pt", drop_field=True)
    assert "wall_projection" not in torch.load(tmp_path / "old.pt", weights_only=True)["config"]
    old, _ = load_model(tmp_path / "old.pt")
    assert old.config.wall_projection is False
    raw = rollout(old, traj)
    assert np.array_equal(raw, rollout(old, traj, wall_projection=False)) and left_container([traj], [raw]) == 1.0
    _save(_leaking_in(True), tmp_path / "new.pt")
    new, _ = load_model(tmp_path / "new.pt")
    assert new.config.wall_projection is True
    assert np.array_equal(rollout(new, traj), rollout(new, traj, wall_projection=True))  # the default: as declared
    assert left_container([traj], [rollout(new, traj)], margin=1e-5) == 0.0  # on the walls, to float rounding
    assert np.array_equal(rollout(new, traj, wall_projection=False), raw)  # same weights: forced off is the raw rollout
    assert preset("fluidfall", "dpinet").wall_projection is False  # no preset declares it unless a rule shipped it


def test_the_bench_applies_the_projection_to_the_models_that_declare_it_and_not_to_the_others(tmp_path):
    trajs = [_tank(FLUID), _tank(FLUID[1:])]
    _save(_leaking_in(None), tmp_path / "fluidshake_in.pt", drop_field=True)
    _save(_leaking_in(True), tmp_path / "fluidshake_dpinet.pt")
    # the "dpinet" slot holds an IN here; the bench checks the name, so bench it under its own name via a copy
    ckpt = torch.load(tmp_path / "fluidshake_dpinet.pt", weights_only=True)
    ckpt["model"] = "in"
    (tmp_path / "declared").mkdir()
    torch.save(ckpt, tmp_path / "declared" / "fluidshake_in.pt")
    plain, _ = evaluate_dynamics("fluidshake", trajs, ["in"], tmp_path, horizons=(1,))
    declared, _ = evaluate_dynamics("fluidshake", trajs, ["in"], tmp_path / "declared", horizons=(1,))
    forced_off, _ = evaluate_dynamics("fluidshake", trajs, ["in"], tmp_path / "declared", horizons=(1,),
                                      wall_projection=False)
    forced_on, _ = evaluate_dynamics("fluidshake", trajs, ["in"], tmp_path, horizons=(1,), wall_projection=True)
    assert plain["wall_projection"] is None and declared["wall_projection"] is None
    p, d, off, on = (r["models"]["in"] for r in (plain, declared, forced_off, forced_on))
    assert p["wall_projection"] is False and p["left_container"] == 1.0
    assert d["wall_projection"] is True and d["left_container"] == 0.0 and d["mse_full"] < p["mse_full"]
    assert off["wall_projection"] is False and off["mse_per_trajectory"] == p["mse_per_trajectory"]
    assert on["wall_projection"] is True and on["mse_per_trajectory"] == d["mse_per_trajectory"]


def test_declare_model_adds_the_property_to_a_trained_checkpoint_and_keeps_its_weights(tmp_path):
    _save(_leaking_in(None), tmp_path / "old.pt", drop_field=True)
    declare_model(tmp_path / "old.pt", tmp_path / "new.pt", note="a test", wall_projection=True)
    (old, _), (new, meta) = load_model(tmp_path / "old.pt"), load_model(tmp_path / "new.pt")
    assert new.config.wall_projection is True and meta["declared"] == "wall_projection=True (a test)"
    assert meta["seed"] == 0 and dataclasses.replace(new.config, wall_projection=False) == old.config
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values(), strict=True))
    traj = _tank(FLUID)
    assert np.array_equal(rollout(new, traj), rollout(old, traj, wall_projection=True))
    with pytest.raises(ConfigError, match="wall_projection .*got hidden"):
        declare_model(tmp_path / "old.pt", tmp_path / "bad.pt", hidden=16)
    with pytest.raises(ConfigError, match="got none"):
        declare_model(tmp_path / "old.pt", tmp_path / "bad.pt")


def test_the_training_rollout_check_scores_a_declaring_model_as_the_bench_rolls_it_out():
    trajs = [_tank(FLUID)]
    plain, declared = _leaking_in(None), _leaking_in(True)
    cpu = torch.device("cpu")
    mse_plain, out_plain = _rollout_score(plain, trajs, cpu)
    mse_declared, out_declared = _rollout_score(declared, trajs, cpu)  # TrainConfig.wall_projection off: as declared
    assert out_plain == 1.0 and out_declared == 0.0 and mse_declared < mse_plain
    assert _rollout_score(plain, trajs, cpu, True) == (mse_declared, out_declared)  # forced on: the same rollout
