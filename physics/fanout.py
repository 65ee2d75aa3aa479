"""One small fan-out interface for data generation and evaluation.

Jobs are pure functions of their argument (a seed, an index), so results are
identical whatever backend or worker count runs them.  ``imap`` yields results in
submission order, which is what makes parallel dataset builds byte-identical to
serial ones.

Backends: ``serial`` (in process, for tests and debugging), ``process`` (a
``concurrent.futures`` process pool, the default) and ``ray`` (optional extra;
``pip install nesy-physics[ray]``) for a cluster: with ``address`` (``auto``
inside a cluster started with ``ray start --head``, or ``ray://HOST:10001``) it
joins that cluster, without one it starts a local Ray instance of ``workers``
CPUs (no dashboard).  A Ray task whose worker process dies is run again by Ray
(``max_retries``), and every builder skips items already written, so a killed
worker costs only its own item.

Process workers die with their parent: killed with ``kill -9``, a parent runs
no clean-up, and a pool's workers would otherwise wait on its queue for ever.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

from physics.errors import ConfigError

__all__ = ["Fanout", "SerialFanout", "ProcessFanout", "RayFanout", "make_fanout", "die_with_parent", "BACKENDS"]

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


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>: signal this process when its parent exits
PARENT_POLL_S = 0.5  # how often the portable watcher looks for a new parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _watch_parent(ppid: int) -> None:
    while os.getppid() == ppid:  # an orphan is re-parented (to init or a subreaper)
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this worker process end when the process that started it ends.

    On Linux the kernel sends SIGKILL the moment the worker's parent exits
    (``prctl(PR_SET_PDEATHSIG)``; with the ``forkserver`` start method that
    parent is the fork server, which itself exits with ``parent``); elsewhere a
    daemon thread checks every :data:`PARENT_POLL_S` seconds whether the worker
    was re-parented.  The pool initializer of :class:`ProcessFanout`.  Linux
    signals when the *thread* that forked the worker ends; a pool forks its
    workers in the thread that first submits, the one iterating ``imap``, which
    outlives the pool.

    Args:
        parent: The pid of the process that made the pool.
    """
    ppid = os.getppid()
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not _alive(parent) or os.getppid() != ppid:  # it died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(ppid,), name="nesy-parent-watch", daemon=True).start()


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
        with ProcessPoolExecutor(
            max_workers=self.workers, initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            pending = []
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()


RAY_TASK_RETRIES = 3  # a task whose worker process died is run again this many times


class RayFanout:
    """Ray tasks, on a cluster (``address``) or on a local instance started here.

    Args:
        workers: Tasks in flight are ``2 * workers`` (``None``: the cluster's CPUs);
            a local instance gets this many CPUs.
        address: A running cluster (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``);
            ``None``: ``RAY_ADDRESS`` if set, else an instance already initialised in this
            process, else a new local one.

    Raises:
        ConfigError: Ray is not installed, or no cluster answers at ``address``.
    """

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "fan-out backend 'ray' needs the optional extra: pip install 'nesy-physics[ray]'"
            ) from None
        address = address or os.environ.get("RAY_ADDRESS")  # Ray's own variable names a cluster too
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"--address {address}: cannot join a Ray cluster there ({first})") from None
        self._ray = ray
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        remote = self._ray.remote(max_retries=RAY_TASK_RETRIES)(fn)
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


def make_fanout(backend: str = "process", workers: int | None = None, address: str | None = None) -> Fanout:
    """Build a fan-out backend by name (``serial``, ``process`` or ``ray``).

    Args:
        backend: One of :data:`BACKENDS`.
        workers: Parallel jobs (``None``: one per CPU core, or the Ray cluster's CPUs).
        address: The Ray cluster to join (``ray`` only).

    Raises:
        ConfigError: an unknown backend, or an address for a backend other than ``ray``.
    """
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise ConfigError(
            f"unknown fan-out backend {backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    if address and backend != "ray":
        raise ConfigError(f"--address {address} names a Ray cluster; it needs --backend ray (got {backend!r})")
    if backend == "ray":
        return RayFanout(workers, address)
    return factory(workers)
