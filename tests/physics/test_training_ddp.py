"""The shared training loop under DistributedDataParallel: 2 CPU processes (gloo) against 1.

One ``torch.multiprocessing.spawn`` of two ranks does all the distributed work
(starting processes is the slow part); the parent then compares what they wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from physics.errors import ConfigError
from physics.training import Constant, TrainLoop
from physics.training.distributed import WorldInfo, rank_share, world_info
from tests.ddp import free_port, spawn_ranks

WORLD = 2
SAMPLES = 16
ROUNDS = 3
GLOBAL_BATCH = 7  # odd: the ranks' shares differ (4 and 3), so the loss weighting matters


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 3, generator=gen)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def _step_fn(model: torch.nn.Module, noise: float):
    x, y = _data()

    def step(idx: list[int]):
        inputs = x[idx] + noise * torch.randn(len(idx), 3)  # torch's global generator: one per rank
        return {"loss": ((model(inputs).squeeze(1) - y[idx]) ** 2).mean(), "weight": len(idx)}

    return step


def one_step_grads(world: WorldInfo) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """One SGD step on the global batch ``0 .. GLOBAL_BATCH - 1`` (this rank's share of it)."""
    model = _model()
    loop = TrainLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), Constant(0.1), None, flags={},
                     progress=False, distributed=True, world=world)
    loop.fit(1, lambda r: [rank_share(list(range(GLOBAL_BATCH)), world)], _step_fn(model, 0.0))
    return model, [p.grad.clone() for p in model.parameters()]


def noisy_run(path: Path, rounds: int, world: WorldInfo, *, resume: bool = False) -> TrainLoop:
    """Adam on shuffled batches of 4 with per-rank input noise, checkpointed every round."""
    model = _model()
    torch.manual_seed(1000 + world.rank if not resume else 77)  # a resume must restore the rank's generator
    loop = TrainLoop(model, torch.optim.Adam(model.parameters(), lr=0.01), Constant(0.01), path,
                     flags={"rounds": ROUNDS}, progress=False, distributed=True, world=world)
    if resume:
        assert loop.resume()

    def batches(r: int):
        order = torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(r)).tolist()
        return [rank_share(order[i:i + 4], world) for i in range(0, SAMPLES, 4)]

    loop.fit(rounds, batches, _step_fn(model, 0.1))
    return loop


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        world = world_info()
        out = Path(folder)
        model, grads = one_step_grads(world)
        torch.save({"grads": grads, "weights": model.state_dict()}, out / f"step_rank{rank}.pt")
        whole = noisy_run(out / "whole.pt", ROUNDS, world)
        noisy_run(out / "cut.pt", 1, world)
        resumed = noisy_run(out / "cut.pt", ROUNDS, world, resume=True)
        torch.save({"whole": whole.model.state_dict(), "resumed": resumed.model.state_dict(),
                    "history": [whole.history, resumed.history]}, out / f"runs_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    spawn_ranks(_worker, str(folder), nprocs=WORLD)
    return folder


def test_two_process_step_averages_to_the_global_batch_gradient(ddp_runs: Path) -> None:
    model, grads = one_step_grads(WorldInfo())
    for rank in range(WORLD):
        got = torch.load(ddp_runs / f"step_rank{rank}.pt", weights_only=True)
        for g, ref in zip(got["grads"], grads, strict=True):
            torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-7)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(got["weights"][key], value, rtol=1e-5, atol=1e-7)


def test_resumed_two_process_run_ends_where_an_uninterrupted_one_does(ddp_runs: Path) -> None:
    ranks = [torch.load(ddp_runs / f"runs_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for run in ranks:
        for key, value in run["whole"].items():
            assert torch.equal(run["resumed"][key], value), key
        whole, resumed = run["history"]
        assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
    for key, value in ranks[0]["whole"].items():  # DDP keeps the replicas equal
        assert torch.equal(ranks[1]["whole"][key], value)


def test_checkpoint_records_world_size_and_refuses_another(ddp_runs: Path) -> None:
    state = torch.load(ddp_runs / "whole.pt", weights_only=True)["train_state"]
    assert state["world_size"] == WORLD and len(state["rng_ranks"]) == WORLD
    model = _model()
    loop = TrainLoop(model, torch.optim.Adam(model.parameters()), Constant(0.01), ddp_runs / "whole.pt",
                     flags={"rounds": ROUNDS}, progress=False)
    with pytest.raises(ConfigError, match="trained by 2 process"):
        loop.resume()


def test_trainer_that_does_not_shard_is_refused_under_several_processes(monkeypatch) -> None:
    model = _model()
    with pytest.raises(ConfigError, match="does not split its batches"):
        TrainLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), Constant(0.1), None, flags={},
                  world=WorldInfo(rank=0, size=2))
    monkeypatch.setenv("WORLD_SIZE", "2")  # started by torchrun, no process group joined
    with pytest.raises(ConfigError, match="this run has 2 processes"):
        TrainLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), Constant(0.1), None, flags={})


def test_rank_shares_cover_a_batch_once_in_order() -> None:
    items = list(range(7))
    shares = [rank_share(items, WorldInfo(rank=r, size=3)) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]


@pytest.mark.slow
def test_torchrun_trains_dynamics_on_two_processes_and_resumes(tmp_path) -> None:
    """``torchrun --nproc_per_node 2 -m benchmarks.cli train dynamics``: rank 0 writes and reports once;
    ``--resume`` under torchrun accepts the 2-process checkpoint (exact continuation: the spawn tests above)."""
    import json
    import subprocess
    import sys

    data, out = tmp_path / "data", tmp_path / "run"
    nesy = [sys.executable, "-m", "benchmarks.cli"]
    for split, n in (("train", 3), ("valid", 1)):
        subprocess.run([*nesy, "data", "dynamics", "--world", "cradle", "--n", str(n), "--steps", "20", "--split",
                        split, "--out", str(data), "--backend", "serial", "--quiet"], check=True, capture_output=True)
    port = free_port()
    train = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
             "-m", "benchmarks.cli", "train", "dynamics", "--world", "cradle", "--model", "in", "--data", str(data),
             "--max-samples", "24", "--valid-samples", "8", "--batch-size", "6", "--device", "cpu", "--out", str(out),
             "--quiet"]
    subprocess.run([*train, "--epochs", "2"], check=True, capture_output=True)
    done = subprocess.run([*train, "--epochs", "2", "--resume"], check=True, capture_output=True, text=True)
    summary = json.loads(done.stdout)  # printed once, by rank 0
    assert summary["command"].startswith("torchrun --nproc_per_node 2 -m benchmarks.cli train dynamics")
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["train_state"]["world_size"] == 2 and ckpt["meta"]["world_size"] == 2
    assert [r["epoch"] for r in ckpt["train_state"]["history"]] == [1, 2]


def test_backend_follows_the_device_and_each_process_needs_its_own_gpu(monkeypatch) -> None:
    from physics.training.distributed import backend_for, init_distributed

    assert backend_for(torch.device("cuda", 0)) == "nccl" and backend_for(torch.device("cpu")) == "gloo"
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed(torch.device("cpu")) == torch.device("cpu")  # plain run: nothing started
    assert not dist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count()))  # one past the last GPU
    with pytest.raises(ConfigError, match="needs its own GPU"):
        init_distributed(torch.device("cuda"))
