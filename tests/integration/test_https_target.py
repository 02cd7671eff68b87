"""``bench --target NAME=https://... --protocol v2 --header ...`` measures a deployed V2 server
the same way as ours: a TLS terminator (tests/tls_proxy.py, self-signed, on loopback) in front
of the Go stack; parity, the sequential protocol, wrk and oha all go through TLS, and every
request they send carries the given Host and Authorization headers (counted by the proxy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fiber_endpoints import model
from fiber_endpoints.bench import results, servers
from fiber_endpoints.bench.client import INSECURE_TLS_ENV

pytestmark = pytest.mark.slow

HEADERS = ["Authorization: Bearer t0k3n", "Host: lgbm.models.example.com"]


def test_bench_measures_an_https_v2_target_with_headers(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    cpus = sorted(os.sched_getaffinity(0))[-1:]
    counts = tmp_path / "counts.json"
    with servers.running("fiber", model.DEFAULT_MODEL, cpus=cpus, log_dir=tmp_path) as fiber:
        port = servers.free_port()
        script = Path(__file__).parents[1] / "tls_proxy.py"
        proxy_cmd = [sys.executable, str(script), str(cert), str(key), str(port),
                     str(fiber.host_port[1]), str(counts), *HEADERS]  # fmt: skip
        proxy = servers.launch(proxy_cmd, cpus=cpus, log_path=tmp_path / "proxy.log")
        try:
            servers.wait_port("127.0.0.1", port, timeout=10, process=proxy)
            proc = subprocess.run(
                [sys.executable, "-m", "fiber_endpoints", "bench",
                 "--target", f"fiber-tls=https://127.0.0.1:{port}", "--protocol", "v2",
                 *[a for h in HEADERS for a in ("--header", h)],
                 "--samples", "2", "--calls", "10", "--warmup", "10", "--rounds", "1",
                 "--connections", "2", "--load-modes", "closed,open", "--rate", "100",
                 "--duration", "0.5", "--load-warmup", "0.2", "--no-ceiling", "--no-floor",
                 "--out", str(tmp_path / "out")],
                capture_output=True, text=True, timeout=600,
                env={**os.environ, INSECURE_TLS_ENV: "1"},
            )  # fmt: skip
        finally:
            servers.stop_process(proxy)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = results.load(tmp_path / "out" / "latest")
    record = doc["stacks"]["fiber-tls"]
    assert record["parity"]["ok"] and not record["started_by_bench"]
    assert record["protocol"] == "v2" and "v2_comparison" not in doc
    assert len(doc["sequential"]["stacks"]["fiber-tls"]["latencies_s"]) == 2
    (run,) = doc["load"]["runs"]
    assert run["closed"][0]["ok"] > 0 and run["open"][0]["ok"] > 0
    assert all(s["errors"] == s["non2xx"] == 0 for s in run["closed"] + run["open"])
    seen = json.loads(counts.read_text())
    assert seen["POST"] > 100, seen
    # Every request of every client (POSTs, and the health check's GET) carried both headers.
    assert all(seen[h] == seen["POST"] + seen["GET"] for h in HEADERS), seen
