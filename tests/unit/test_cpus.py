from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


# The rule shared with the Go stack (fiber/cpus.go): the same cases, read by fiber/cpus_test.go.
CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "fiber" / "testdata" / "cgroup_cpus.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_usable_cpus_rule_shared_with_go(case: dict[str, Any], tmp_path: Path) -> None:
    """A fake cgroup root (the real files' layout) and /proc/self/cgroup, per case."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for rel, content in case["files"].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    proc = tmp_path / "proc-self-cgroup"
    if case["proc_cgroup"] is not None:
        proc.write_text(case["proc_cgroup"])
    limits = (cpus.root_cgroup_limit(root), cpus.own_cgroup_limit(proc, root))
    assert cpus.cpus_within(case["affinity"], limits) == case["want"]
