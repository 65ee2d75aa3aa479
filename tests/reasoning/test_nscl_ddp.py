"""``nesy train nscl`` under DistributedDataParallel: 2 CPU processes (gloo) against 1.

One ``torch.multiprocessing.spawn`` of two ranks does all the distributed work; the
parent compares what they wrote with single-process runs on the same global batch.
Adam is swapped for SGD with rate 1 in both, so that one step's weight change *is*
the (clipped) averaged gradient, which Adam's first step (about ``lr * sign(g)``) hides.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from benchmarks.cli import main
from physics.errors import ConfigError
from reasoning.nscl import NSCLTrainConfig, load_split, train_nscl
from tests.ddp import spawn_ranks

WORLD = 2
# one global batch holds every question: one optimiser step per run
CONFIGS = {
    "images": NSCLTrainConfig(epochs=1, batch_size=1000, curriculum="0:0", learning_rate=1.0, whole_images=True,
                              group_weights="color:3"),
    "questions": NSCLTrainConfig(epochs=1, batch_size=1000, curriculum="0:0", learning_rate=1.0),
}


def _sgd(params, lr):
    return torch.optim.SGD(params, lr=lr)


def _worker(rank: int, port: int, data: str, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.optim.Adam = _sgd  # this spawned process only
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        qa = load_split(data, "train", progress=False)
        for name, config in CONFIGS.items():
            train_nscl(qa, config, Path(folder) / f"{name}.pt", progress=False)
        out = Path(folder) / "cmd.pt"
        assert main(["train", "nscl", "--data", data, "--out", str(out), "--cache", str(Path(folder) / "cache"),
                     "--epochs", "1", "--curriculum", "0:0", "--whole-images", "--quiet"]) == 0
    finally:
        if dist.is_initialized():  # the command leaves the group at its end, as under torchrun
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def split(tiny_clevr) -> Path:
    return tiny_clevr(6, questions=6)


@pytest.fixture(scope="module")
def ddp_runs(split, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nscl_ddp_runs")
    spawn_ranks(_worker, str(split), str(folder), nprocs=WORLD)
    return folder


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_two_processes_take_the_single_process_step_on_the_global_batch(name, split, ddp_runs, tmp_path,
                                                                        monkeypatch) -> None:
    monkeypatch.setattr(torch.optim, "Adam", _sgd)
    qa = load_split(split, "train", progress=False)
    model, meta = train_nscl(qa, CONFIGS[name], tmp_path / "one.pt", progress=False)
    start, _ = train_nscl(qa, dataclasses.replace(CONFIGS[name], learning_rate=1e-30), tmp_path / "zero.pt",
                          progress=False)
    ckpt = torch.load(ddp_runs / f"{name}.pt", weights_only=True)
    moved = 0.0
    for key, value in model.state_dict().items():
        if value.is_floating_point():  # the step's change is the averaged (clipped) gradient
            torch.testing.assert_close(ckpt["model"][key], value, rtol=1e-4, atol=1e-5)
            moved = max(moved, float((value - start.state_dict()[key]).abs().max()))
    assert moved > 1e-3  # the step did move the weights
    assert meta["world_size"] == 1 and ckpt["metadata"]["world_size"] == WORLD
    assert ckpt["train_state"]["world_size"] == WORLD and ckpt["train_state"]["step"] == 1
    assert ckpt["metadata"]["history"][0]["loss"] == pytest.approx(meta["history"][0]["loss"], rel=1e-5)


def test_the_command_writes_its_cache_and_files_from_rank_0(ddp_runs) -> None:
    assert len(list((ddp_runs / "cache").glob("*.pt"))) == 1
    summary = json.loads((ddp_runs / "cmd.json").read_text())
    assert summary["epochs"] == 1 and len(summary["history"]) == 1
    assert torch.load(ddp_runs / "cmd.pt", weights_only=True)["metadata"]["world_size"] == WORLD


def test_device_flag_refuses_unknown_devices_and_cuda_without_it(split, tmp_path, capsys) -> None:
    qa = load_split(split, "train", limit_images=2, progress=False)
    with pytest.raises(ConfigError, match="unknown device"):
        train_nscl(qa, NSCLTrainConfig(epochs=1, device="tpu9"), tmp_path / "a.pt", progress=False)
    assert main(["train", "nscl", "--data", str(split), "--out", str(tmp_path / "b.pt"), "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown device" in err and len(err.splitlines()) == 1
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            train_nscl(qa, NSCLTrainConfig(epochs=1, device="cuda"), tmp_path / "c.pt", progress=False)
