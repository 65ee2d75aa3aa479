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

With ``caller_works`` a process fan-out of N workers starts only N - 1 processes
and the calling process runs jobs too, between collecting the others' results; its
:meth:`ProcessFanout.start` starts the processes (and their set-up, such as loading
a model) ahead, so that their start-up overlaps the caller's own preparations.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol, TypeVar

from physics.errors import ConfigError

__all__ = [
    "Fanout",
    "SerialFanout",
    "ProcessFanout",
    "RayFanout",
    "make_fanout",
    "die_with_parent",
    "keep_freed_memory",
    "BACKENDS",
]

T = TypeVar("T")
R = TypeVar("R")


class Fanout(Protocol):
    """Runs ``fn`` over items, yielding results in input order.

    ``start`` readies the workers ahead of the first ``imap`` (each first runs
    ``setup(arg)``, where the backend has worker processes of its own); ``close``
    ends them.  Both may be skipped: ``imap`` starts what it needs.
    """

    workers: int

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...

    def start(self, setup: Callable[[T], object] | None = None, arg: T | None = None) -> None: ...

    def close(self) -> None: ...


class SerialFanout:
    """Runs every job in this process."""

    workers = 1

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)

    def start(self, setup: Callable[[T], object] | None = None, arg: T | None = None) -> None:
        """Nothing to start: the jobs run here."""

    def close(self) -> None:
        """Nothing to end."""


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees rather than hand it back to the system.

    glibc serves blocks above a threshold (at most 32 MB) by ``mmap`` and returns
    them at ``free``, and trims the top of its heap, so a job that allocates and
    frees tens of MB each time (the derenderer's activations on a 480x320 image)
    has the kernel fault in and zero every page anew: about 4,000 page faults and
    15% of the job's CPU time on this project's CLEVR perception, more when several
    processes fault at once.  This sets both thresholds out of reach (allocations
    stay in the heap, freed memory stays with the process for reuse; peak memory
    is unchanged).  For the rest of the process's life; results do not change.

    Returns:
        Whether it took effect (False where the C library is not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False


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


def _start_worker(parent: int, setup: Callable[[T], object] | None, arg: T | None) -> None:
    """Pool initializer: die with ``parent``, then run the fan-out's set-up, if any."""
    die_with_parent(parent)
    if setup is not None:
        setup(arg)


def _started() -> None:
    """A job that does nothing: submitted by :meth:`ProcessFanout.start` to launch the processes."""


class ProcessFanout:
    """A process pool; at most ``2 * workers`` jobs are in flight at once.

    Args:
        workers: Parallel jobs (``None``: one per CPU core).
        caller_works: The calling process is one of the ``workers``: ``workers - 1``
            processes are started, and while it iterates over :meth:`imap` the caller
            runs jobs too (the same ``fn``, in this process), whenever the results it
            must yield next are not back yet.  A thread of the caller keeps each
            process's two jobs in flight meanwhile.  Which process runs a job never
            changes its result, so the results are the same as without.
    """

    def __init__(self, workers: int | None = None, *, caller_works: bool = False) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.caller_works = caller_works
        self._pool: ProcessPoolExecutor | None = None

    @property
    def processes(self) -> int:
        """Worker processes this fan-out starts (none: the jobs run in the caller)."""
        if self.caller_works:
            return self.workers - 1
        return 0 if self.workers == 1 else self.workers

    def start(self, setup: Callable[[T], object] | None = None, arg: T | None = None) -> None:
        """Start the worker processes now, each running ``setup(arg)`` before its first job.

        ``setup`` must be a module-level function (it is sent to the processes).  The
        processes are launched from the calling thread, which must outlive them
        (:func:`die_with_parent`).  A second call does nothing.
        """
        if self._pool is not None or self.processes == 0:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.processes, initializer=_start_worker, initargs=(os.getpid(), setup, arg)
        )
        for _ in range(self.processes):  # a pool launches its processes on submission
            self._pool.submit(_started)

    def close(self) -> None:
        """End the worker processes (jobs not yet started are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessFanout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items``, results in input order.

        With ``caller_works`` the processes get their first jobs at this call, not at
        the first ``next``: what the caller does before iterating overlaps their work.
        """
        if self.processes == 0:
            return SerialFanout().imap(fn, items)
        if self.caller_works:
            self.start()
            assert self._pool is not None
            return _SharedRun(self._pool, fn, items, window=2 * self.processes)
        return self._imap_pool(fn, items)

    def _imap_pool(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        window = 2 * self.workers
        own = self._pool is None  # a pool of this call alone, ended with it
        if own:
            self.start()
        pool = self._pool
        assert pool is not None
        try:
            pending = []
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()
        finally:
            if own:
                self.close()


class _SharedRun(Iterator[R]):
    """One :meth:`ProcessFanout.imap` with ``caller_works``: the caller runs jobs beside the pool's.

    Jobs are claimed in input order, under a lock, by two parties: a feeder thread
    that keeps ``window`` jobs in flight in the pool, and the caller's ``__next__``,
    which runs the next unclaimed job itself whenever the result it must yield is
    not back.  Results wait in ``_done`` (by position) until their turn.
    """

    def __init__(self, pool: ProcessPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int) -> None:
        self._fn = fn
        self._items = iter(items)
        self._claimed = 0  # jobs handed out so far, by either party
        self._exhausted = False
        self._next = 0  # position of the result to yield next
        self._done: dict[int, Future[R] | tuple[R]] = {}
        self._lock = threading.Lock()  # guards the claims and _done
        self._arrived = threading.Condition(self._lock)
        self._feeding = True
        self._stop = False
        self._feeder = threading.Thread(target=self._feed, args=(pool, window), name="nesy-fanout-feeder", daemon=True)
        self._feeder.start()

    def _claim(self) -> tuple[int, T] | None:
        """The next job and its position, or None when every job is handed out (call under the lock)."""
        if self._exhausted or self._stop:
            return None
        try:
            item = next(self._items)
        except StopIteration:
            self._exhausted = True
            return None
        k = self._claimed
        self._claimed += 1
        return k, item

    def _feed(self, pool: ProcessPoolExecutor, window: int) -> None:
        inflight: dict[Future[R], int] = {}
        lost: list[int] = []  # claimed, not submitted: the pool refused it
        try:
            while True:
                while len(inflight) < window:
                    with self._lock:
                        job = self._claim()
                        if job is None:
                            break
                        lost.append(job[0])
                        inflight[pool.submit(self._fn, job[1])] = lost.pop()
                if not inflight:
                    return
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                with self._arrived:
                    for fut in finished:
                        self._done[inflight.pop(fut)] = fut
                    self._arrived.notify_all()
        except BaseException as exc:  # a broken or closed pool: hand the error to the caller, in order
            failed: Future[R] = Future()
            failed.set_exception(exc)
            with self._arrived:
                for k in [*inflight.values(), *lost]:
                    self._done.setdefault(k, failed)
                self._stop = True
        finally:
            with self._arrived:
                self._feeding = False
                self._arrived.notify_all()

    def __next__(self) -> R:
        while True:
            with self._arrived:
                if self._next in self._done:
                    got = self._done.pop(self._next)
                    self._next += 1
                    break
                job = self._claim()
                if job is None:
                    if not self._feeding and self._next not in self._done:
                        if self._next < self._claimed:  # lost with a broken pool
                            raise RuntimeError(f"fan-out: the result of job {self._next} never came back")
                        raise StopIteration
                    self._arrived.wait()
                    continue
            try:
                ran: Future[R] | tuple[R] = (self._fn(job[1]),)  # this process's turn: run the job here, unlocked
            except Exception as exc:  # raised at its turn, after the results before it, as serially
                ran = Future()
                ran.set_exception(exc)
                self._halt()
            except BaseException:  # an interrupt: at once
                self._halt()
                raise
            with self._arrived:
                self._done[job[0]] = ran
        if isinstance(got, tuple):
            return got[0]
        try:
            return got.result()
        except BaseException:
            self._halt()
            raise

    def _halt(self) -> None:
        """Hand out no more jobs (the caller stops at an error)."""
        with self._lock:
            self._stop = True


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

    def start(self, setup: Callable[[T], object] | None = None, arg: T | None = None) -> None:
        """Nothing to start ahead: Ray's workers are its own (``setup`` is not run)."""

    def close(self) -> None:
        """Nothing to end: the Ray instance stays for the rest of the process."""

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


def make_fanout(
    backend: str = "process", workers: int | None = None, address: str | None = None, *, caller_works: bool = False
) -> Fanout:
    """Build a fan-out backend by name (``serial``, ``process`` or ``ray``).

    Args:
        backend: One of :data:`BACKENDS`.
        workers: Parallel jobs (``None``: one per CPU core, or the Ray cluster's CPUs).
        address: The Ray cluster to join (``ray`` only).
        caller_works: ``process`` only: the caller is one of the workers (see
            :class:`ProcessFanout`); the other backends ignore it.

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
    if backend == "process":
        return ProcessFanout(workers, caller_works=caller_works)
    return factory(workers)
