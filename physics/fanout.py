"""One small fan-out interface for data generation and evaluation.

Jobs are pure functions of their argument (a seed, an index), so results are
identical whatever backend or worker count runs them.  ``imap`` yields results in
submission order, which is what makes parallel dataset builds byte-identical to
serial ones.

Backends: ``serial`` (in process, for tests and debugging), ``process`` (a
``concurrent.futures`` process pool, the default) and ``ray`` (optional extra;
``pip install nesy-physics[ray]``) for a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

from physics.errors import ConfigError

__all__ = ["Fanout", "SerialFanout", "ProcessFanout", "RayFanout", "make_fanout", "BACKENDS"]

T = TypeVar("T")
R = TypeVar("R")


class Fanout(Protocol):
    """Runs ``fn`` over items, yielding results in input order."""

    workers: int

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class SerialFanout:
    """Runs every job in this process."""

    workers = 1

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


class ProcessFanout:
    """A process pool; at most ``2 * workers`` jobs are in flight at once.

    Args:
        workers: Processes to start (``None``: one per CPU core).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        if self.workers == 1:
            yield from SerialFanout().imap(fn, items)
            return
        window = 2 * self.workers
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            pending = []
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()


class RayFanout:
    """Ray tasks on a running cluster (``ray.init()`` is called if needed)."""

    def __init__(self, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "fan-out backend 'ray' needs the optional extra: pip install 'nesy-physics[ray]'"
            ) from None
        if not ray.is_initialized():
            ray.init()
        self._ray = ray
        self.workers = workers or int(ray.available_resources().get("CPU", 1))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        remote = self._ray.remote(fn)
        window = 2 * self.workers
        pending = []
        for item in items:
            pending.append(remote.remote(item))
            if len(pending) >= window:
                yield self._ray.get(pending.pop(0))
        for ref in pending:
            yield self._ray.get(ref)


BACKENDS: dict[str, Callable[[int | None], Fanout]] = {
    "serial": lambda workers: SerialFanout(),
    "process": ProcessFanout,
    "ray": RayFanout,
}


def make_fanout(backend: str = "process", workers: int | None = None) -> Fanout:
    """Build a fan-out backend by name (``serial``, ``process`` or ``ray``)."""
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise ConfigError(
            f"unknown fan-out backend {backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    return factory(workers)
