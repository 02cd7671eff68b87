"""Short real ``bench`` runs: every stack started, parity-checked, timed, results written; a
user's 8-feature model (no golden file) through every phase; a wrong stack never timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from fiber_endpoints import stacks
from fiber_endpoints.bench import results, runner, servers, summary
from fiber_endpoints.bench.context import BenchConfig

pytestmark = pytest.mark.slow


def bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``bench`` without the peers (tests/integration/test_peers.py runs them)."""
    return subprocess.run(
        [sys.executable, "-m", "fiber_endpoints", "bench", "--no-peers", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_cli_runs_the_seed_protocol_on_every_stack(tmp_path: Path) -> None:
    proc = bench("--samples", "3", "--calls", "20", "--warmup", "20", "--out", str(tmp_path),
                 "--no-load")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mean diff. vs control" in proc.stdout and "floor (diagnostic)" in proc.stdout
    runs = [p for p in tmp_path.iterdir() if not p.is_symlink()]
    assert len(runs) == 1 and (tmp_path / "latest").resolve() == runs[0].resolve()
    doc = results.load(runs[0])
    seq = doc["sequential"]
    assert set(seq["stacks"]) == {*stacks.STACKS, servers.FLOOR}
    assert seq["diagnostic"] == [servers.FLOOR]
    for name in stacks.STACKS:
        raw = seq["stacks"][name]
        assert doc["stacks"][name]["parity"]["ok"]
        assert len(raw["latencies_s"]) == 3 and all(len(s) == 20 for s in raw["latencies_s"])
        assert all(0 < v < 5 for s in raw["latencies_s"] for v in s)
        # Every stack's responses carried Server-Timing, recorded per call.
        assert len(raw["server_timing_ms"]) == 60
        assert all(inf is not None and app is not None for inf, app in raw["server_timing_ms"])
    assert doc["machine"]["python"] and doc["placement"]["server_cpus"]
    assert doc["verdict"] == {"ok": True, "problems": []}
    rows = {r.stack: r for r in summary.sequential_rows(seq)}
    # The floor does no work: no stack can be faster than it, in the same run.
    assert all(rows[servers.FLOOR].p50_us < rows[n].p50_us for n in stacks.STACKS)


def test_an_8_feature_model_goes_through_every_phase(tmp_path: Path) -> None:
    """A user's model, no golden file: rows generated from the model, parity from LightGBM
    in-process, then sequential, tracing cost and every load mode, with no 4xx anywhere."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2000, 8))
    y = x @ rng.normal(size=8) + rng.normal(scale=0.1, size=2000)
    booster = lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(x, y), num_boost_round=50)  # fmt: skip
    model_path = tmp_path / "m8" / "model.txt"
    model_path.parent.mkdir()
    booster.save_model(str(model_path))
    proc = bench("--model", str(model_path), "--samples", "2", "--calls", "20", "--warmup", "20",
                 "--out", str(tmp_path / "out"), "--tracing-cost", "--connections", "4",
                 "--duration", "0.5", "--load-warmup", "0.1", "--rounds", "1",
                 "--batch-sizes", "1,50", "--slo-ms", "100")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = results.load(tmp_path / "out" / "latest")
    assert doc["workload"]["num_features"] == 8 and "generated" in doc["workload"]["source"]
    assert all(s["parity"]["ok"] for s in doc["stacks"].values())
    assert set(doc["tracing_cost"]["stacks"]) == set(stacks.STACKS)
    load = doc["load"]
    assert {r["stack"] for r in load["runs"]} == set(stacks.STACKS)
    for run in load["runs"]:
        assert run["error"] is None, run["error"]
        steps = run["closed"] + run["open"] + run["batch"]
        # one closed step (--connections 4), every open rate of the plan, two batch sizes
        assert len(steps) == 1 + len(load["config"]["rate_fractions"]) + 2
        for step in steps:
            assert step["requests"] > 0 and step["non2xx"] == 0 and step["errors"] == 0, step
    assert (tmp_path / "out" / "latest" / "report.md").exists()


def test_every_phase_over_v2_with_a_model_name(tmp_path: Path) -> None:
    """The Open Inference Protocol V2 end to end: parity through /v2/models/NAME/infer, the
    sequential protocol and the load lab (single and batch tensors) on every stack."""
    proc = bench("--protocol", "v2", "--model-name", "churn-v3", "--samples", "2", "--calls", "20",
                 "--warmup", "20", "--out", str(tmp_path), "--connections", "4", "--duration",
                 "0.4", "--load-warmup", "0.1", "--rounds", "1", "--rate", "200",
                 "--batch-sizes", "100", "--no-ceiling")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = results.load(tmp_path / "latest")
    assert doc["workload"]["protocol"] == "v2"
    for name in stacks.STACKS:
        assert doc["stacks"][name]["parity"]["ok"], doc["stacks"][name]["parity"]
        assert len(doc["sequential"]["stacks"][name]["latencies_s"]) == 2
    for run in doc["load"]["runs"]:
        for step in run["closed"] + run["open"] + run["batch"]:
            assert step["requests"] > 0 and step["non2xx"] == 0 and step["errors"] == 0, step


def test_a_wrong_stack_is_not_timed_and_the_run_fails(tmp_path: Path) -> None:
    """Serve the binary model but check it against the regression golden set: parity must fail,
    the stack must not be timed, and the verdict says why."""
    binary = Path(__file__).parents[2] / "models" / "binary" / "model.txt"
    with servers.running("fastapi", binary, log_dir=tmp_path) as wrong:
        config = BenchConfig(
            stacks=["impostor"],
            targets={"impostor": wrong.url},
            samples=1,
            calls=5,
            warmup_calls=1,
            load=None,
            out_base=tmp_path,
        )
        path, doc = runner.run(config)
    assert doc["stacks"]["impostor"]["parity"]["ok"] is False
    assert doc["stacks"]["impostor"]["parity"]["errors"]
    assert "sequential" not in doc
    assert doc["verdict"]["ok"] is False
    assert doc["verdict"]["problems"] == ["impostor: parity failed, not timed"]
    assert results.load(path)["stacks"]["impostor"]["started_by_bench"] is False


def test_a_model_whose_rows_do_not_fit_fails_before_anything_starts(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    proc = bench("--rows", str(rows), "--out", str(tmp_path), "--no-load", timeout=120)
    assert proc.returncode == 2
    assert "Column_0" in proc.stderr and "not columns of the file" in proc.stderr
    assert not any(tmp_path.glob("*/results.json"))
