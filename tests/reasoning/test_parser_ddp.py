"""`nesy train parser` under DistributedDataParallel: 2 CPU processes (gloo) against 1.

One ``torch.multiprocessing.spawn`` of two ranks does the distributed work; the
parent compares what they wrote with a single-process run on the same global batch.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from physics.errors import ConfigError
from physics.training.distributed import world_info
from reasoning.parser import ParserConfig, load_parser_data, train_parser
from reasoning.parser.train import _check_shares, build_parser, reinforce_loss
from tests.ddp import free_port, spawn_ranks
from tests.reasoning.test_parser_cli import _one_thread, folder  # noqa: F401 (fixtures)

WORLD = 2
# one supervised step on a global batch of 7 (shares of 4 and 3: the token weighting matters); no dropout
ONE_STEP = ParserConfig(embedding_dim=16, hidden_dim=32, programs=7, epochs=1, batch_size=7, reinforce_steps=0,
                        reinforce_questions=20, checkpoint_every=2, threads=1, dropout=0.0, word_dropout=0.0)
WITH_RL = dataclasses.replace(ONE_STEP, reinforce_steps=3, checkpoint_every=2)


def _fixed_rewards(tokens, batch) -> list[float]:
    """A reward that ignores the sampled programs: the global mean is known whatever each rank samples."""
    return [float(len(e.question) % 3 == 0) for e in batch]


def _rl_batch(data):
    return list(data.examples[:6])


def _worker(rank: int, port: int, folder: str, out: str) -> None:  # noqa: F811
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        world, where, data = world_info(), Path(out), load_parser_data(folder)
        step = train_parser(ONE_STEP, data, out=where / "step.pt", progress=False)["parser"]
        parser = build_parser(ONE_STEP, data)
        batch = _rl_batch(data)
        share = batch[:3] if rank == 0 else batch[3:]
        _, mean, baseline = reinforce_loss(parser, share, _fixed_rewards, 0.5, ONE_STEP, world)
        rl = train_parser(WITH_RL, data, out=where / "rl.pt", progress=False)["parser"]
        torch.save({"step": step.state_dict(), "mean": mean, "baseline": baseline, "rl": rl.state_dict()},
                   where / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, folder) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("parser_ddp")
    spawn_ranks(_worker, str(folder), str(out), nprocs=WORLD)
    return out


def test_two_process_step_equals_one_process_on_the_global_batch(ddp_runs: Path, folder, tmp_path) -> None:  # noqa: F811
    ref = train_parser(ONE_STEP, load_parser_data(folder), out=tmp_path / "one.pt", progress=False)["parser"]
    for rank in range(WORLD):
        got = torch.load(ddp_runs / f"rank{rank}.pt", weights_only=True)["step"]
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_reinforce_baseline_follows_the_global_batch(ddp_runs: Path, folder) -> None:  # noqa: F811
    data = load_parser_data(folder)
    _, mean, baseline = reinforce_loss(build_parser(ONE_STEP, data), _rl_batch(data), _fixed_rewards, 0.5, ONE_STEP)
    for rank in range(WORLD):
        got = torch.load(ddp_runs / f"rank{rank}.pt", weights_only=True)
        assert got["mean"] == mean and got["baseline"] == baseline


def test_checkpoint_records_world_size_and_ranks_stay_equal(ddp_runs: Path) -> None:
    ckpt = torch.load(ddp_runs / "rl.pt", weights_only=True)
    assert ckpt["meta"]["world_size"] == WORLD and ckpt["train_state"]["world_size"] == WORLD
    assert ckpt["train_state"]["extra"]["stage"] == "reinforce" and ckpt["train_state"]["step"] == 3
    ranks = [torch.load(ddp_runs / f"rank{r}.pt", weights_only=True)["rl"] for r in range(WORLD)]
    for key, value in ranks[0].items():  # DDP keeps the replicas equal through both stages
        assert torch.equal(ranks[1][key], value), key
    for key, value in ckpt["model"].items():  # rank 0 wrote the file
        assert torch.equal(ranks[0][key], value), key


def test_a_batch_smaller_than_the_world_is_refused_in_one_line() -> None:
    _check_shares(ONE_STEP, 7, 2)
    with pytest.raises(ConfigError, match="leaves a batch of 1") as err:
        _check_shares(ONE_STEP, 8, 2)  # 8 programs in batches of 7: the last holds 1
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_torchrun_trains_the_parser_on_two_processes(tmp_path, folder) -> None:  # noqa: F811
    """``torchrun --nproc_per_node 2 -m benchmarks.cli train parser``: rank 0 writes and reports once."""
    import json
    import subprocess
    import sys

    from tests.reasoning.test_parser_cli import TINY_FLAGS

    port = free_port()
    out = tmp_path / "p.pt"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), "-m", "benchmarks.cli", "train", "parser", "--data", str(folder), "--eval-data",
                           str(folder), "--out", str(out), "--quiet", *TINY_FLAGS],
                          check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    summary = json.loads(done.stdout)  # printed once, by rank 0
    assert summary["command"].startswith("torchrun --nproc_per_node 2 -m benchmarks.cli train parser")
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["meta"]["world_size"] == 2 and ckpt["train_state"]["world_size"] == 2
    assert ckpt["train_state"]["extra"]["stage"] == "reinforce"


@pytest.mark.parametrize("device, message", [("tpu9", "unknown device 'tpu9'"), ("cuda", "CUDA is not available")])
def test_cli_refuses_a_device_it_cannot_use_in_one_line(tmp_path, folder, capsys, monkeypatch, device, message):  # noqa: F811
    from benchmarks.cli import main
    from tests.reasoning.test_parser_cli import TINY_FLAGS

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "parser", "--data", str(folder), "--out", str(tmp_path / "p.pt"), "--quiet", *TINY_FLAGS,
               "--device", device])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and message in err and "\n" not in err
    assert not (tmp_path / "p.pt").exists()


def _device() -> str:
    return os.environ.get("NESY_TEST_DEVICE", "cuda")


@pytest.mark.skipif(_device() == "cuda" and not torch.cuda.is_available(), reason="no GPU here")
def test_parser_trains_on_the_device_and_its_checkpoint_loads_on_the_cpu(tmp_path, folder) -> None:  # noqa: F811
    """Both stages on ``--device cuda`` (NESY_TEST_DEVICE=cpu runs the same checks on the CPU); resume may change it."""
    from reasoning.parser import load_parser

    data = load_parser_data(folder)
    cfg = dataclasses.replace(WITH_RL, device=_device(), dropout=0.1, word_dropout=0.02)
    out = tmp_path / "p.pt"
    parser = train_parser(cfg, data, out=out, progress=False)["parser"]
    assert next(parser.parameters()).device.type == torch.device(_device()).type
    assert len(parser.parse(["How many things are there?"])) == 1
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["train_state"]["step"] == 3 and all(v.device.type == "cpu" for v in ckpt["model"].values())
    on_cpu = load_parser(out)
    assert next(on_cpu.parameters()).device.type == "cpu" and len(on_cpu.parse(["How many things are there?"])) == 1
    more = train_parser(dataclasses.replace(cfg, device="cpu", reinforce_steps=6), data, out=out, progress=False)
    assert more["reinforce_steps"] == 6 and torch.load(out, weights_only=True)["train_state"]["step"] == 6
