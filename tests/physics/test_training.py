"""The shared training loop: bit-identical resume after a kill, flags checked, logs, schedules, RNG."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from physics.errors import CheckpointError, ConfigError
from physics.io import atomic_torch_save
from physics.training import (
    Constant,
    ExponentialDecay,
    LinearWarmup,
    RunLog,
    TrainLoop,
    WarmupCosine,
    rng_state,
    seed_everything,
    set_rng_state,
)

ROUNDS = 4


class Killed(Exception):
    """Stands in for Ctrl-C / a kill in the middle of a round."""


def run(path: Path, *, kill_at: int | None = None, seed: int = 0, lr: float = 0.05, rounds: int = ROUNDS,
        threads: int = 1) -> TrainLoop:
    """A tiny regression trained by the loop; every source of randomness is used on purpose.

    Batches come from a per-round generator; the step draws dropout from torch's global
    generator, noise from numpy's and Python's global ones and from a named generator.
    """
    seed_everything(seed)
    x = torch.randn(40, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    noise = torch.Generator().manual_seed(seed + 1)
    calls = {"n": 0}

    def batches(r: int):
        order = torch.randperm(40, generator=torch.Generator().manual_seed(seed * 1000 + r))
        return [order[i : i + 8] for i in range(0, 40, 8)]

    def step(idx):
        calls["n"] += 1
        if kill_at is not None and calls["n"] == kill_at:
            raise Killed
        jitter = float(np.random.normal(0, 0.01)) + random.gauss(0, 0.01)
        xb = x[idx] + 0.01 * torch.randn(len(idx), 3, generator=noise) + jitter
        return {"loss": ((model(xb)[:, 0] - y[idx]) ** 2).mean(), "weight": len(idx)}

    loop = TrainLoop(model, opt, WarmupCosine(lr, rounds * 5), path,
                     flags={"seed": seed, "lr": lr, "epochs": rounds, "threads": threads},
                     command=f"train --seed {seed} --lr {lr}", generators={"noise": noise}, grad_clip=1.0,
                     log=RunLog(path.with_suffix(".jsonl")), may_change=("threads",), progress=False)
    loop.resume()
    loop.fit(rounds, batches, step)
    return loop


def weights(loop: TrainLoop) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in loop.model.state_dict().items()}


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_after_a_kill_mid_round_is_bit_identical(tmp_path):
    straight = run(tmp_path / "a.pt")
    with pytest.raises(Killed):
        run(tmp_path / "b.pt", kill_at=13)  # in round 3, after two checkpoints
    stored = torch.load(tmp_path / "b.pt", weights_only=True)["train_state"]
    assert (stored["round"], stored["step"]) == (2, 10)
    resumed = run(tmp_path / "b.pt")
    assert_bit_identical(weights(straight), weights(resumed))
    assert resumed.step == straight.step == 20
    a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [(r["loss"], r["lr"]) for r in a] == [(r["loss"], r["lr"]) for r in b]


def test_resume_after_sigkill_of_the_process_is_bit_identical(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        import torch
        torch.set_num_threads(1)
        from tests.physics import test_training as t
        kill = int(sys.argv[2])
        if kill:
            t.Killed = None
            real = t.TrainLoop.save
            count = {{"n": 0}}
            def save_then_die(self):
                real(self)
                count["n"] += 1
                if count["n"] == kill:
                    os.kill(os.getpid(), signal.SIGKILL)
            t.TrainLoop.save = save_then_die
        loop = t.run(Path(sys.argv[1]))
        torch.save(loop.model.state_dict(), sys.argv[1] + ".final")
    """)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "k.pt"), "3"], env=env)
    assert killed.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "k.pt"), "0"], env=env, check=True)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.pt"), "0"], env=env, check=True)
    assert_bit_identical(torch.load(str(tmp_path / "s.pt") + ".final"), torch.load(str(tmp_path / "k.pt") + ".final"))


def test_resume_with_changed_flags_is_refused_naming_them(tmp_path):
    with pytest.raises(Killed):
        run(tmp_path / "c.pt", kill_at=7)
    with pytest.raises(ConfigError, match=r"--lr 0.05 \(now 0.5\), --seed 0 \(now 7\)") as err:
        run(tmp_path / "c.pt", seed=7, lr=0.5)
    assert "c.pt" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="--epochs 4"):
        run(tmp_path / "c.pt", rounds=6)
    straight = run(tmp_path / "d.pt")
    resumed = run(tmp_path / "c.pt", threads=2)  # resources may change
    assert_bit_identical(weights(straight), weights(resumed))


def test_a_flag_stored_only_when_on_reads_not_given_when_a_resume_differs(tmp_path):
    """``train dynamics --resume --ema-decay 0.9`` of a run without it said "--ema-decay None (now 0.9)"."""
    model = torch.nn.Linear(1, 1)
    loop = TrainLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), WarmupCosine(0.1, 5), None,
                     flags={"lr": 0.1, "ema_decay": 0.9}, progress=False)
    with pytest.raises(ConfigError, match=r"^c.pt was trained with --ema-decay not given \(now 0.9\); "):
        loop._check_flags({"lr": 0.1}, "c.pt")
    with pytest.raises(ConfigError, match=r"--ema-decay 0.5 \(now 0.9\), --keep-epochs True \(now not given\)"):
        loop._check_flags({"lr": 0.1, "ema_decay": 0.5, "keep_epochs": True}, "c.pt")


