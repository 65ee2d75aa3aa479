"""The moving average of the weights (``TrainConfig.ema_decay``): every epoch is judged and kept as the average of
the weights after each optimiser step, training goes on from the raw weights, and a killed run resumes bit for bit."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.commands.train_dynamics import _command_line
from physics.errors import ConfigError
from physics.models import TrainConfig, load_model, make_model, train
from physics.models.training import _flags
from tests.physics.test_models import chain_config, spring_chain
from tests.physics.test_models_training import FAST, kill_loss_at_call  # FAST: 8 steps an epoch


def _run(out: Path, ema: float, epochs: int = 2, init: str | None = None):
    torch.manual_seed(0)
    model = make_model("in", chain_config("in"))
    cfg = TrainConfig(epochs=epochs, seed=0, select_rollouts=1, keep_epochs=True, ema_decay=ema, init=init, **FAST)
    summary = train(model, [spring_chain(1), spring_chain(2)], [spring_chain(3)], out, cfg, resume=True, progress=False)
    return model, summary


def _floats(state):
    return {k: v for k, v in state.items() if v.is_floating_point()}


def test_each_epoch_is_kept_as_the_moving_average_of_every_step_while_training_goes_on_raw(tmp_path):
    _run(tmp_path / "start", 0.0, epochs=1)
    init = str(tmp_path / "start" / "model.pt")
    w0 = _floats(load_model(init)[0].state_dict())
    # the same run twice: without the average, and with it; the raw weights must not differ (the average
    # touches no gradient, no batch and no noise draw)
    plain, _ = _run(tmp_path / "plain", 0.0, init=init)
    d = 0.9
    avg, summary = _run(tmp_path / "ema", d, init=init)
    for (k, a), b in zip(plain.state_dict().items(), avg.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # the average of 16 steps from w0 lies between the start and the raw weights: with d = 0.9 after 16 steps the
    # start keeps a weight of 0.9**16 ~ 0.185, so epoch 2's file is neither of them
    ema2 = _floats(load_model(tmp_path / "ema" / "epochs" / "epoch_2.pt")[0].state_dict())
    raw2 = _floats(avg.state_dict())
    key = next(k for k in w0 if not torch.allclose(w0[k], raw2[k]))
    assert not torch.allclose(ema2[key], raw2[key]) and not torch.allclose(ema2[key], w0[key])
    # without the average the epoch files are the raw weights
    plain2 = _floats(load_model(tmp_path / "plain" / "epochs" / "epoch_2.pt")[0].state_dict())
    assert torch.equal(plain2[key], raw2[key])
    # the checkpoint holds the raw weights and the average, which ends 16 steps on
    ckpt = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_state"]["extra"]["ema_seen"] == 16
    assert torch.equal(ckpt["train_state"]["extra"]["ema"][key], ema2[key])
    assert torch.equal(ckpt["state_dict"][key], raw2[key])
    # model.pt is the epoch the rollout check keeps (epoch 0 = the start competes), as an average
    rows = [json.loads(x) for x in (tmp_path / "ema" / "loss.jsonl").read_text().splitlines()]
    kept, meta = load_model(tmp_path / "ema" / "model.pt")
    assert meta["ema_decay"] == d
    if summary["best_epoch"]:
        assert summary["best_rollout_mse"] == min(r["valid_rollout_mse"] for r in rows)
        best = _floats(load_model(tmp_path / "ema" / "epochs" / f"epoch_{summary['best_epoch']}.pt")[0].state_dict())
        assert torch.equal(_floats(kept.state_dict())[key], best[key])
    assert math.isfinite(rows[-1]["valid_loss"])


def test_the_average_is_exact_per_step(tmp_path, monkeypatch):
    """Record the raw weights after every optimiser step and fold them in by hand: the epoch file must match."""
    from physics.training.loop import TrainLoop

    seen: list[dict[str, torch.Tensor]] = []
    real_fit = TrainLoop.fit

    def recording_fit(self, rounds, batches, step_fn, **kw):
        def step(batch):
            seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()})
            return step_fn(batch)
        return real_fit(self, rounds, batches, step, **kw)

    monkeypatch.setattr(TrainLoop, "fit", recording_fit)
    d = 0.8
    model, _ = _run(tmp_path, d, epochs=1)
    seen.append(_floats(model.state_dict()))  # the weights after the last step
    avg = {k: v.clone() for k, v in seen[0].items()}  # the first weights
    for w in seen[1:]:
        for k in avg:
            avg[k] = d * avg[k] + (1 - d) * w[k]
    got = _floats(load_model(tmp_path / "epochs" / "epoch_1.pt")[0].state_dict())
    assert len(seen) == 9  # the first weights and 8 steps
    for k in avg:
        assert torch.allclose(got[k], avg[k], atol=1e-6), k


def test_a_killed_run_with_the_average_resumes_bit_identical(tmp_path, monkeypatch):
    _run(tmp_path / "a", 0.9, epochs=3)
    kill_loss_at_call(monkeypatch, 2 * 9 + 3)  # in epoch three: 8 training batches per epoch, 1 validation batch
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 0.9, epochs=3)
    monkeypatch.undo()
    _run(tmp_path / "b", 0.9, epochs=3)
    for name in ("model.pt", "epochs/epoch_3.pt", "checkpoint.pt"):
        a = torch.load(tmp_path / "a" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "b" / name, weights_only=True)["state_dict"]
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


def test_ema_off_is_not_stored_and_bad_values_are_named():
    assert "ema_decay" not in _flags(TrainConfig())
    assert _flags(TrainConfig(ema_decay=0.99))["ema_decay"] == 0.99
    args = argparse.Namespace(world="fluidfall", model="dpinet", data=["d"], set=None)
    assert "--ema-decay 0.99" in _command_line(args, TrainConfig(ema_decay=0.99), Path("o"))
    assert "--ema-decay" not in _command_line(args, TrainConfig(), Path("o"))
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="TrainConfig.ema_decay must be 0 .off. or a fraction 0 < d < 1"):
            TrainConfig(ema_decay=bad)


@pytest.mark.parametrize("bad", ["0.5", None, float("inf")])
def test_an_ema_decay_of_the_wrong_type_is_named_not_a_type_error(bad):
    """A text or None decay was a TypeError naming nothing ("'<' not supported between ... 'str'")."""
    says = r"0 .off. or a fraction 0 < d < 1" if bad == float("inf") else "a number"  # text, None: physics.config_types
    with pytest.raises(ConfigError, match=rf"TrainConfig.ema_decay must be {says}, got "):
        TrainConfig(ema_decay=bad)
