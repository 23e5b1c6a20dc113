"""benchmarks/figures.py: stop_processes ends every child whatever state it is in, and never raises."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.figures import stop_processes, timed_rounds


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


def test_running_children_are_terminated_and_reaped() -> None:
    procs = [_child("import time; time.sleep(60)") for _ in range(2)]
    stop_processes(procs)
    assert all(p.returncode is not None for p in procs)


def test_a_child_that_ignores_terminate_is_killed_after_the_timeout() -> None:
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    polite = _child("import time; time.sleep(60)")
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"  # its handler is set
        stop_processes([stubborn, polite], timeout_s=0.5)
        assert stubborn.returncode == -9 and polite.returncode is not None
    finally:
        for p in (stubborn, polite):
            if p.poll() is None:
                p.kill()
                p.wait()
        assert stubborn.stdout is not None
        stubborn.stdout.close()


def test_already_ended_and_already_reaped_children_do_not_raise() -> None:
    ended = _child("pass")
    ended.wait()
    exited_unreaped = _child("pass")
    os.waitid(os.P_PID, exited_unreaped.pid, os.WEXITED | os.WNOWAIT)  # it has exited; Popen has not reaped it
    stop_processes([ended, exited_unreaped, ended])
    assert ended.returncode == 0 and exited_unreaped.returncode == 0


def test_an_empty_list_is_fine() -> None:
    stop_processes([])


def test_timed_rounds_gives_one_time_per_round_and_the_last_result() -> None:
    calls: list[int] = []
    times, last = timed_rounds(lambda: calls.append(1) or len(calls), 3)
    assert len(times) == 3 and all(t >= 0 for t in times) and last == 3
    assert timed_rounds(lambda: None, 0)[0] and len(calls) == 3  # at least one round
