"""Metrics (``metrics.py``): the buckets equal Go's, the route and method labels follow one rule,
the recorder's counts reach the exposition exactly, and the fast stack records both its paths
(the fast path inside uvicorn's protocol and the ASGI one) without counting the scrape."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fake_transport import FakeTransport
from fiber_endpoints import metrics, model
from fiber_endpoints.paths import PROJECT_ROOT
from fiber_endpoints.stacks import asgi_msgspec, fast_path
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler

MODEL = model.MODELS_DIR / "regression" / "model.txt"
GOOD = json.dumps({"data": [0.5] * 20}).encode()


def _go_buckets() -> list[float]:
    source = (PROJECT_ROOT / "fiber" / "metrics.go").read_text()
    block = re.search(r"var durationBuckets = \[\]float64\{(.*?)\}", source, re.S)
    assert block is not None, "durationBuckets not found in fiber/metrics.go"
    return [float(v) for v in re.findall(r"[0-9.e+-]+", block.group(1))]


def test_buckets_are_the_same_in_python_and_go() -> None:
    assert _go_buckets() == list(metrics.BUCKETS)
    assert list(metrics.BUCKETS) == sorted(set(metrics.BUCKETS))
    assert metrics.BUCKETS[0] <= 10e-6 and metrics.BUCKETS[-1] >= 10  # tens of µs to seconds


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/inference", "/inference"),
        ("/inference/batch", "/inference/batch"),
        ("/health", "/health"),
        ("/v2", "/v2"),
        ("/v2/health/ready", "/v2/health/ready"),
        ("/v2/models/model", "/v2/models/{model_name}"),
        ("/v2/models/model/ready", "/v2/models/{model_name}/ready"),
        ("/v2/models/model/infer", "/v2/models/{model_name}/infer"),
        (
            "/v2/models/model/versions/1/infer",
            "/v2/models/{model_name}/versions/{model_version}/infer",
        ),
        ("/v2/models/other/infer", ""),  # another model: unmatched
        ("/v2/models/model/versions/2/infer", ""),
        ("/v2/models/modelx/infer", ""),
        ("/inference/", ""),
        ("/anything", ""),
    ],
)
def test_route_label(path: str, label: str) -> None:
    assert metrics.route_label(path, "model") == label


def test_go_has_the_same_route_cases() -> None:
    """The Go test table (fiber/metrics_test.go) lists the same paths and labels as above."""
    source = (PROJECT_ROOT / "fiber" / "metrics_test.go").read_text()
    for case in test_route_label.pytestmark[0].args[1]:  # type: ignore[attr-defined]
        assert f'{{"{case[0]}", "{case[1]}"}}' in source, case


def test_method_label() -> None:
    assert metrics.method_label("POST") == "POST"
    assert metrics.method_label("BREW") == "_OTHER"


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))
            out[(s.name, labels)] = s.value
    return out


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def _req(suffix: str, method: str = "POST", route: str = "/inference", status: str = "200",
         **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:  # fmt: skip
    return _key(
        metrics.REQUEST_DURATION + suffix,
        http_request_method=method,
        http_route=route,
        http_response_status_code=status,
        **extra,
    )


def test_recorder_counts_reach_the_exposition(tmp_path: Path) -> None:
    recorder = metrics.Recorder("test", "p", "model", MODEL)
    for seconds in (20e-6, 20e-6, 0.3, 99.0):
        recorder.request("POST", "/inference", 200, seconds, 10e-6)
    before = _samples(recorder.exposition())
    recorder.request("POST", "/inference", 200, 20e-6, None)
    after = _samples(recorder.exposition())  # a scrape flushes this worker first
    assert before[_req("_bucket", le="1e-05")] == 0
    assert before[_req("_bucket", le="2.5e-05")] == 2
    assert before[_req("_bucket", le="0.5")] == 3
    assert before[_req("_bucket", le="+Inf")] == 4
    assert before[_req("_count")] == 4
    assert before[_req("_sum")] == pytest.approx(99.30004)
    assert after[_req("_count")] == 5
    inference = _key(metrics.INFERENCE_DURATION + "_count", http_route="/inference")
    assert after[inference] == 4  # the fifth did not predict
    info = [k for k in after if k[0] == metrics.BUILD_INFO]
    assert dict(info[0][1])["model_sha256"] == metrics.file_sha256(MODEL)
    assert after[(metrics.RESIDENT_MEMORY, ())] > 10 * 2**20


# -- the fast stack records both paths -----------------------------------------------------------
@pytest.fixture(scope="module")
def app() -> Iterator[asgi_msgspec.App]:
    predictor = CapiPredictor(MODEL, threads=1)
    handler = Handler(predictor, asgi_msgspec.STACK_NAME)
    yield asgi_msgspec.App(handler, recorder=metrics.Recorder("t", "p", "model", MODEL))
    predictor.close()


def _asgi(app: asgi_msgspec.App, method: str, path: str) -> tuple[int, bytes]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_fast_stack_records_fast_and_asgi_paths(app: asgi_msgspec.App) -> None:
    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="warning")
    state = ServerState()
    protocol = fast_path.FastPathProtocol(config, state, {}, _loop=loop)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = (
        b"POST /inference HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD)
    )
    protocol.data_received(request * 3)
    loop.run_until_complete(asyncio.sleep(0))  # the rows wait for the turn's batch
    assert len(transport.writes) == 3  # answered on the fast path, in place
    protocol.connection_lost(None)
    loop.close()
    assert _asgi(app, "GET", "/health")[0] == 200
    assert _asgi(app, "DELETE", "/inference")[0] == 405
    status, body = _asgi(app, "GET", metrics.METRICS_PATH)
    assert status == 200
    got = _samples(body)
    assert got[_req("_count")] == 3
    assert got[_req("_count", method="DELETE", status="405")] == 1
    assert got[_req("_count", method="GET", route="/health")] == 1
    assert not any("/metrics" in str(k) for k in got)  # the scrape is not counted
    assert got[_key(metrics.INFERENCE_DURATION + "_count", http_route="/inference")] == 3
    assert _asgi(app, "POST", metrics.METRICS_PATH)[0] == 405


def test_metrics_off_is_404(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.METRICS_ENV, "0")
    assert not metrics.enabled()
    predictor = CapiPredictor(MODEL, threads=1)
    app = asgi_msgspec.App(Handler(predictor, asgi_msgspec.STACK_NAME))
    assert _asgi(app, "GET", metrics.METRICS_PATH)[0] == 404
    predictor.close()


def test_a_failed_batch_is_counted_as_500s(
    app: asgi_msgspec.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of a batch whose predictor call raised (forced) are answered 500 and counted as
    such, as the ASGI path counts an app that raised."""
    import uvicorn
    from uvicorn.server import ServerState

    assert app.batcher is not None

    def broken(rows: Any) -> Any:
        raise RuntimeError("forced")

    monkeypatch.setattr(app.batcher.handler.predictor, "predict_rows", broken)
    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="warning")
    state = ServerState()
    connections = []
    for _ in range(3):  # the turn's first row is answered at once; the other two fail together
        protocol = fast_path.FastPathProtocol(config, state, {}, _loop=loop)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(
            b"POST /inference HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD)
        )
        connections.append(protocol)
    loop.run_until_complete(asyncio.sleep(0))
    for protocol in connections:
        protocol.connection_lost(None)
    loop.close()
    assert app.recorder is not None
    app.recorder.flush()
    got = _samples(_asgi(app, "GET", metrics.METRICS_PATH)[1])
    assert got.get(_req("_count", status="500")) == 2
