"""``nesy train derender`` under DistributedDataParallel: 2 CPU processes (gloo) against 1.

One ``torch.multiprocessing.spawn`` of two ranks trains both networks for one
step on one global batch (an odd number of images and of crops, so the shares
differ in size), with every augmentation on; the parent trains the same in one
process and compares the weights, the logged losses and the checkpoints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from benchmarks.cli import main
from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
from perception.derender.arrays import attribute_arrays, proposal_arrays
from perception.derender.attributes import AttributeConfig
from perception.derender.data import load_derender_folder
from perception.derender.proposals import ProposalConfig
from perception.derender.trainers import train_attribute_net, train_proposal_net
from perception.derender.training import DerenderTrainConfig, train_derenderer
from physics.errors import ConfigError
from physics.training.distributed import world_info
from tests.ddp import spawn_ranks

WORLD = 2
PCFG = ProposalConfig(input_size=(32, 48), width=8)
ACFG = AttributeConfig(crop_size=16, width=8)


def _train_both(arrays: dict, out: Path) -> dict[str, dict]:
    """One epoch of one global batch for each network, every augmentation on."""
    images, masks = arrays["images"], arrays["masks"]
    crops = {k: v for k, v in arrays.items() if k not in ("images", "masks")}
    pnet, phist = train_proposal_net(images, masks, PCFG, epochs=1, batch_size=len(images), lr=2e-3, seed=4,
                                     out=out, offset_balance=0.5, look=True, progress=False)
    anet, ahist = train_attribute_net(crops, ACFG, epochs=1, batch_size=len(crops["crops"]), lr=2e-3, seed=4,
                                      out=out, augment=True, look=True, progress=False)
    # the loop zeroes gradients before each step, so the last step's stay: here the only step's
    grads = {f"{name}_grads": {k: p.grad.clone() for k, p in net.named_parameters()}
             for name, net in (("proposal", pnet), ("attribute", anet))}
    return {"proposal": pnet.state_dict(), "attribute": anet.state_dict(), "history": phist + ahist, **grads}


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        assert world_info().size == WORLD
        arrays = torch.load(Path(folder) / "arrays.pt", weights_only=True)
        torch.save(_train_both(arrays, Path(folder) / "ddp"), Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("derender_ddp")
    torch.set_num_threads(1)
    build_clevr(ClevrDataConfig(n=5, out=str(folder / "data"), seed=3, questions_per_scene=0, width=96, height=64,
                                min_pixels=10, backend="serial"), progress=False)
    samples = load_derender_folder(folder / "data")
    images, masks = proposal_arrays(samples, PCFG, progress=False)
    crops = attribute_arrays(samples, ACFG, PCFG, progress=False)
    assert len(images) % WORLD and len(crops["crops"]) >= WORLD
    torch.save({"images": images, "masks": masks, **crops}, folder / "arrays.pt")
    spawn_ranks(_worker, str(folder), nprocs=WORLD)
    return folder


def test_two_process_step_of_both_networks_equals_the_global_batch_step(runs: Path) -> None:
    arrays = torch.load(runs / "arrays.pt", weights_only=True)
    single = _train_both(arrays, runs / "single")
    for rank in range(WORLD):
        got = torch.load(runs / f"rank{rank}.pt", weights_only=True)
        for net in ("proposal", "attribute"):
            for key, value in single[f"{net}_grads"].items():
                scale = float(value.abs().max())
                torch.testing.assert_close(got[f"{net}_grads"][key], value, rtol=1e-4, atol=1e-5 * scale,
                                           msg=f"{net} gradient {key}")
            # Adam's first step is lr * g / (|g| + eps): a gradient near eps may move its weight
            # by a little of lr (2e-3) on rounding alone
            for key, value in single[net].items():
                torch.testing.assert_close(got[net][key], value, rtol=1e-5, atol=1e-4, msg=f"{net} {key}")
        for mine, ref in zip(got["history"], single["history"], strict=True):
            for key in ("loss", "train_accuracy", "heatmap", "offsets"):
                if key in ref:
                    assert mine[key] == pytest.approx(ref[key], rel=1e-5), key


def test_rank_zero_alone_writes_and_checkpoints_record_world_size(runs: Path) -> None:
    for name in ("proposal", "attribute"):
        state = torch.load(runs / "ddp" / f"{name}_train.pt", weights_only=True)["train_state"]
        assert state["world_size"] == WORLD
    lines = [json.loads(s) for s in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["proposal", "attribute"]  # one line per epoch, not one per rank


def test_device_flag_refuses_unknown_devices_and_missing_cuda(tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        train_derenderer(DerenderTrainConfig(data=str(tmp_path / "none"), out=str(tmp_path / "o"), device="tpu"))
    code = main(["train", "derender", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                 "--device", "tpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown device" in err and len(err.splitlines()) == 1
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            train_derenderer(DerenderTrainConfig(data=str(tmp_path / "none"), out=str(tmp_path / "o"),
                                                 device="cuda"))
