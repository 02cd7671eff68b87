"""bench/reliability.py's pure parts and the report's reliability table, on hand-built results."""

from __future__ import annotations

from pathlib import Path

import pytest

from fiber_endpoints.bench import reliability
from fiber_endpoints.report import reliability_table


def test_recovery_time_is_from_the_load_end_to_the_last_slow_probe() -> None:
    probes = [(10.0, 50.0, True), (10.1, 30.0, True), (11.0, 1.0, True), (12.0, 1.0, True)]
    # the last slow probe ends at 10.1 + 0.03 s
    assert reliability.recovery_time(probes, 10.0, 5.0) == pytest.approx(0.13)
    assert reliability.recovery_time(probes, 10.0, 100.0) == 0.0
    failing_to_the_end = [*probes, (13.0, 1.0, False)]
    assert reliability.recovery_time(failing_to_the_end, 10.0, 5.0) is None
    assert reliability.recovery_time([], 10.0, 5.0) is None


def test_one_slow_probe_alone_is_not_a_slow_second() -> None:
    """100 probes a second for 5 s after the load: one lone slow probe (the CPU quota's next
    period) leaves the recovery where it was; a tenth and more of a second slow moves it."""
    fast = [(10.0 + i / 100, 1.0, True) for i in range(500)]
    assert reliability.recovery_time(fast, 10.0, 5.0) == 0.0
    lone = [(t, 40.0 if i == 350 else ms, ok) for i, (t, ms, ok) in enumerate(fast)]
    assert reliability.recovery_time(lone, 10.0, 5.0) == 0.0
    sustained = [(t, 40.0 if 300 <= i < 311 else ms, ok) for i, (t, ms, ok) in enumerate(fast)]
    assert reliability.recovery_time(sustained, 10.0, 5.0) == pytest.approx(3.1 + 0.04)
    partial_last = [*fast, (15.0, 40.0, True), (15.01, 1.0, True)]  # two probes past 5 s
    assert reliability.recovery_time(partial_last, 10.0, 5.0) == 0.0
    failed_once = [(t, ms, i != 350) for i, (t, ms, ok) in enumerate(fast)]
    assert reliability.recovery_time(failed_once, 10.0, 5.0) == pytest.approx(3.501)


def _case(name: str, held: bool) -> reliability.HostileCase:
    return reliability.HostileCase(
        case=name, held=held, ok=held, detail="d", statuses={"408": 2},
        bystander_requests=100, bystander_errors=0, bystander_p99_ms=4.0, alone_p99_ms=2.0,
        attack_cpu_s=0.1, wall_s=1.0,
    )  # fmt: skip


def test_merge_read_and_the_table(tmp_path: Path) -> None:
    reliability.merge(tmp_path, "fiber", {"fuzz_requests": 2200, "fuzz_failures": 0})
    reliability.merge(tmp_path, "fiber", {"hostile": [_case("slowloris", True)]})
    reliability.merge(tmp_path, "fastapi", {"hostile": [_case("slowloris", False)]})
    doc = reliability.read(tmp_path)
    assert doc is not None
    assert doc["stacks"]["fiber"]["fuzz_requests"] == 2200  # earlier parts kept
    text = "\n".join(reliability_table.reliability_section(doc))
    assert "| `fiber` | 2,200 | 0 | 1/1 | 2.0x |" in text
    assert "**not held**" in text


def test_validate_refuses_another_schema_and_incomplete_cases() -> None:
    with pytest.raises(ValueError):
        reliability.validate({"schema": "other", "machine": {}, "stacks": {}})
    bad = {"schema": reliability.SCHEMA, "machine": {}, "stacks": {"x": {"hostile": [{}]}}}
    with pytest.raises(ValueError):
        reliability.validate(bad)


def test_bench_soak_adds_the_soak_phase() -> None:
    from fiber_endpoints.bench import runner
    from fiber_endpoints.bench.context import BenchConfig
    from fiber_endpoints.cli import build_parser

    args = build_parser().parse_args(["bench", "--soak", "10", "--no-load"])
    assert args.soak == 10.0
    names = [p.name for p in runner.phases(BenchConfig(stacks=["fiber"], soak_minutes=10))]
    assert names[-1] == "soak"
    assert "soak" not in [p.name for p in runner.phases(BenchConfig(stacks=["fiber"]))]
