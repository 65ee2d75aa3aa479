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


def test_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    straight, _ = _run(tmp_path / "a", 3)
    import physics.models.training as training

    real, calls = training.atomic_write_text, []

    def killed_after_two_epochs(path, text):  # loss.jsonl is written last in an epoch
        real(path, text)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "atomic_write_text", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 3)
    monkeypatch.undo()
    resumed, summary = _run(tmp_path / "b", 3, resume=True)
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    with pytest.raises(CheckpointError, match="trained as 'propnet'"):
        _run(tmp_path / "b", 4, name="in", resume=True)


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
