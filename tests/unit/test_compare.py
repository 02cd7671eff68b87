"""``compare``: the change of each headline number between two hand-built runs, whether it is
outside the spread, and the exit code that gates a CI job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fiber_endpoints import cli
from fiber_endpoints.bench import schema
from fiber_endpoints.report import compare


def closed_step(rps: float) -> dict[str, Any]:
    return {"connections": 16, "duration_s": 1.0, "requests": int(rps), "ok": int(rps),
            "rps": rps, "rps_all_answers": rps, "errors": 0, "non2xx": 0, "latency_us": {},
            "hdr": "", "client_cpu_s": 0.1, "server": {"cpu_s_per_1k": 1 / rps}}  # fmt: skip


def run_doc(p50_s: float, peak: tuple[float, ...], jitter: float = 0.02) -> dict[str, Any]:
    rng = np.random.default_rng(int(p50_s * 1e6))
    samples = (p50_s * (1 + rng.uniform(-jitter, jitter, size=(20, 10)))).tolist()
    return {
        "schema": schema.SCHEMA,
        "created": "t",
        "command": [],
        "machine": {},
        "placement": {},
        "config": {},
        "model": {},
        "workload": {},
        "stacks": {},
        "verdict": {"ok": True, "problems": []},
        "sequential": {
            "client": "raw", "samples": 20, "calls": 10, "rows": 100, "keep_awake": False,
            "diagnostic": [],
            "stacks": {"fiber": {"latencies_s": samples, "server_timing_ms": [],
                                 "client_cpu_per_call_s": None}},
        },
        "load": {
            "schema": schema.LOAD_SCHEMA, "generators": {}, "placement": {}, "config": {},
            "ceiling": None,
            "runs": [
                {"round": r, "position": 0, "stack": "fiber", "error": None,
                 "closed": [closed_step(p)], "open": [],
                 "batch": [], "slo": {"slo_ms": 10.0, "max_rate": p / 2}}
                for r, p in enumerate(peak)
            ],
        },
    }  # fmt: skip


def test_a_slower_run_outside_the_spread_is_a_regression() -> None:
    changes = {c.metric: c for c in compare.compare(run_doc(100e-6, (1000, 1100, 1050)),
                                                    run_doc(150e-6, (600, 650, 620)))}  # fmt: skip
    seq = changes["seq_p50_us"]
    assert seq.a.low <= seq.a.value <= seq.a.high and seq.a.high - seq.a.low < 2  # µs
    assert seq.relative == pytest.approx(0.5, abs=0.03)
    assert seq.outside_spread and seq.regressed(0.10)
    peak = changes["peak_rps"]
    assert peak.a.value == 1050 and (peak.a.low, peak.a.high) == (1000, 1100)
    assert peak.worse_by == pytest.approx(1 - 620 / 1050)  # fewer req/s is worse
    assert peak.regressed(0.10) and changes["slo_rate"].regressed(0.10)
    assert changes["cpu_us_per_req"].regressed(0.10)  # more CPU per request is worse


def test_changes_inside_the_spread_or_under_the_threshold_are_not() -> None:
    noisy = compare.compare(run_doc(100e-6, (900, 1300)), run_doc(104e-6, (1000, 1200)))
    by = {c.metric: c for c in noisy}
    assert not by["peak_rps"].outside_spread  # [900, 1300] and [1000, 1200] overlap
    assert not any(c.regressed(0.10) for c in noisy)
    better = compare.compare(run_doc(150e-6, (600,)), run_doc(100e-6, (1000,)))
    assert all(c.worse_by < 0 and not c.regressed(0.0) for c in better)


def test_cli_exit_codes_gate_a_ci_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run_doc(100e-6, (1000, 1100, 1050))))
    b.write_text(json.dumps(run_doc(150e-6, (600, 650, 620))))
    assert cli.main(["compare", str(a), str(a)]) == 0
    assert cli.main(["bench", "compare", str(a), str(b)]) == 1
    assert "REGRESSION: fiber sequential p50 +49" in capsys.readouterr().err
    assert cli.main(["compare", str(a), str(b), "--max-regression", "90"]) == 0
    (tmp_path / "old.json").write_text(json.dumps({"schema": "fiber-endpoints/results/1"}))
    assert cli.main(["compare", str(a), str(tmp_path / "old.json")]) == 2


def test_what_b_did_not_measure_and_b_failing_are_regressions_too() -> None:
    a = run_doc(100e-6, (1000, 1100))
    b = run_doc(100e-6, (1000, 1100))
    b["sequential"]["stacks"] = {}  # fiber's sequential numbers are gone (failed parity)
    b["verdict"] = {"ok": False, "problems": ["fiber: parity failed, not timed"]}
    lost = compare.lost(a, b)
    assert "fiber: sequential p50 not measured in B" in lost
    assert "B failed: fiber: parity failed, not timed" in lost
    assert compare.lost(a, a) == []
