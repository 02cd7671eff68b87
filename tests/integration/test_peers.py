"""The peers, as ``bench`` runs them: each installed by scripts/install-peers.sh into its own
cached virtualenv, started pinned with one predictor thread, parity with LightGBM on the golden
rows (missing values included) over its own protocol, and what it answers to the four malformed
requests MLServer 1.7.1 answered with a 500 and a traceback (recorded, printed, and for our
stacks asserted 4xx in tests/integration/test_v2_contract.py). Then one short ``bench`` with
the peers: every table of the report marks them, and a peer that cannot start is reported, not
dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fiber_endpoints import model, paths, peers
from fiber_endpoints.bench import parity, results, workload
from fiber_endpoints.bench.client import ClientError, RawClient

pytestmark = pytest.mark.slow

N = 20  # features of the default model
ROW = [0.5] * N


def malformed(protocol: str) -> dict[str, bytes]:
    """The four malformed requests, in the peer's own protocol (BentoML has no datatype)."""
    if protocol == "bentoml":
        return {
            "wrong feature count": json.dumps({"data": [ROW[:-1]]}).encode(),
            "shape/data mismatch": json.dumps({"data": [ROW, ROW[:-1]]}).encode(),
            "string in the data": json.dumps({"data": [["x", *ROW[1:]]]}).encode(),
        }

    def tensor(shape: list[int], data: list[object], datatype: str = "FP64") -> bytes:
        return json.dumps(
            {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
        ).encode()

    return {
        "wrong feature count": tensor([1, N - 1], ROW[:-1]),
        "shape/data mismatch": tensor([1, N], ROW[:-1]),
        "BYTES datatype": tensor([1, N], ["a"] * N, "BYTES"),
        "string in the data": tensor([1, N], ["x", *ROW[1:]]),
    }


@pytest.fixture(scope="module")
def installed() -> None:
    """The project's own install (what `make setup` runs): a check when cached."""
    subprocess.run(["bash", str(paths.PROJECT_ROOT / "scripts/install-peers.sh")], check=True,
                   timeout=900)  # fmt: skip


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_a_peer_starts_pinned_matches_lightgbm_and_answers_malformed_requests(
    name: str, installed: None, tmp_path: Path
) -> None:
    rows = workload.load(model.DEFAULT_MODEL)
    assert rows.num_features == N
    cpus = sorted(os.sched_getaffinity(0))[-1:]
    with peers.running(name, model.DEFAULT_MODEL, cpus=cpus, log_dir=tmp_path) as server:
        assert server.process is not None and server.protocol is not None
        assert server.health["predictor_threads"] == 1
        assert os.sched_getaffinity(server.process.pid) == set(cpus)
        check = parity.check(server.url, rows.golden, server.protocol)
        assert check.ok, check.errors
        answers = {}
        for what, body in malformed(server.protocol.name).items():
            client = RawClient(server.url)  # one connection each: a server may close it after
            try:
                resp = client.send(client.prepare("POST", server.protocol.path(True), body))
                answers[what] = (resp.status, resp.body[:160].decode(errors="replace"))
            except (OSError, ClientError) as exc:
                alive = server.process.poll() is None
                answers[what] = (0, f"no answer: {type(exc).__name__}; alive: {alive}")
            finally:
                client.close()
        # Whatever it answered, it still serves predictions afterwards.
        assert parity.check(server.url, rows.golden, server.protocol).ok
    print(f"\n{name}: " + json.dumps(answers, indent=1))
    # Every malformed request is refused (never a 2xx with a prediction).
    assert all(not 200 <= status < 300 for status, _ in answers.values()), answers


def test_bench_with_peers_marks_them_and_reports_one_that_does_not_start(
    installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short run with every peer; KServe's venv hidden: it is reported as not started (a
    problem in the verdict) and the others are timed beside our stacks."""
    hidden = tmp_path / "peers-home"
    hidden.mkdir()
    for peer in {p.venv for p in peers.PEERS.values()} - {"kserve"}:
        (hidden / peer).symlink_to(peers.home() / peer)
    env = {**os.environ, "PEERS_HOME": str(hidden)}
    proc = subprocess.run(
        [sys.executable, "-m", "fiber_endpoints", "bench", "--stacks", "asgi-msgspec,fastapi",
         "--samples", "3", "--calls", "20", "--warmup", "20", "--rounds", "1",
         "--connections", "4", "--load-modes", "closed", "--duration", "0.5",
         "--load-warmup", "0.2", "--no-ceiling", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = results.load(tmp_path / "out" / "latest")
    cmp = doc["v2_comparison"]
    assert cmp["stacks"]["kserve"]["parity"]["ok"] is False
    assert "did not start" in cmp["stacks"]["kserve"]["parity"]["errors"][0]
    problems = doc["verdict"]["problems"]
    assert any(p.startswith("v2_comparison: kserve: did not start") for p in problems), problems
    timed = {"asgi-msgspec", "fastapi", "mlserver", "mlserver-tuned", "bentoml"}
    assert set(cmp["sequential"]["stacks"]) - {"loopback-floor"} == timed
    assert {r["stack"] for r in cmp["load"]["runs"]} == timed
    assert all(cmp["stacks"][n]["parity"]["ok"] for n in timed)
    assert cmp["stacks"]["bentoml"]["protocol"] == "bentoml"
    assert cmp["fairness"]["predictor_threads"] == 1 and set(cmp["fairness"]["on"]) >= timed
    report = (tmp_path / "out" / "latest" / "report.md").read_text()
    assert "## Over V2: our stacks and the peers" in report
    assert "`mlserver-tuned` (peer)" in report and "`bentoml` (peer)" in report
    assert "contract p50 µs" in report
    assert (tmp_path / "out" / "latest" / "plots" / "v2_sequential.png").exists()
