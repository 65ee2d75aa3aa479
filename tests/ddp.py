"""Starting the 2-process (gloo) runs of the distributed-training tests."""

from __future__ import annotations

import socket
from collections.abc import Callable

import torch.multiprocessing as mp


def free_port() -> int:
    """A local TCP port free right now, for a process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(worker: Callable[..., None], *args: object, nprocs: int = 2) -> None:
    """Run ``worker(rank, port, *args)`` in ``nprocs`` processes, ``port`` a free local port for the group."""
    mp.spawn(worker, args=(free_port(), *args), nprocs=nprocs, join=True)
