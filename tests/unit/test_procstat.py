"""CPU and memory accounting from /proc, against a process tree doing known work."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fiber_endpoints.bench import procstat

# The child waits for a line, then forks a grandchild that burns 0.3 s of CPU (by its own CPU
# clock, so a busy machine does not change the amount) and holds ~100 MiB of touched memory.
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


def test_tree_cpu_and_peak_rss_of_known_work() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with procstat.TreeMonitor(proc.pid, interval=0.02) as mon:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
        usage = mon.stop()
    finally:
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        proc.wait(10)
    # 0.3 s burnt + allocating 100 MiB + fork: a little more than 0.3 s, well under 1 s.
    assert 0.29 <= usage.cpu_s <= 0.9, usage
    assert usage.peak_rss_bytes >= 100 * 2**20, usage
    assert usage.processes == 2  # the grandchild was seen by the sampler
    assert usage.per_1k(1000) == pytest.approx(usage.cpu_s)
    report = usage.to_json(requests=2000)
    assert report["cpu_s_per_1k"] == pytest.approx(usage.cpu_s / 2, abs=1e-3)


def test_tree_and_cpu_of_this_process() -> None:
    import os

    assert procstat.tree(os.getpid())[0] == os.getpid()
    assert procstat.cpu_seconds(os.getpid()) > 0
    assert procstat.status_kib(os.getpid(), "VmRSS") > 0
    assert procstat.cpu_seconds(2**22 + 12345) == 0.0  # no such process
