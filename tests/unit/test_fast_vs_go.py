"""Issue 14's section of the report from hand-built round records: which step each goal reads
(64 connections, the 80 % open-loop rate), ratios paired by round, and the verdicts' direction."""

from __future__ import annotations

from typing import Any

from fiber_endpoints import stats
from fiber_endpoints.report.fast_vs_go import fast_vs_go_section


def _step(p99_us: float, **fields: Any) -> dict[str, Any]:
    h = stats.histogram_from_counts([(p99_us, 100)])
    return {"errors": 0, "non2xx": 0, "latency_us": stats.histogram_summary(h),
            "hdr": stats.encode_histogram(h), **fields}  # fmt: skip


def _run(stack: str, r: int, peak: float, cpu_ms: float, p99_64: float,
         p99_open: list[float]) -> dict[str, Any]:  # fmt: skip
    closed = [
        _step(500.0, connections=16, rps=peak * 0.9, server={"cpu_s_per_1k": cpu_ms * 1.1}),
        _step(p99_64, connections=64, rps=peak, server={"cpu_s_per_1k": cpu_ms}),
    ]
    opened = [_step(p, rate=1000.0 * (i + 1), achieved_rps=1000.0 * (i + 1), scheduled=100,
                    unsent=0, requests=100, service_hdr="")
              for i, p in enumerate(p99_open)]  # fmt: skip
    return {"round": r, "position": 0, "stack": stack, "error": None, "closed": closed,
            "open": opened, "batch": [], "slo": None}  # fmt: skip


def _doc(
    py_peaks: list[float], go_peaks: list[float], seq_us: tuple[float, float]
) -> dict[str, Any]:
    runs = []
    for r, (a, b) in enumerate(zip(py_peaks, go_peaks, strict=True)):
        # The 80 % step is the second of the plan: 2,000 µs against 4,000 (Python half of Go).
        runs.append(_run("asgi-msgspec", r, a, 0.030, 1_000.0, [9_000.0, 2_000.0, 50_000.0]))
        runs.append(_run("fiber", r, b, 0.045, 3_000.0, [1_000.0, 4_000.0, 100.0]))
    seq = {"stacks": {"asgi-msgspec": {"latencies_s": [[seq_us[0] * 1e-6] * 5]},
                      "fiber": {"latencies_s": [[seq_us[1] * 1e-6] * 5]}}}  # fmt: skip
    config = {"rates": [], "rate_fractions": [0.5, 0.8, 0.95]}
    return {"load": {"runs": runs, "config": config}, "sequential": seq}


def _goal(lines: list[str], measure: str) -> list[str]:
    row = next(line for line in lines if line.startswith(f"| {measure}"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_each_goal_reads_its_step_and_pairs_rounds() -> None:
    lines = fast_vs_go_section(_doc([12_000.0, 9_000.0], [10_000.0, 10_000.0], (120.0, 130.0)))
    peak = _goal(lines, "closed-loop peak")
    assert peak[2] == "1.05 (rounds 0.90-1.20)" and peak[3] == "met"  # median 10,500 / 10,000
    assert _goal(lines, "CPU µs")[2:] == ["0.67 (rounds 0.67-0.67)", "met"]
    assert _goal(lines, "p99 at 64")[2:] == ["0.33 (1.00 / 3.00 ms)", "met"]
    # The 80 % step (2,000 against 4,000 µs), not the 50 % or 95 % one.
    assert _goal(lines, "p99 in open loop")[2:] == ["0.50 (2.00 / 4.00 ms)", "met"]
    assert _goal(lines, "sequential p50")[2:] == ["0.92 (120 / 130 µs)", "met"]
    assert sum("| `asgi-msgspec` |" in line for line in lines) == 2 + 3  # 2 closed, 3 open steps


def test_a_slower_python_stack_misses() -> None:
    lines = fast_vs_go_section(_doc([8_000.0], [10_000.0], (150.0, 130.0)))
    assert _goal(lines, "closed-loop peak")[3] == "**missed**"
    assert _goal(lines, "sequential p50")[3] == "**missed**"


def test_no_section_without_both_fast_stacks() -> None:
    doc = _doc([1.0], [1.0], (1.0, 1.0))
    doc["load"]["runs"] = [r for r in doc["load"]["runs"] if r["stack"] == "fiber"]
    assert fast_vs_go_section(doc) == []


def test_a_generator_bound_open_step_is_said_so() -> None:
    """vegeta near its own ceiling at the goal's rate: the tail is partly the generator's."""
    doc = _doc([12_000.0], [10_000.0], (120.0, 130.0))
    doc["load"]["ceiling"] = {"closed_rps": 100_000.0, "open_rps": 2_500.0}  # 80 % step: 2,000
    cell = _goal(fast_vs_go_section(doc), "p99 in open loop")[2]
    assert "generator-bound for `asgi-msgspec`, `fiber`" in cell
    doc["load"]["ceiling"]["open_rps"] = 100_000.0
    assert "generator-bound" not in _goal(fast_vs_go_section(doc), "p99 in open loop")[2]
