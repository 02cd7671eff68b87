"""A short run of every load mode against the real stacks (fastapi, and fiber when built), then
the report from the results alone. A few seconds per stack; needs wrk and vegeta (FAILS without)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fiber_endpoints import model
from fiber_endpoints.bench import load
from fiber_endpoints.report import command
from fiber_endpoints.stacks import fiber_go

pytestmark = pytest.mark.slow

STACKS = ["fastapi"] + (["fiber"] if fiber_go.BINARY.exists() else [])


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    client, server = load.default_placement()
    config = load.LoadConfig(
        connections=(1, 8),
        duration_s=1.0,
        warmup_s=0.3,
        rate_fractions=(0.3, 0.6),
        open_duration_s=1.0,
        open_warmup_s=0.3,
        slo_ms=50.0,
        batch_sizes=(1, 100),
        batch_duration_s=1.0,
        batch_warmup_s=0.2,
        rounds=1,
        client_cpus=client,
        server_cpus=server,
    )
    return load.run(STACKS, model.DEFAULT_MODEL, config)


def test_every_mode_ran_on_every_stack(result: dict[str, Any]) -> None:
    json.dumps(result)  # JSON-serialisable as it is
    assert result["schema"] == load.SCHEMA
    assert result["generators"]["closed"].startswith("wrk")
    assert result["generators"]["open"].startswith("vegeta")
    assert result["ceiling"]["closed_rps"] > 1000
    assert [r["stack"] for r in result["runs"]] == STACKS
    for run in result["runs"]:
        assert run["error"] is None, run["error"]
        assert [s["connections"] for s in run["closed"]] == [1, 8]
        for step in run["closed"] + run["batch"]:
            assert step["requests"] > 0 and step["errors"] == 0 and step["non2xx"] == 0
            assert step["latency_us"]["p99.9"] >= step["latency_us"]["p50"] > 0
            assert step["server"]["cpu_s"] > 0
            assert step["server"]["peak_rss_bytes"] > 5 * 2**20
        assert len(run["open"]) == 2
        for step in run["open"]:
            assert step["requests"] > 0 and step["errors"] == 0
            assert step["achieved_rps"] > 0.5 * step["rate"]
        assert run["slo"]["slo_ms"] == 50.0
        assert [s["rows"] for s in run["batch"]] == [1, 100]
        assert run["batch"][1]["rows_per_s"] == pytest.approx(run["batch"][1]["rps"] * 100)


def test_report_from_results_only(result: dict[str, Any], tmp_path: Path) -> None:
    results = {"created": "test", "command": ["pytest"], "load": result}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(result and results))
    written = command.report(tmp_path)
    text = written[0].read_text()
    assert "Throughput at SLO" in text and "Generator ceiling" in text
    for name in STACKS:
        assert f"`{name}`" in text
    names = {p.name for p in written[1:]}
    assert {
        "latency_cdf.png",
        "throughput_p99.png",
        "cpu_per_request.png",
        "batch_scaling.png",
    } <= names
    assert all(p.stat().st_size > 10_000 for p in written[1:])
