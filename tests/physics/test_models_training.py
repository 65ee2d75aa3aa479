"""Training: the loss falls, checkpoints resume exactly, devices are checked."""

from __future__ import annotations

import json

import pytest
import torch

from physics.errors import CheckpointError, ConfigError
from physics.models import TrainConfig, make_model, resolve_device, train
from tests.physics.test_models import chain_config, spring_chain

FAST = dict(batch_size=8, max_samples=64, valid_samples=16, lr=1e-2, lr_final=3e-3, device="cpu")


def _run(tmp, epochs, name="propnet", resume=False, seed=0):
    torch.manual_seed(seed)
    model = make_model(name, chain_config(name))
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp,
                    TrainConfig(epochs=epochs, seed=seed, **FAST), resume=resume, meta={"seed": seed}, progress=False)
    return model, summary


def test_short_training_lowers_the_loss(tmp_path):
    _, summary = _run(tmp_path, 6)
    losses = [row["valid_loss"] for row in summary["history"]]
    assert losses[-1] < 0.7 * losses[0], losses
    rows = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_resume_after_a_kill_is_bit_identical_and_refuses_changed_flags(tmp_path, monkeypatch):
    straight, _ = _run(tmp_path / "a", 3)
    from physics.models.base import DynamicsModel

    real, calls = DynamicsModel.loss, {"n": 0}

    def killed_in_epoch_three(self, batch, **kw):  # 64 samples / 8 = 8 batches per epoch
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 3:
            raise KeyboardInterrupt
        return real(self, batch, **kw)

    monkeypatch.setattr(DynamicsModel, "loss", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 3)
    monkeypatch.undo()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["train_state"]["round"] == 2
    resumed, summary = _run(tmp_path / "b", 3, resume=True)
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    rows = [json.loads(x) for x in (tmp_path / "b" / "loss.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="trained as 'propnet'"):
        _run(tmp_path / "b", 3, name="in", resume=True)
    with pytest.raises(ConfigError, match=r"--seed 0 \(now 7\)"):
        _run(tmp_path / "b", 3, resume=True, seed=7)
    with pytest.raises(ConfigError, match=r"--epochs 3 \(now 5\)"):
        _run(tmp_path / "b", 5, resume=True)


def test_device_option_is_checked():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)


@pytest.mark.parametrize("name", ["propnet", "dpinet"])
def test_multi_step_samples_and_loss(name):
    from physics.errors import DataError
    from physics.graph import GraphBuilder, collate
    from physics.models import one_step_graphs

    torch.manual_seed(0)
    model = make_model(name, chain_config(name))
    traj = spring_chain(1)
    builder = GraphBuilder(model.config.graph)
    model.fit_normalizers(one_step_graphs(traj, builder))
    g1 = one_step_graphs(traj, builder, [5, 9])
    g3 = one_step_graphs(traj, builder, [5, 9], horizon=3)
    n = traj.num_nodes
    for a, b in zip(g1, g3, strict=True):
        assert b.target_seq.shape == (a.num_nodes, 3, 2) and b.action_seq.shape == (a.num_nodes, 3, 2)
        assert torch.equal(b.target_seq[:n, 0], a.target_pos[:n])  # first target is the one-step target
        assert torch.allclose(b.action_seq[:, 0], a.action)  # roots: mean of their leaves, as built
    model.eval()
    one, three = collate(g1), collate(g3)
    step1 = float(model.loss(one))
    # a 1-step horizon through the multi-step path equals the one-step loss
    three_as_one = collate([g.clone() for g in g3])
    three_as_one.target_seq = three_as_one.target_seq[:, :1]
    three_as_one.action_seq = three_as_one.action_seq[:, :1]
    assert abs(float(model.loss(three_as_one)) - step1) < 1e-5
    loss3 = model.loss(three)
    loss3.backward()
    assert torch.isfinite(loss3) and float(loss3) > 0
    with pytest.raises(DataError, match="horizon"):
        one_step_graphs(traj, builder, [traj.num_steps - 2], horizon=3)


def test_training_on_rollouts_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    model = make_model("propnet", chain_config("propnet"))
    cfg = TrainConfig(epochs=6, seed=0, rollout_steps=3, **FAST)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path, cfg, progress=False)
    losses = [row["valid_loss"] for row in summary["history"]]
    assert losses[-1] < 0.85 * losses[0] and losses == sorted(losses, reverse=True), losses
    with pytest.raises(ConfigError, match="rollout_steps"):
        TrainConfig(rollout_steps=0)


def test_init_starts_from_a_saved_model_and_refuses_another_config(tmp_path):
    from physics.models import load_model
    from physics.models.training import _load_init

    _, first = _run(tmp_path / "a", 2)
    saved, _ = load_model(tmp_path / "a" / "model.pt")
    fresh = make_model("propnet", chain_config("propnet"))
    _load_init(fresh, str(tmp_path / "a" / "model.pt"))
    for (k, a), b in zip(saved.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # weights and normalisers
    torch.manual_seed(0)
    tuned = make_model("propnet", chain_config("propnet"))
    summary = train(tuned, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path / "b",
                    TrainConfig(epochs=1, init=str(tmp_path / "a" / "model.pt"), **FAST), progress=False)
    assert summary["best_valid_loss"] < first["history"][0]["valid_loss"]  # it went on, not from scratch
    with pytest.raises(CheckpointError, match="another config"):
        _load_init(make_model("in", chain_config("in")), str(tmp_path / "a" / "model.pt"))
