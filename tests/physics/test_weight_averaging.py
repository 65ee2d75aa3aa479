"""Weight averaging (``physics.models.averaging``, ``TrainConfig.average_last``): the mean of a run's
last epochs' weights competes for ``model.pt`` as one more epoch, and is stored only when on."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from benchmarks.commands.train_dynamics import _command_line
from physics.errors import CheckpointError, ConfigError
from physics.models import TrainConfig, load_model, make_model, train
from physics.models.averaging import average_models, average_state_dicts
from physics.models.training import _flags
from tests.physics.test_models import chain_config, spring_chain
from tests.physics.test_models_training import FAST


def test_average_state_dicts_means_floats_and_copies_equal_flags():
    a = {"w": torch.tensor([1.0, 2.0]), "fitted": torch.tensor(True), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "fitted": torch.tensor(True), "n": torch.tensor([3])}
    mean = average_state_dicts([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and mean["w"].dtype == torch.float32
    assert bool(mean["fitted"]) and torch.equal(mean["n"], torch.tensor([3]))
    with pytest.raises(CheckpointError, match="'n' differs"):
        average_state_dicts([a, {**b, "n": torch.tensor([4])}])
    with pytest.raises(CheckpointError, match="other entries"):
        average_state_dicts([a, {"w": b["w"]}])
    with pytest.raises(CheckpointError, match="no weights"):
        average_state_dicts([])


def test_average_last_keeps_every_epoch_and_scores_their_mean(tmp_path):
    torch.manual_seed(0)
    model = make_model("in", chain_config("in"))
    cfg = TrainConfig(epochs=3, seed=0, select_rollouts=1, average_last=2, **FAST)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path, cfg, progress=False)
    files = [tmp_path / "epochs" / f"epoch_{e}.pt" for e in (1, 2, 3)]
    assert all(f.is_file() for f in files)
    # the model leaves training with the last epoch's weights (checkpoint.pt's), not the mean
    last, _ = load_model(files[-1])
    for (k, a), b in zip(model.state_dict().items(), last.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    mean, meta = average_models(files[1:])
    assert meta["averaged_from"] == [str(f) for f in files[1:]]
    w2, w3 = (load_model(f)[0].state_dict() for f in files[1:])
    key = next(k for k, v in w2.items() if v.is_floating_point() and not torch.equal(v, w3[k]))
    assert torch.allclose(mean.state_dict()[key], (w2[key] + w3[key]) / 2, atol=1e-7)
    rows = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    final = rows[-1]
    assert final["average_epochs"] == [2, 3] and "average_rollout_mse" in final
    assert "average_epochs" not in rows[0]
    epochs_scores = [r["valid_rollout_mse"] for r in rows]
    kept, kept_meta = load_model(tmp_path / "model.pt")
    # the mean is kept exactly when its rollout check beats every epoch's
    assert final["average_kept"] == (final["average_rollout_mse"] < min(epochs_scores))
    if final["average_kept"]:
        assert kept_meta["averaged_epochs"] == [2, 3] and summary["best_epoch"] == "average 2-3"
        for (k, a), b in zip(kept.state_dict().items(), mean.state_dict().values(), strict=True):
            assert torch.equal(a, b), k
    else:
        assert "averaged_epochs" not in kept_meta and summary["best_epoch"] == 1 + epochs_scores.index(min(epochs_scores))
    assert _flags(cfg)["average_last"] == 2


def test_average_last_off_is_not_stored_and_bad_values_are_named(tmp_path):
    assert "average_last" not in _flags(TrainConfig())
    args = argparse.Namespace(world="fluidfall", model="dpinet", data=["d"], set=None)
    assert "--average-last 3" in _command_line(args, TrainConfig(epochs=5, average_last=3), Path("o"))
    assert "--average-last" not in _command_line(args, TrainConfig(), Path("o"))
    with pytest.raises(ConfigError, match="average_last must be 0 .off. or between 2 and epochs .3."):
        TrainConfig(epochs=3, average_last=4)
    with pytest.raises(ConfigError, match="average_last"):
        TrainConfig(epochs=3, average_last=1)
    torch.manual_seed(0)
    model = make_model("in", chain_config("in"))
    train(model, [spring_chain(1)], [], tmp_path, TrainConfig(epochs=1, **FAST), progress=False)
    assert not (tmp_path / "epochs").exists()


def test_average_models_refuses_another_config(tmp_path):
    torch.manual_seed(0)
    for name in ("in", "propnet"):
        model = make_model(name, chain_config(name))
        train(model, [spring_chain(1)], [], tmp_path / name, TrainConfig(epochs=1, **FAST), progress=False)
    with pytest.raises(CheckpointError, match="only one run's epochs"):
        average_models([tmp_path / "in" / "model.pt", tmp_path / "propnet" / "model.pt"])


def test_weighted_mean_and_non_floating_entries_taken_from_the_first():
    a = {"w": torch.tensor([0.0, 4.0]), "steps": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 0.0]), "steps": torch.tensor(7)}
    mean = average_state_dicts([a, b], weights=[3.0, 1.0], non_floating="first")
    assert torch.allclose(mean["w"], torch.tensor([1.0, 3.0])) and int(mean["steps"]) == 3
    with pytest.raises(CheckpointError, match="non-floating entry 'steps'"):
        average_state_dicts([a, b])
    with pytest.raises(CheckpointError, match="one positive weight per state"):
        average_state_dicts([a, b], weights=[1.0, 0.0])
    with pytest.raises(CheckpointError, match="non_floating"):
        average_state_dicts([a, b], non_floating="last")


def test_keep_epochs_writes_every_epoch_without_averaging_and_is_stored_only_when_on(tmp_path):
    torch.manual_seed(0)
    model = make_model("in", chain_config("in"))
    cfg = TrainConfig(epochs=2, seed=0, select_rollouts=1, keep_epochs=True, **FAST)
    train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], tmp_path, cfg, progress=False)
    files = [tmp_path / "epochs" / f"epoch_{e}.pt" for e in (1, 2)]
    assert all(f.is_file() for f in files)
    rows = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any("average_epochs" in r for r in rows)
    # the last epoch's file holds the weights the model leaves training with
    last, meta = load_model(files[-1])
    assert meta["epoch"] == 2
    for (k, a), b in zip(model.state_dict().items(), last.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # model.pt is the epoch the rollout check keeps, as without the option
    kept, kept_meta = load_model(tmp_path / "model.pt")
    scores = [r["valid_rollout_mse"] for r in rows]
    assert kept_meta["epoch"] == 1 + scores.index(min(scores))
    assert _flags(cfg)["keep_epochs"] is True and "keep_epochs" not in _flags(TrainConfig())
    args = argparse.Namespace(world="fluidfall", model="dpinet", data=["d"], set=None)
    assert "--keep-epochs" in _command_line(args, cfg, Path("o"))
    assert "keep-epochs" not in _command_line(args, TrainConfig(), Path("o"))
    plain = tmp_path / "plain"
    train(make_model("in", chain_config("in")), [spring_chain(1)], [], plain, TrainConfig(epochs=1, **FAST), progress=False)
    assert not (plain / "epochs").exists()


def test_keep_epochs_writes_every_epoch_without_averaging_and_keeps_the_same_model(tmp_path):
    trajs = [spring_chain(1), spring_chain(2)], [spring_chain(3)]
    runs = {}
    for keep in (False, True):
        torch.manual_seed(0)
        model = make_model("in", chain_config("in"))
        cfg = TrainConfig(epochs=2, seed=0, keep_epochs=keep, **FAST)
        runs[keep] = train(model, *trajs, tmp_path / str(keep), cfg, progress=False)
    assert not (tmp_path / "False" / "epochs").exists()
    files = [tmp_path / "True" / "epochs" / f"epoch_{e}.pt" for e in (1, 2)]
    assert all(f.is_file() for f in files)
    assert runs[True]["best_valid_loss"] == runs[False]["best_valid_loss"]  # model.pt is chosen as without the option
    kept, _ = load_model(tmp_path / "True" / "model.pt")
    plain, _ = load_model(tmp_path / "False" / "model.pt")
    for (k, a), b in zip(kept.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    rows = [json.loads(x) for x in (tmp_path / "True" / "loss.jsonl").read_text().splitlines()]
    assert "average_epochs" not in rows[-1]
    assert _flags(TrainConfig(keep_epochs=True))["keep_epochs"] and "keep_epochs" not in _flags(TrainConfig())

