"""What a server costs, read from the OS: CPU seconds and resident memory of its process tree.

``/proc/<pid>/stat`` gives each process's user + system time (and that of its waited-for
children); ``/proc/<pid>/status`` gives ``VmRSS`` (now) and ``VmHWM`` (the process's own peak).
A :class:`TreeMonitor` takes the tree's CPU time before and after a step and samples the tree's
summed RSS in a thread while the step runs, so each step gets its own CPU and peak-RSS figures
(``VmHWM`` is only a lifetime peak, recorded beside them).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads' children)."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of one process, in seconds (0 if it is gone)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    # fields[0] is state (field 3); utime is field 14 -> index 11.
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in tree(pid))


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in KiB; 0 if gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    return sum(status_kib(p, "VmRSS") for p in tree(pid)) * 1024


def tree_hwm_bytes(pid: int) -> int:
    """Sum of each process's own lifetime peak (an upper bound of the tree's peak)."""
    return sum(status_kib(p, "VmHWM") for p in tree(pid)) * 1024


@dataclass
class Usage:
    """One step's cost: CPU seconds of the whole tree, wall time, peak RSS."""

    cpu_s: float
    wall_s: float
    peak_rss_bytes: int
    hwm_bytes: int
    processes: int

    def per_1k(self, requests: int) -> float | None:
        return self.cpu_s / requests * 1000.0 if requests else None

    def to_json(self, requests: int | None = None) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "cpu_s": round(self.cpu_s, 4),
            "wall_s": round(self.wall_s, 4),
            "cpu_util": round(self.cpu_s / self.wall_s, 4) if self.wall_s else None,
            "peak_rss_bytes": self.peak_rss_bytes,
            "vm_hwm_bytes": self.hwm_bytes,
            "processes": self.processes,
        }
        if requests is not None:
            out["cpu_s_per_1k"] = round(self.cpu_s / requests * 1000.0, 6) if requests else None
        return out


class TreeMonitor:
    """``with TreeMonitor(pid) as m: ...`` then ``m.usage``. Samples RSS every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.usage: Usage | None = None
        self._stop = threading.Event()
        self._peak = 0
        self._procs = 1
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            pids = tree(self.pid)
            self._procs = max(self._procs, len(pids))
            self._peak = max(self._peak, sum(status_kib(p, "VmRSS") for p in pids) * 1024)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeMonitor:
        self._cpu0 = tree_cpu_seconds(self.pid)
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> Usage:
        if self.usage is None:
            cpu1 = tree_cpu_seconds(self.pid)
            wall = time.monotonic() - self._t0
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, tree_rss_bytes(self.pid))
            self.usage = Usage(
                cpu_s=max(0.0, cpu1 - self._cpu0),
                wall_s=wall,
                peak_rss_bytes=self._peak,
                hwm_bytes=tree_hwm_bytes(self.pid),
                processes=self._procs,
            )
        return self.usage
