"""A short real ``bench`` run: every stack started, parity-checked, timed, results written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fiber_endpoints import stacks
from fiber_endpoints.bench import results, runner, servers, summary

pytestmark = pytest.mark.slow


def test_bench_cli_runs_the_seed_protocol_on_every_stack(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiber_endpoints",
            "bench",
            "--samples",
            "3",
            "--calls",
            "20",
            "--warmup",
            "20",
            "--out",
            str(tmp_path),
            "--no-load",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mean diff. vs control" in proc.stdout
    runs = [p for p in tmp_path.iterdir() if not p.is_symlink()]
    assert len(runs) == 1 and (tmp_path / "latest").resolve() == runs[0].resolve()
    doc = results.load(runs[0])
    assert set(doc["sequential"]["stacks"]) == set(stacks.STACKS)
    for name, raw in doc["sequential"]["stacks"].items():
        assert doc["stacks"][name]["parity"]["ok"]
        assert len(raw["latencies_s"]) == 3 and all(len(s) == 20 for s in raw["latencies_s"])
        assert all(0 < v < 5 for s in raw["latencies_s"] for v in s)
        # Every stack's responses carried Server-Timing, recorded per call.
        assert len(raw["server_timing_ms"]) == 60
        assert all(inf is not None and app is not None for inf, app in raw["server_timing_ms"])
    assert doc["machine"]["python"] and doc["placement"]["server_cpus"]
    rows = summary.sequential_rows(doc)
    assert {r.stack for r in rows} == set(stacks.STACKS)


def test_a_wrong_stack_is_not_timed(tmp_path: Path) -> None:
    """Serve the binary model but check it against the regression golden set: parity must fail
    and the stack must not be timed."""
    binary = Path(__file__).parents[2] / "models" / "binary" / "model.txt"
    with servers.running("fastapi", binary, log_dir=tmp_path) as wrong:
        config = runner.BenchConfig(
            stacks=["impostor"],
            targets={"impostor": wrong.url},
            samples=1,
            calls=5,
            warmup_calls=1,
            out_base=tmp_path,
        )
        path, doc = runner.run(config)
    assert doc["stacks"]["impostor"]["parity"]["ok"] is False
    assert doc["stacks"]["impostor"]["parity"]["errors"]
    assert "sequential" not in doc
    assert json.loads(path.read_text())["stacks"]["impostor"]["started_by_bench"] is False
