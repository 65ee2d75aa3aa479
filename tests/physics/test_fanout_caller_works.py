"""ProcessFanout(caller_works=True): the caller is one of the workers, results stay in order."""

from __future__ import annotations

import os
import time

import pytest

from physics.fanout import ProcessFanout, SerialFanout, keep_freed_memory, make_fanout

_SETUP: object = None  # what the process's set-up received (None: it ran no set-up)


def _remember(arg: object) -> None:
    global _SETUP
    _SETUP = arg


def _where(x: int) -> tuple[int, object, int]:
    time.sleep(0.005)  # long enough for both processes to take jobs
    return os.getpid(), _SETUP, x * x


def _fail_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError("job 7 failed")
    return x


def test_the_caller_and_the_pool_both_run_jobs_and_results_keep_input_order():
    with ProcessFanout(2, caller_works=True) as fan:
        assert fan.processes == 1
        fan.start(_remember, "loaded")
        got = list(fan.imap(_where, range(60)))
    assert [v for _, _, v in got] == [x * x for x in range(60)]
    pids = {pid for pid, _, _ in got}
    assert os.getpid() in pids and len(pids) == 2, pids
    # the set-up ran in the started process before its first job, not in the caller
    assert {setup for pid, setup, _ in got if pid != os.getpid()} == {"loaded"}
    assert {setup for pid, setup, _ in got if pid == os.getpid()} == {None}


def test_results_equal_the_plain_pool_and_serial_ones():
    items = list(range(25))
    serial = list(SerialFanout().imap(abs, items))
    with make_fanout("process", 3, caller_works=True) as fan:
        assert isinstance(fan, ProcessFanout) and fan.processes == 2
        assert list(fan.imap(abs, items)) == serial
        assert list(fan.imap(abs, [])) == []  # a second run on the same processes
    assert list(ProcessFanout(2).imap(abs, items)) == serial


def test_one_worker_that_is_the_caller_starts_no_process():
    fan = ProcessFanout(1, caller_works=True)
    assert fan.processes == 0
    fan.start(_remember, "never")
    assert [pid for pid, _, _ in fan.imap(_where, range(3))] == [os.getpid()] * 3
    fan.close()


def test_an_error_in_a_job_reaches_the_caller_at_its_turn():
    with ProcessFanout(2, caller_works=True) as fan:
        it = fan.imap(_fail_on_seven, range(30))
        assert [next(it) for _ in range(7)] == list(range(7))
        with pytest.raises(ValueError, match="job 7 failed"):
            next(it)


def test_leaving_a_run_early_and_closing_does_not_wait_for_the_rest():
    fan = ProcessFanout(2, caller_works=True)
    it = fan.imap(time.sleep, [0.2] * 200)  # 40 s of jobs
    next(it)
    start = time.perf_counter()
    fan.close()
    assert time.perf_counter() - start < 5.0


def test_keep_freed_memory_is_harmless_to_call_again():
    first = keep_freed_memory()
    assert keep_freed_memory() == first
