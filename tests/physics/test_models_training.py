"""Training: the loss falls, checkpoints resume exactly, devices are checked."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from physics.errors import CheckpointError, ConfigError
from physics.models import TrainConfig, make_model, resolve_device, train
from tests.physics.test_models import chain_config, spring_chain

FAST = dict(batch_size=8, max_samples=64, valid_samples=16, lr=1e-2, lr_final=3e-3, device="cpu")


def kill_loss_at_call(monkeypatch, n: int) -> None:
    """Make ``DynamicsModel.loss`` raise KeyboardInterrupt at its ``n``-th call: a run killed mid-epoch
    (``monkeypatch.undo()`` restores it)."""
    from physics.models.base import DynamicsModel

    real, calls = DynamicsModel.loss, {"n": 0}

    def killed(self, batch, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, batch, **kw)

    monkeypatch.setattr(DynamicsModel, "loss", killed)


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
    kill_loss_at_call(monkeypatch, 2 * 8 + 3)  # in epoch three: 64 samples / 8 = 8 batches per epoch
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


@pytest.mark.parametrize("clip", [float("nan"), float("inf"), -1.0])
def test_a_grad_clip_that_would_switch_clipping_off_silently_is_refused(clip):
    # the loop clips only when grad_clip > 0: NaN and negatives trained unclipped without a word
    with pytest.raises(ConfigError, match="grad_clip must be a finite number >= 0"):
        TrainConfig(grad_clip=clip)
    assert TrainConfig(grad_clip=0.0).grad_clip == 0.0


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
    noisier = make_model("propnet", dataclasses.replace(chain_config("propnet"), noise_std=0.05))
    _load_init(noisier, str(tmp_path / "a" / "model.pt"))  # the training noise shapes no weight: may differ
    assert torch.equal(next(iter(noisier.state_dict().values())), next(iter(saved.state_dict().values())))
    with pytest.raises(CheckpointError, match="another config"):
        _load_init(make_model("propnet", dataclasses.replace(chain_config("propnet"), hidden=8)),
                   str(tmp_path / "a" / "model.pt"))


def test_select_rollouts_keeps_the_epoch_of_lowest_full_rollout_error(tmp_path):
    from physics.models import load_model
    from physics.models.rollout import rollout_errors

    torch.manual_seed(0)
    model = make_model("propnet", chain_config("propnet"))
    valid = [spring_chain(3), spring_chain(4), spring_chain(5)]
    cfg = TrainConfig(epochs=4, seed=0, select_rollouts=2, **FAST)
    summary = train(model, [spring_chain(1), spring_chain(2)], valid, tmp_path, cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    scores = [r["valid_rollout_mse"] for r in rows]
    assert len(scores) == 4 and all(s > 0 for s in scores)
    kept, meta = load_model(tmp_path / "model.pt")
    best = min(range(4), key=scores.__getitem__)
    assert meta["epoch"] == best + 1 == summary["best_epoch"]
    assert summary["best_rollout_mse"] == scores[best] == meta["valid_rollout_mse"]
    assert summary["best_valid_loss"] == rows[best]["valid_loss"]
    # the score is the full-rollout MSE of the kept weights on the first two validation trajectories only
    assert rollout_errors(kept, valid[:2], horizons=())["mse_full"] == pytest.approx(scores[best], rel=1e-6)
    assert rollout_errors(kept, valid, horizons=())["mse_full"] != pytest.approx(scores[best], rel=1e-6)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["train_state"]
    assert state["flags"]["select_rollouts"] == 2 and state["extra"]["best_epoch"] == best + 1
    assert "selected_by" in meta


def test_select_rollouts_with_init_keeps_the_start_when_the_continuation_breaks_the_rollouts(tmp_path):
    from physics.models import load_model

    _run(tmp_path / "a", 3)
    start, _ = load_model(tmp_path / "a" / "model.pt")
    torch.manual_seed(0)
    model = make_model("propnet", chain_config("propnet"))
    # a learning rate of 0.3 wrecks the weights (the rollout error grows 40x or more), but they stay finite
    broken = dict(FAST, lr=0.3, lr_final=0.3)
    cfg = TrainConfig(epochs=2, seed=0, init=str(tmp_path / "a" / "model.pt"), select_rollouts=1, **broken)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path / "b", cfg, progress=False)
    kept, meta = load_model(tmp_path / "b" / "model.pt")
    rows = [json.loads(x) for x in (tmp_path / "b" / "loss.jsonl").read_text().splitlines()]
    assert meta["epoch"] == 0 == summary["best_epoch"]
    assert all(r["valid_rollout_mse"] > meta["valid_rollout_mse"] for r in rows), rows
    for (k, a), b in zip(start.state_dict().items(), kept.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert all(r["valid_rollout_mse"] > 40 * meta["valid_rollout_mse"] for r in rows), rows
    # the default keeps the trained epoch of lowest one-step validation loss, whose rollouts are broken
    torch.manual_seed(0)
    model = make_model("propnet", chain_config("propnet"))
    cfg = TrainConfig(epochs=2, seed=0, init=str(tmp_path / "a" / "model.pt"), **broken)
    train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path / "c", cfg, progress=False)
    default = [json.loads(x) for x in (tmp_path / "c" / "loss.jsonl").read_text().splitlines()]
    kept_by_default = min(default, key=lambda r: r["valid_loss"])["epoch"]
    assert load_model(tmp_path / "c" / "model.pt")[1]["epoch"] == kept_by_default >= 1


def test_select_rollouts_off_stores_no_new_flag_and_is_checked(tmp_path):
    _run(tmp_path, 1)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["train_state"]
    assert "select_rollouts" not in state["flags"] and set(state["extra"]) == {"best"}  # as before the option
    with pytest.raises(ConfigError, match="select_rollouts must be >= 0"):
        TrainConfig(select_rollouts=-1)
    model = make_model("propnet", chain_config("propnet"))
    with pytest.raises(ConfigError, match="needs validation trajectories"):
        train(model, [spring_chain(1)], [], tmp_path / "d", TrainConfig(epochs=1, select_rollouts=1, **FAST),
              progress=False)
    with pytest.raises(ConfigError, match=r"--select-rollouts not given \(now 1\)"):
        train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path,
              TrainConfig(epochs=1, select_rollouts=1, **FAST), resume=True, progress=False)


def test_lr_warmup_sets_the_first_updates_rates_and_is_stored_only_when_on(tmp_path):
    def run(out, warmup, epochs=2, resume=False):
        model = make_model("propnet", chain_config("propnet"))
        train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], out,
              TrainConfig(epochs=epochs, lr_warmup=warmup, **FAST), resume=resume, progress=False)
        rows = [json.loads(x) for x in (out / "loss.jsonl").read_text().splitlines()]
        return [r["lr"] for r in rows], torch.load(out / "checkpoint.pt", weights_only=True)["train_state"]

    plain, state = run(tmp_path / "a", 0)
    assert "lr_warmup" not in state["flags"] and state["schedule"]["name"] == "ExponentialDecay"  # as before the option
    # 64 samples / 8 = 8 updates per epoch; a 16-update warm-up covers both epochs
    warm, state = run(tmp_path / "b", 16)
    assert warm[0] == pytest.approx(plain[0] / 16) and warm[1] == pytest.approx(plain[1] * 9 / 16), (warm, plain)
    assert state["flags"]["lr_warmup"] == 16 and state["schedule"]["name"] == "LinearWarmup"
    short, _ = run(tmp_path / "c", 4)
    assert short[1] == plain[1]  # after the warm-up the decay is untouched
    with pytest.raises(ConfigError, match=r"--lr-warmup 16 \(now 4\)"):
        run(tmp_path / "b", 4, epochs=3, resume=True)
    with pytest.raises(ConfigError, match="lr_warmup must be >= 0"):
        TrainConfig(lr_warmup=-1)


def test_wall_features_reach_the_model_and_stay_out_of_configs_that_do_not_use_them(tmp_path):
    from physics.models import load_model
    from physics.models.config import apply_overrides, config_from_dict, config_to_dict

    plain = config_to_dict(chain_config("dpinet"))
    assert "wall_clip" not in plain["graph"]  # as saved before the option existed
    assert config_from_dict(plain) == chain_config("dpinet")
    cfg = apply_overrides(chain_config("dpinet"), {"graph.wall_clip": 0.05, "graph.wall_column": 0})
    assert config_to_dict(cfg)["graph"]["wall_clip"] == 0.05 and config_from_dict(config_to_dict(cfg)) == cfg
    torch.manual_seed(0)
    model = make_model("dpinet", cfg)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path,
                    TrainConfig(epochs=2, seed=0, **FAST), progress=False)
    assert summary["history"][-1]["valid_loss"] < summary["history"][0]["valid_loss"]
    kept, _ = load_model(tmp_path / "model.pt")
    assert kept.config.graph.wall_clip == 0.05
    assert kept.node_encoder[0].in_features == make_model("dpinet", chain_config("dpinet")).node_encoder[0].in_features + 3


def test_box_features_reach_the_model_from_its_noisy_input_and_stay_out_of_configs_that_do_not_use_them():
    from physics.graph.builder import GraphBuilder
    from physics.models.config import apply_overrides, config_from_dict, config_to_dict

    plain = config_to_dict(chain_config("dpinet"))
    assert "wall_box" not in plain["graph"] and "wall_column" not in plain["graph"]  # as saved before
    cfg = apply_overrides(chain_config("dpinet"), {"graph.wall_box": 0.04})
    saved = config_to_dict(cfg)
    assert saved["graph"]["wall_box"] == 0.04 and "wall_clip" not in saved["graph"] and config_from_dict(saved) == cfg
    torch.manual_seed(0)
    model = make_model("dpinet", cfg)
    assert model.node_encoder[0].in_features == make_model("dpinet", chain_config("dpinet")).node_encoder[0].in_features + 3
    # the features come from the positions the model is given (noisy in training), not from the graph's:
    # the whole scene moved 0.01 m changes no velocity and no edge, only the distances to the stored walls
    pos = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.02, 0.01], [0.05, 0.02]])
    attr = torch.tensor([[1.0], [1.0], [0.0], [0.0]])  # column 0 (the last) flags the two markers
    hist = torch.stack([pos, pos + 0.001, pos + 0.003])
    moved = hist.transpose(0, 1) + torch.tensor([0.01, 0.0])
    plain_model = make_model("dpinet", chain_config("dpinet")).eval()
    inst = torch.tensor([0, 0, -1, -1])

    def graph(c):
        b = GraphBuilder(c.graph)
        g = b.build(hist, attr, edges=torch.zeros(2, 0, dtype=torch.long), edge_attr=torch.zeros(0, 1), instance=inst,
                    root_of=b.roots_for(pos, inst))
        return g, torch.cat([moved, g.pos_hist[4:] + torch.tensor([0.01, 0.0])])  # roots move with their leaves

    with torch.no_grad():
        g, shifted = graph(cfg)
        assert not torch.allclose(model.eval()(g)[2:4], model(g, shifted)[2:4])
        g0, shifted0 = graph(plain_model.config)
        assert torch.allclose(plain_model(g0), plain_model(g0, shifted0), atol=1e-6)
    with pytest.raises(ConfigError, match="graph.wall_box=nan: must be a finite number"):
        apply_overrides(chain_config("dpinet"), {"graph.wall_box": float("nan")})


def test_select_rollouts_resumes_after_a_kill_with_the_same_kept_epoch(tmp_path, monkeypatch):
    from physics.models import load_model

    def run(out):
        torch.manual_seed(0)
        model = make_model("propnet", chain_config("propnet"))
        return train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], out,
                     TrainConfig(epochs=3, seed=0, select_rollouts=1, **FAST), resume=True, progress=False)

    straight = run(tmp_path / "a")
    kill_loss_at_call(monkeypatch, 2 * 9 + 3)  # in epoch three: 8 training batches per epoch, 1 validation batch
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    monkeypatch.undo()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["train_state"]["round"] == 2
    resumed = run(tmp_path / "b")
    assert (resumed["best_epoch"], resumed["best_rollout_mse"]) == (straight["best_epoch"], straight["best_rollout_mse"])
    a, b = load_model(tmp_path / "a" / "model.pt")[0], load_model(tmp_path / "b" / "model.pt")[0]
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"graph.radius": "nan"}, "--set graph.radius='nan': must be a number"),
        ({"graph.wall_clip": float("inf")}, "graph.wall_clip=inf: must be a finite number"),
        ({"hidden": "abc"}, "--set hidden='abc': must be an integer"),
        ({"hidden": 1.5}, "--set hidden=1.5: must be an integer"),
        ({"share_weights": 3}, "--set share_weights=3: must be true or false"),
        ({"stage_order": 5}, "--set stage_order=5: must be text"),
    ],
)
def test_overrides_of_the_wrong_type_are_named(override, message):
    """``--set`` values arrive as JSON or text: one of the wrong type is refused by name, not a TypeError deep inside."""
    from physics.models.config import apply_overrides

    with pytest.raises(ConfigError) as err:
        apply_overrides(chain_config("dpinet"), override)
    assert message in str(err.value)


def test_overrides_of_the_right_type_apply():
    from physics.models.config import apply_overrides

    cfg = apply_overrides(chain_config("dpinet"), {"hidden": 16, "graph.radius": None, "noise_std": 0, "stage_order": "leaves_first"})
    assert (cfg.hidden, cfg.graph.radius, cfg.noise_std, cfg.stage_order) == (16, None, 0, "leaves_first")


def test_sample_from_draws_only_later_frames_and_is_stored_only_when_on(tmp_path):
    from physics.graph.builder import GraphBuilder
    from physics.models import make_samples

    traj = spring_chain(1)  # 40 frames
    builder = GraphBuilder(chain_config("propnet").graph)
    pos = torch.from_numpy(traj.positions).float()
    late = make_samples([traj], builder, None, first_step=20, horizon=2)
    starts = [int(torch.isclose(pos[1:], g.target_pos[: traj.num_nodes]).flatten(1).all(1).nonzero()[0]) for g in late]
    assert starts == list(range(20, 38))  # frames t = 20 .. 37, each with targets at t+1 and t+2
    every = make_samples([traj], builder, None, horizon=2)
    assert len(every) == 38 - builder.config.history  # frames history .. 37: the default is unchanged

    def run(out, first):
        model = make_model("propnet", chain_config("propnet"))
        summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], out,
                        TrainConfig(epochs=1, sample_from=first, **FAST), progress=False)
        return summary, torch.load(out / "checkpoint.pt", weights_only=True)["train_state"]["flags"]

    plain, flags = run(tmp_path / "a", 0)
    assert "sample_from" not in flags and plain["train_samples"] == 64  # as before the option
    later, flags = run(tmp_path / "b", 20)
    assert flags["sample_from"] == 20 and later["train_samples"] == 2 * 19  # frames 20..38 of each trajectory
    with pytest.raises(ConfigError, match="sample_from must be a frame index >= 0"):
        TrainConfig(sample_from=-1)
    with pytest.raises(ConfigError, match=r"--sample-from 39: trajectories \[0, 1, 2\]"):
        run(tmp_path / "c", 39)
