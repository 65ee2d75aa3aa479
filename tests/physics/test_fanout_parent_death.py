"""Process-pool workers die with their parent, even one killed with SIGKILL (issue 13 probe).

Before the fix, ``kill -9`` of ``nesy data clevr --workers 2`` left both workers
waiting on the dead pool's queue for ever.  Linux only: processes are found in ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def _kill_parent_and_check_workers_end(argv: list[str], workers: int, start_timeout: float = 120.0) -> None:
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline and len(kids) < workers:
            assert proc.poll() is None, "the command ended before its workers started"
            time.sleep(0.2)
            kids = _children(proc.pid)
        assert len(kids) >= workers, f"saw {kids} as workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(_running(k) for k in kids):
            time.sleep(0.1)
        left = [k for k in kids if _running(k)]
        assert not left, f"workers {left} outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:  # a failing run must not leave its workers behind
            if _running(k):
                os.kill(k, signal.SIGKILL)


SLEEPER = textwrap.dedent(
    """
    import sys, time, types
    import physics.fanout as fanout
    if sys.argv[1] == "watcher":  # the portable fallback: as on a system without prctl
        fanout.sys = types.SimpleNamespace(platform="other")
    fan = fanout.ProcessFanout(3 if sys.argv[2] == "caller" else 2, caller_works=sys.argv[2] == "caller")
    for _ in fan.imap(time.sleep, [60.0] * 6):
        pass
    """
)


@pytest.mark.parametrize("how", ["prctl", "watcher"])
@pytest.mark.parametrize("pool", ["pool", "caller"])  # caller: the caller works too, beside 2 processes
def test_pool_workers_end_when_their_parent_is_killed(how, pool):
    _kill_parent_and_check_workers_end([sys.executable, "-c", SLEEPER, how, pool], workers=2, start_timeout=30.0)


def test_killing_data_clevr_with_two_workers_ends_the_workers(tmp_path):
    argv = [sys.executable, "-m", "benchmarks.cli", "data", "clevr", "--n", "200", "--workers", "2",
            "--questions-per-scene", "0", "--out", str(tmp_path / "clevr"), "--quiet"]
    _kill_parent_and_check_workers_end(argv, workers=2)
