"""What a server costs, read from the OS with psutil: CPU seconds and resident memory of its
process tree.

A :class:`TreeMonitor` takes the tree's CPU time (user + system, plus that of children it has
already waited for) before and after a step, and samples the tree's summed RSS in a thread while
the step runs, so each step gets its own CPU and peak-RSS figures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

# psutil is imported where it is used: it is in the `bench` extra, and `fiber-endpoints serve`
# (which the serving image runs with the base dependencies only) imports this module via the CLI.


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its descendants alive now; empty when ``pid`` is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def measure(procs: list[psutil.Process]) -> tuple[float, int]:
    """CPU seconds and RSS bytes summed over ``procs``; a process gone meanwhile counts 0."""
    import psutil

    cpu, rss = 0.0, 0
    for proc in procs:
        try:
            with proc.oneshot():
                times, memory = proc.cpu_times(), proc.memory_info()
        except psutil.Error:
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
    return cpu, rss


@dataclass
class Usage:
    """One step's cost: CPU seconds of the whole tree, wall time, peak RSS."""

    cpu_s: float
    wall_s: float
    peak_rss_bytes: int
    processes: int  # the most seen at once

    def per_1k(self, requests: int) -> float | None:
        return self.cpu_s / requests * 1000.0 if requests else None

    def to_json(self, requests: int | None = None) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "cpu_s": round(self.cpu_s, 4),
            "wall_s": round(self.wall_s, 4),
            "cpu_util": round(self.cpu_s / self.wall_s, 4) if self.wall_s else None,
            "peak_rss_bytes": self.peak_rss_bytes,
            "processes": self.processes,
        }
        if requests is not None:
            per_1k = self.per_1k(requests)
            out["cpu_s_per_1k"] = round(per_1k, 6) if per_1k is not None else None
        return out


class TreeMonitor:
    """``with TreeMonitor(pid) as m: ...`` then ``m.usage``. Samples RSS every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.usage: Usage | None = None
        self._stop = threading.Event()
        self._peak = 0
        self._procs = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            procs = tree(self.pid)
            self._procs = max(self._procs, len(procs))
            self._peak = max(self._peak, measure(procs)[1])
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeMonitor:
        self._cpu0 = measure(tree(self.pid))[0]
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
            cpu1, rss1 = measure(tree(self.pid))
            wall = time.monotonic() - self._t0
            self._stop.set()
            self._thread.join()
            self.usage = Usage(
                cpu_s=max(0.0, cpu1 - self._cpu0),
                wall_s=wall,
                peak_rss_bytes=max(self._peak, rss1),
                processes=self._procs,
            )
        return self.usage
