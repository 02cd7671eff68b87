"""CPU and memory accounting of a process tree, against a tree doing known work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fiber_endpoints.bench import procstat

MIB = 2**20

# The child waits for a line, then forks a grandchild that burns 0.3 s of CPU (by its own CPU
# clock, so a busy machine does not change the amount), holds ~100 MiB of touched memory and
# exits; the child waits for it, says "done" and idles until the next line.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.stdin.readline()
    pid = os.fork()
    if pid == 0:
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
        block = b"\\x01" * (100 * 2**20)  # written, so resident
        time.sleep(0.6)
        os._exit(0 if block else 1)
    os.waitpid(pid, 0)
    print("done", flush=True)
    sys.stdin.readline()
    """
)


def test_steps_of_known_work() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with procstat.TreeMonitor(proc.pid, interval=0.02) as mon:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
        busy = mon.stop()
        # The same tree idling: a step's peak is its own, not the processes' lifetime peak.
        with procstat.TreeMonitor(proc.pid, interval=0.02) as idle_mon:
            pass
        idle = idle_mon.stop()
    finally:
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        proc.wait(10)
    # The grandchild had exited and been waited for when the step ended: its 0.3 s count only
    # through the child's children_* times. Plus allocating 100 MiB and the fork: under 1 s.
    assert 0.29 <= busy.cpu_s <= 0.9, busy
    assert busy.peak_rss_bytes >= 100 * MIB, busy
    assert busy.processes == 2, busy  # the sampler saw the grandchild
    assert busy.wall_s >= 0.9, busy  # 0.3 s of CPU + 0.6 s asleep
    assert idle.cpu_s < 0.1 and idle.peak_rss_bytes < 50 * MIB and idle.processes == 1, idle


def test_to_json() -> None:
    usage = procstat.Usage(cpu_s=0.5, wall_s=2.0, peak_rss_bytes=3 * MIB, processes=2)
    assert usage.to_json() == {
        "cpu_s": 0.5,
        "wall_s": 2.0,
        "cpu_util": 0.25,
        "peak_rss_bytes": 3 * MIB,
        "processes": 2,
    }
    assert usage.to_json(requests=2000)["cpu_s_per_1k"] == pytest.approx(0.25)
    assert usage.to_json(requests=0)["cpu_s_per_1k"] is None


def test_this_process_and_a_missing_one() -> None:
    me = procstat.tree(os.getpid())[0]
    assert me.pid == os.getpid()
    cpu, rss = procstat.measure([me])
    assert cpu > 0 and rss > 10 * MIB
    assert procstat.tree(2**22 + 12345) == []  # above the kernel's pid_max limit
    with procstat.TreeMonitor(2**22 + 12345) as mon:
        pass
    assert (mon.stop().cpu_s, mon.stop().peak_rss_bytes, mon.stop().processes) == (0.0, 0, 0)
