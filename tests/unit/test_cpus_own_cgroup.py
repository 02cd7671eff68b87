"""cpus.own_cgroup_limit reads the quota of the process's own cgroup from /proc/self/cgroup."""

from __future__ import annotations

from pathlib import Path

from fiber_endpoints import cpus


def test_root_cgroup_has_no_own_limit(tmp_path: Path) -> None:
    f = tmp_path / "cgroup"
    f.write_text("0::/\n1:cpu:/\n")
    assert cpus.own_cgroup_limit(f) is None


def test_unreadable_file_is_no_limit(tmp_path: Path) -> None:
    assert cpus.own_cgroup_limit(tmp_path / "missing") is None
