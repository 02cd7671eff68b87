"""The proof of concept's arithmetic and the sequential table, from hand-built results."""

from __future__ import annotations

import numpy as np
import pytest

from fiber_endpoints import stats
from fiber_endpoints.bench import summary


def test_mean_diff_reproduces_the_proof_of_concept() -> None:
    # README of the proof of concept: FastAPI 0.261092 s, Fiber 0.086377 s -> "100.56%".
    assert stats.mean_diff_percent(0.086377, 0.261092) == pytest.approx(100.56, abs=0.005)
    assert stats.mean_diff_percent(1.0, 1.0) == 0.0
    assert stats.mean_diff_percent(2.0, 1.0) < 0  # slower than control: negative


def test_percentiles_match_numpy() -> None:
    values = np.random.default_rng(1).lognormal(size=1001)
    got = stats.percentiles(values, (50, 99))
    assert got == {"p50": np.percentile(values, 50), "p99": np.percentile(values, 99)}
    with pytest.raises(ValueError):
        stats.percentiles([])


def test_sequential_rows() -> None:
    doc = {
        "placement": {"client_cpus": [0], "server_cpus": [1]},
        "sequential": {
            "client": "raw",
            "samples": 2,
            "calls": 2,
            "rows": 100,
            "stacks": {
                "fastapi": {
                    "latencies_s": [[0.002, 0.002], [0.003, 0.003]],
                    "server_timing_ms": [[0.3, 1.0], [0.5, 2.0], [None, None], [0.4, 1.5]],
                    "client_cpu_per_call_s": 2e-5,
                },
                "fiber": {
                    "latencies_s": [[0.001, 0.001], [0.001, 0.001]],
                    "server_timing_ms": [],
                    "client_cpu_per_call_s": None,
                },
            },
        },
    }
    rows = {r.stack: r for r in summary.sequential_rows(doc["sequential"])}
    assert rows["fastapi"].mean_s == pytest.approx(0.005)
    assert rows["fastapi"].median_s == pytest.approx(0.005)
    assert rows["fastapi"].diff_vs_control_pct is None  # the control itself
    assert rows["fiber"].mean_s == pytest.approx(0.002)
    assert rows["fiber"].diff_vs_control_pct == pytest.approx((0.005 - 0.002) / 0.0035 * 100)
    assert rows["fastapi"].app_p50_ms == pytest.approx(1.5)
    assert rows["fastapi"].inference_p50_ms == pytest.approx(0.4)
    assert rows["fiber"].app_p50_ms is None
    assert rows["fastapi"].client_cpu_us == pytest.approx(20)
    table = summary.sequential_markdown(doc["sequential"], doc["placement"])
    assert "| fastapi | 0.005000 | 0.005000 | control |" in table
    assert "| fiber | 0.002000 | 0.002000 | 85.71% |" in table
    assert summary.DIFF_FORMULA in table


def test_the_floor_is_a_diagnostic_row_last() -> None:
    seq = {
        "client": "raw",
        "samples": 2,
        "calls": 2,
        "rows": 100,
        "diagnostic": ["loopback-floor"],
        "stacks": {
            "loopback-floor": {"latencies_s": [[1e-4, 1e-4], [1e-4, 1e-4]],
                               "server_timing_ms": [], "client_cpu_per_call_s": None},
            "fiber": {"latencies_s": [[0.001, 0.001], [0.001, 0.001]],
                      "server_timing_ms": [], "client_cpu_per_call_s": None},
            "fastapi": {"latencies_s": [[0.002, 0.002], [0.002, 0.002]],
                        "server_timing_ms": [], "client_cpu_per_call_s": None},
        },
    }  # fmt: skip
    rows = summary.sequential_rows(seq)
    assert [r.stack for r in rows] == ["fastapi", "fiber", "loopback-floor"]
    floor = rows[-1]
    assert floor.diagnostic and floor.ratio is None and floor.diff_vs_control_pct is None
    assert rows[1].ratio is not None and rows[1].ratio["ratio"] == pytest.approx(0.5)
    assert summary.diff_label(floor) == "floor (diagnostic)"