@pytest.mark.parametrize("content, message", [
    ([1, 2, 3], "holds a list"),
    ({"model": {}}, "no 'train_state'"),
    ({"model": 3, "train_state": {}}, "'model' entry is a int"),
    ({"model": {}, "train_state": {"round": 1}}, "has no 'step' entry"),
    ({"model": {}, "train_state": "x"}, "no 'train_state'"),
])
def test_resume_from_a_wrongly_structured_file_raises_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "w.pt"
    atomic_torch_save(path, content)
    with pytest.raises(CheckpointError, match=message) as err:
        run(path)
    assert str(path) in str(err.value)


def test_resume_from_a_finished_model_file_is_refused(tmp_path):
    loop = run(tmp_path / "m.pt")
    atomic_torch_save(tmp_path / "copy.pt", {"model": weights(loop), "meta": {}})  # like model.pt
    with pytest.raises(CheckpointError, match="a finished model file"):
        run(tmp_path / "copy.pt")


def test_checkpoint_stores_flags_command_schedule_and_rng(tmp_path):
    run(tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)["train_state"]
    assert state["flags"] == {"seed": 0, "lr": 0.05, "epochs": ROUNDS, "threads": 1}
    assert state["command"] == "train --seed 0 --lr 0.05"
    assert state["schedule"]["name"] == "WarmupCosine"
    assert set(state["rng"]) >= {"torch", "numpy", "python", "generators"}


def test_rng_state_round_trip_restores_every_generator():
    gen = torch.Generator().manual_seed(3)
    seed_everything(5)
    saved = rng_state({"g": gen})
    first = (torch.rand(2), np.random.rand(), random.random(), torch.rand(1, generator=gen))
    set_rng_state(saved, {"g": gen})
    again = (torch.rand(2), np.random.rand(), random.random(), torch.rand(1, generator=gen))
    assert torch.equal(first[0], again[0]) and first[1:3] == again[1:3] and torch.equal(first[3], again[3])


def test_exponential_decay_matches_torch_exponential_lr_bit_for_bit():
    sched = ExponentialDecay(1e-3, 1e-4, 7)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    torch_sched = torch.optim.lr_scheduler.ExponentialLR(opt, sched.gamma)
    for epoch in range(7):
        assert sched.lr(epoch, 0) == opt.param_groups[0]["lr"]
        opt.step()  # no gradient: only keeps the scheduler from warning
        torch_sched.step()
    assert sched.lr(99, 0) == sched.lr(6, 0)  # never past lr_final
    assert Constant(0.1).lr(5, 50) == 0.1
    cos = WarmupCosine(1.0, 100)
    assert cos.lr(0, 0) == 0.5 and cos.lr(0, 1) == 1.0 and abs(cos.lr(0, 100) - 0.05) < 1e-12


def test_linear_warmup_ramps_the_inner_schedule_then_leaves_it_unchanged():
    inner = ExponentialDecay(1e-3, 1e-4, 4)
    warm = LinearWarmup(inner, 4)
    assert [warm.lr(0, s) for s in range(4)] == [inner.lr(0, k - 1) * k / 4 for k in (1, 2, 3, 4)]
    assert warm.lr(0, 3) == inner.lr(0, 3)  # full rate at the last warm-up step
    assert warm.lr(2, 10) == inner.lr(2, 10) and warm.lr(1, 4) == inner.lr(1, 4)
    assert LinearWarmup(inner, 8).lr(1, 5) == inner.lr(1, 5) * 6 / 8  # steps, not rounds, count
    assert warm.describe() == {"name": "LinearWarmup", "steps": 4, "inner": inner.describe()}
    assert warm.describe() != LinearWarmup(inner, 5).describe()  # a resume with another warm-up is refused
    with pytest.raises(ConfigError, match="steps >= 1"):
        LinearWarmup(inner, 0)


def test_run_log_writes_json_lines_and_tensorboard_scalars(tmp_path, monkeypatch):
    import physics.training.log as log_module

    scalars = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard may be absent)
        def __init__(self, folder):
            self.folder = folder

        def add_scalar(self, key, value, step):
            scalars.append((key, value, step))

        def flush(self):
            pass

        def close(self):
            scalars.append("closed")

    monkeypatch.setattr(log_module, "_summary_writer", lambda folder: FakeWriter(folder))
    log = RunLog(tmp_path / "m.jsonl", tensorboard=tmp_path / "tb")
    history = [{"epoch": 1, "step": 5, "loss": 0.5, "seconds": 1.0}]
    log.write(history, "net")
    history.append({"epoch": 2, "step": 10, "loss": 0.25, "seconds": 2.0})
    log.write(history, "net")
    log.close()
    assert [json.loads(x)["loss"] for x in (tmp_path / "m.jsonl").read_text().splitlines()] == [0.5, 0.25]
    assert scalars == [("net/loss", 0.5, 5), ("net/loss", 0.25, 10), "closed"]
    appended = RunLog(tmp_path / "m.jsonl", rewrite=False)
    appended.write([{"epoch": 3, "loss": 0.1}])
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 3
