"""Training on several processes: ``torchrun`` with DistributedDataParallel.

Under ``torchrun --nproc_per_node N`` every process runs the same command;
torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.  A trainer calls
:func:`init_distributed` with the device it resolved: it starts the process
group (``nccl`` for CUDA devices, ``gloo`` otherwise -- chosen by the device,
never assumed) and gives each process of a GPU machine its own GPU
(``cuda:LOCAL_RANK``).  Without those variables (a plain ``python`` or ``nesy``
run) it does nothing and the run is the single-process run, bit for bit.

The data split follows :class:`torch.utils.data.DistributedSampler`'s idea
without its padding: every process draws the same shuffled order of each
*global* batch (``batch_size`` stays the global batch size) and trains on its
own share, :func:`rank_share`; :class:`~physics.training.TrainLoop` weights each
share's loss so that DDP's gradient average equals the gradient of the whole
global batch, and only rank 0 writes checkpoints and logs.

>>> world_info().size  # outside torchrun
1
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from physics.errors import ConfigError

__all__ = [
    "WorldInfo",
    "world_info",
    "init_distributed",
    "shutdown_distributed",
    "rank_share",
    "backend_for",
    "GlobalBatchNorm2d",
    "sum_over_ranks",
    "global_batch_norm",
]

T = TypeVar("T")


@dataclass(frozen=True)
class WorldInfo:
    """Where this process stands in a distributed run.

    Attributes:
        rank: This process's rank (0 .. size - 1).
        size: Number of processes (1: not distributed).
        local_rank: Rank on this machine (picks the GPU).
        backend: The process group's backend (``gloo``, ``nccl``), ``""`` when not distributed.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def world_info() -> WorldInfo:
    """The running process group's ranks (``WorldInfo()`` when none is running)."""
    if not (dist.is_available() and dist.is_initialized()):
        return WorldInfo()
    return WorldInfo(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        backend=str(dist.get_backend()),
    )


def backend_for(device: torch.device) -> str:
    """``nccl`` for a CUDA device, ``gloo`` for anything else."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group torchrun describes; returns the device this process trains on.

    Does nothing (and returns ``device``) when ``WORLD_SIZE`` is unset or 1, or when
    a process group is already running (a test that started its own).

    Args:
        device: The device the run asked for (``cuda`` means: one GPU per process).

    Raises:
        ConfigError: fewer GPUs on this machine than processes on it.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return _device_of(device, world_info().local_rank)
    if size <= 1:
        return device
    if not dist.is_available():
        raise ConfigError(f"WORLD_SIZE={size} asks for a distributed run, but this torch has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device_of(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend_for(device))
    return device


def _device_of(device: torch.device, local_rank: int) -> torch.device:
    """One GPU per process on a machine: ``cuda`` becomes ``cuda:LOCAL_RANK``; other devices stay."""
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"process with LOCAL_RANK {local_rank} needs its own GPU, but this machine has {count}; "
            "start at most that many processes per machine (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def shutdown_distributed() -> None:
    """Leave the process group, if one is running (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_share(items: Sequence[T], world: WorldInfo) -> list[T]:
    """This rank's share of one global batch: a contiguous slice, sizes differing by at most one.

    Every rank gets at least one item when ``len(items) >= world.size``; callers skip a
    batch smaller than the world (it happens only as the last, short batch of an epoch).

    >>> rank_share(list(range(5)), WorldInfo(rank=1, size=2))
    [3, 4]
    """
    base, rest = divmod(len(items), world.size)
    start = world.rank * base + min(world.rank, rest)
    return list(items[start:start + base + (world.rank < rest)])


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """A copy of ``value`` (counts, sums: no gradient) added up over the processes of the group, if any."""
    total = value.detach().clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
    return total


class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over the processes; its gradient is summed back (each share feeds every output)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = x.detach().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every process's share of the global batch.

    The per-channel sums are added up over the processes with a differentiable
    all-reduce, so gradients flow through the global mean and variance, on gloo
    as on nccl (:class:`torch.nn.SyncBatchNorm` is GPU-only).  Parameters,
    buffers and evaluation are BatchNorm2d's, so checkpoints load into either.
    Outside a process group it is plain BatchNorm2d.  Every process must call it
    once per step (each share must hold at least one item).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().forward(x)
        dims = (0, 2, 3)
        count = x.new_tensor([x.numel() // x.shape[1]])
        total = _SumOverRanks.apply(torch.cat([x.sum(dims), count]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = x - mean.reshape(1, -1, 1, 1)
        var = _SumOverRanks.apply((centred * centred).sum(dims)) / n
        out = centred / torch.sqrt(var.reshape(1, -1, 1, 1) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(float(n) - 1, 1.0)), alpha=m)
        return out


def global_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """Make every BatchNorm2d of ``model`` a :class:`GlobalBatchNorm2d` (same weights and buffers); returns it."""
    for module in model.modules():
        if type(module) is torch.nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
    return model
