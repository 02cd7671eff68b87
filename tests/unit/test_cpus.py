from __future__ import annotations

from pathlib import Path

from fiber_endpoints import cpus


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "cpu.max", tmp_path / "q", tmp_path / "p") == 1.5


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "cpu.max", tmp_path / "q", tmp_path / "p") is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "q").write_text("50000\n")
    (tmp_path / "p").write_text("100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "none", tmp_path / "q", tmp_path / "p") == 0.5


def test_usable_cpus_follows_affinity() -> None:
    assert 1 <= cpus.usable_cpus() <= len(cpus.affinity())
