"""How many CPUs this process may really use: affinity and a cgroup CPU quota, not ``cpu_count``.

A predictor with more threads than usable CPUs makes its threads wait for each other's time
slice (measured here: 0.27 ms -> 8 ms per call), so every stack sizes its threads with this.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_V2_CPU_MAX = CGROUP_ROOT / "cpu.max"
CGROUP_V1_QUOTA = CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us"
CGROUP_V1_PERIOD = CGROUP_ROOT / "cpu" / "cpu.cfs_period_us"


def cgroup_cpu_limit(
    cpu_max: Path = CGROUP_V2_CPU_MAX,
    v1_quota: Path = CGROUP_V1_QUOTA,
    v1_period: Path = CGROUP_V1_PERIOD,
) -> float | None:
    """The container's CPU quota in CPUs, or None when there is none."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int(v1_quota.read_text())
        if q > 0:
            return q / int(v1_period.read_text())
    except (OSError, ValueError):
        pass
    return None


def root_cgroup_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The quota of the cgroup mounted at ``root``: a container's own, under its cgroup
    namespace (v2 ``cpu.max``, else v1 ``cpu/cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)."""
    v1 = root / "cpu"
    return cgroup_cpu_limit(root / "cpu.max", v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us")


def own_cgroup_limit(
    proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT
) -> float | None:
    """The quota of this process's own cgroup when it is not the root one: a group made on a
    host without a cgroup namespace (the overload test's CPU cap, systemd slices), where the
    root files above say nothing. Go reads the same since 1.25."""
    none = Path("/nonexistent")
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        path = path.strip("/")
        if not path:
            continue
        if controllers == "":  # v2
            limit = cgroup_cpu_limit(root / path / "cpu.max", none, none)
        elif "cpu" in controllers.split(","):  # v1
            base = root / "cpu" / path
            limit = cgroup_cpu_limit(none, base / "cpu.cfs_quota_us", base / "cpu.cfs_period_us")
        else:
            continue
        if limit is not None:
            return limit
    return None


def affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin_on_exec(cpus: Iterable[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` placing a child on ``cpus`` before it ``exec``s, so its thread pools are
    sized for them from the start (None: leave it where it is)."""
    pin = set(cpus or ())
    if not pin:
        return None
    return lambda: os.sched_setaffinity(0, pin)


def cpus_within(affinity_count: int, limits: Iterable[float | None]) -> int:
    """The one rule: min(affinity, max(1, ceil(quota))) over every quota found, at least 1.
    fiber/cpus.go mirrors it for the Go stack (Go's own GOMAXPROCS never goes below 2);
    fiber/testdata/cgroup_cpus.json pins both, read by tests/unit/test_cpus.py and
    fiber/cpus_test.go."""
    n = affinity_count
    for limit in limits:
        if limit is not None:
            n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs this process can use at once: its affinity within its cgroups' quotas."""
    limits = (root_cgroup_limit(root), own_cgroup_limit(proc_cgroup, root))
    return cpus_within(len(affinity()), limits)
