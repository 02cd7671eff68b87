"""A real Prometheus scrapes every stack's ``GET /metrics`` and answers PromQL with the requests
this test sent.

Prometheus comes from ``scripts/install-prometheus.sh`` (``make prometheus``: Debian's package,
unpacked into the cache); a missing install fails this module, it never skips. Each stack runs
as a real process on loopback, the fast Python stack and the control with two workers (the
scrape reaches one worker and must still count both). Prometheus scrapes every 0.5 s; the test
sends known numbers of requests (single, batch, a 422, a 404) and waits until Prometheus'
query API returns exactly those counts, by route and status.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fiber_endpoints import metrics, model, paths, stacks
from fiber_endpoints.bench import servers

pytestmark = pytest.mark.slow

STACKS = tuple(sorted(stacks.STACKS))
WORKERS = {"asgi-msgspec": 2, "fastapi": 2}
MODEL = model.DEFAULT_MODEL
SINGLE, BATCH, BAD = 40, 7, 3
ROW = [0.5] * 20


def _prometheus_bin() -> Path:
    home = Path(os.environ.get("PROMETHEUS_HOME", paths.cache_dir() / "prometheus"))
    binary = home / "usr" / "bin" / "prometheus"
    if not binary.exists():
        subprocess.run(["bash", str(paths.PROJECT_ROOT / "scripts" / "install-prometheus.sh")],
                       check=True)  # fmt: skip
    return binary


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def _query(base: str, promql: str) -> dict[str, float]:
    """instance -> value of an instant query (job label = the stack)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        doc = json.load(response)
    assert doc["status"] == "success", doc
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in doc["data"]["result"]}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, servers.Server]]:
    logs = tmp_path_factory.mktemp("logs")
    started: dict[str, servers.Server] = {}
    try:
        for name in STACKS:
            workers = WORKERS.get(name, 1)
            extra = ["--workers", str(workers)] if workers > 1 else []
            started[name] = servers.start(name, MODEL, extra_args=extra, log_dir=logs)
        yield started
    finally:
        for server in started.values():
            servers.stop(server)


@pytest.fixture(scope="module")
def prometheus(
    running: dict[str, servers.Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prometheus")
    scrape = [
        {
            "job_name": name,
            "scrape_interval": "500ms",
            "scrape_timeout": "400ms",
            "static_configs": [{"targets": [server.url.removeprefix("http://")]}],
        }
        for name, server in running.items()
    ]
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({"scrape_configs": scrape}))  # JSON is YAML
    port = servers.free_port("127.0.0.1")
    log = (folder / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(_prometheus_bin()),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        servers.wait_port("127.0.0.1", port, timeout=30, process=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        servers.stop_process(proc)
        log.close()


def _wait_for(base: str, promql: str, want: dict[str, float], timeout: float = 20) -> None:
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _query(base, promql)
        if got == want:
            return
        time.sleep(0.25)
    pytest.fail(f"{promql}: Prometheus says {got}, the test sent {want}")


def test_prometheus_counts_what_was_sent(
    running: dict[str, servers.Server], prometheus: str
) -> None:
    single = json.dumps({"data": ROW}).encode()
    batch = json.dumps({"data": [ROW, ROW, ROW]}).encode()
    for server in running.values():
        # Fresh connections: with two workers the kernel spreads them over both.
        assert {_post(server.url + "/inference", single) for _ in range(SINGLE)} == {200}
        assert {_post(server.url + "/inference/batch", batch) for _ in range(BATCH)} == {200}
        assert {_post(server.url + "/inference", b'{"data": [1]}') for _ in range(BAD)} == {422}
        assert _post(server.url + "/no-such-route", single) == 404
    everyone = dict.fromkeys(running, float(SINGLE))
    count = metrics.REQUEST_DURATION + "_count"
    route = 'http_request_method="POST",http_route="/inference"'
    _wait_for(prometheus, f'sum by (job) ({count}{{{route},http_response_status_code="200"}})',
              everyone)  # fmt: skip
    _wait_for(prometheus, f'sum by (job) ({count}{{{route},http_response_status_code="422"}})',
              dict.fromkeys(running, float(BAD)))  # fmt: skip
    batch_route = 'http_route="/inference/batch"'
    _wait_for(prometheus, f"sum by (job) ({count}{{{batch_route}}})",
              dict.fromkeys(running, float(BATCH)))  # fmt: skip
    unmatched = 'http_route="",http_response_status_code="404"'
    _wait_for(prometheus, f"sum by (job) ({count}{{{unmatched}}})", dict.fromkeys(running, 1.0))
    inference = metrics.INFERENCE_DURATION + "_count"
    _wait_for(prometheus, f"sum by (job) ({inference})",
              dict.fromkeys(running, float(SINGLE + BATCH)))  # fmt: skip
    # The same buckets everywhere: every stack exposes the same set of le values.
    bucket = metrics.REQUEST_DURATION + '_bucket{http_route="/inference"}'
    les = f"count by (job) (count by (job, le) ({bucket}))"
    _wait_for(prometheus, les, dict.fromkeys(running, float(len(metrics.BUCKETS) + 1)))
    # One build_info per stack, naming the model's hash; RSS of every worker.
    digest = metrics.file_sha256(MODEL)
    info = f'count by (job) ({metrics.BUILD_INFO}{{model_sha256="{digest}"}})'
    assert _query(prometheus, f"{info} > 0") == dict.fromkeys(running, 1.0)
    rss = f"count by (job) ({metrics.RESIDENT_MEMORY})"
    want_rss = {name: float(WORKERS.get(name, 1)) for name in running}
    _wait_for(prometheus, rss, want_rss)
