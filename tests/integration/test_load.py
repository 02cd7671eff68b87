"""A short run of every load mode against every real stack, interleaved in slices, then the
report from the results alone. Needs wrk and oha (FAILS without them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from fiber_endpoints import model, stacks
from fiber_endpoints.bench import load, placement, results, runner, schema, servers, workload
from fiber_endpoints.report import command

pytestmark = pytest.mark.slow

STACKS = list(stacks.STACKS)
ROUNDS = 2


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    where = placement.plan()
    config = load.LoadConfig(
        connections=(1, 8),
        duration_s=0.6,
        warmup_s=0.2,
        rate_fractions=(0.3, 0.6),
        open_duration_s=0.6,
        open_warmup_s=0.2,
        slo_ms=50.0,
        batch_sizes=(1, 100),
        batch_duration_s=0.5,
        batch_warmup_s=0.1,
        rounds=ROUNDS,
    )
    logs = tmp_path_factory.mktemp("logs")
    with ExitStack() as stack:
        running = {
            n: stack.enter_context(
                servers.running(n, model.DEFAULT_MODEL, cpus=where.server_cpus, log_dir=logs)
            )
            for n in STACKS
        }
        yield dict(load.run(running, workload.load(model.DEFAULT_MODEL), where, config))


def test_every_mode_ran_on_every_stack_in_rotated_slices(result: dict[str, Any]) -> None:
    json.dumps(result)  # JSON-serialisable as it is
    assert result["schema"] == schema.LOAD_SCHEMA
    assert result["generators"]["closed"].startswith("wrk")
    assert result["generators"]["open"].startswith("oha")
    assert result["ceiling"]["closed_rps"] > 1000 and result["ceiling_end"]["closed_rps"] > 1000
    # Round r starts at stack r (rotated), every stack once per round.
    order = [(r["round"], r["stack"]) for r in result["runs"]]
    assert order == [(r, n) for r in range(ROUNDS) for n in load.rotation(STACKS, r)]
    for run in result["runs"]:
        assert run["error"] is None, run["error"]
        assert [s["connections"] for s in run["closed"]] == [1, 8]
        for step in run["closed"] + run["batch"]:
            assert step["requests"] > 0 and step["errors"] == 0 and step["non2xx"] == 0
            assert step["ok"] == step["requests"]
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


def test_a_dead_server_is_an_error_of_its_own_not_of_the_others(tmp_path: Path) -> None:
    where = placement.plan()
    config = load.LoadConfig(modes=("closed",), connections=(2,), duration_s=0.3, warmup_s=0.0,
                             rounds=2, ceiling=False)  # fmt: skip
    with servers.running("fiber", model.DEFAULT_MODEL, cpus=where.server_cpus,
                         log_dir=tmp_path) as alive, servers.running(
        "fastapi", model.DEFAULT_MODEL, cpus=where.server_cpus, log_dir=tmp_path
    ) as doomed:  # fmt: skip
        servers.stop(doomed)
        out = load.run({"fiber": alive, "fastapi": doomed}, workload.load(model.DEFAULT_MODEL),
                       where, config)  # fmt: skip
    errors = [(r["stack"], r["error"]) for r in out["runs"] if r["error"]]
    # Said once, where it was found; the stack sits out the rest; the other one is unaffected.
    assert len(errors) == 1 and errors[0][0] == "fastapi" and "fastapi exited" in errors[0][1]
    assert all(r["closed"] for r in out["runs"] if r["stack"] == "fiber")


def test_errors_are_never_throughput(tmp_path: Path) -> None:
    """Rows of another width: every answer is a 422. Req/s count 2xx only (zero), and the run's
    verdict names the stack and the step."""
    narrow = tmp_path / "narrow" / "model.txt"
    narrow.parent.mkdir()
    x = np.random.default_rng(0).normal(size=(300, 3))
    lgb.train({"objective": "regression", "verbosity": -1}, lgb.Dataset(x, x[:, 0]),
              num_boost_round=3).save_model(str(narrow))  # fmt: skip
    where = placement.plan()
    config = load.LoadConfig(modes=("closed",), connections=(2,), duration_s=0.4, warmup_s=0.0,
                             rounds=1, ceiling=False)  # fmt: skip
    with servers.running("fiber", model.DEFAULT_MODEL, cpus=where.server_cpus,
                         log_dir=tmp_path) as fiber:  # fmt: skip
        out = load.run({"fiber": fiber}, workload.load(narrow), where, config)
    step = out["runs"][0]["closed"][0]
    assert step["non2xx"] == step["requests"] > 0
    assert step["rps"] == 0.0 and step["rps_all_answers"] > 0
    problems = runner.load_problems(out)
    assert (
        problems and "fiber (round 1): closed connections=2: 100% of requests failed" in problems[0]
    )


def test_report_from_results_only(result: dict[str, Any], tmp_path: Path) -> None:
    doc = {
        "created": "test",
        "command": ["pytest"],
        "machine": {},
        "placement": result["placement"],
        "config": {},
        "model": {},
        "workload": {},
        "stacks": {},
        "verdict": {"ok": True, "problems": []},
        "load": result,
    }
    results.write(doc, tmp_path)
    written = command.report(tmp_path)
    text = written[0].read_text()
    assert "Throughput at SLO" in text and "Generator ceiling" in text
    assert "Machine drift" in text
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
