"""Every traced stack exports into a real Jaeger, read back through Jaeger's own query API.

Jaeger comes from ``scripts/install-jaeger.sh`` (``make jaeger``): a missing or broken install
fails this module, it never skips. Per stack: traced single and batch requests with trace ids
the client chose, unsampled requests, and health probes; the stack is stopped gracefully (that
must flush its spans), then every trace is fetched back by id.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fiber_endpoints import model, stacks
from fiber_endpoints.bench import servers
from fiber_endpoints.bench.client import RawClient, Response
from fiber_endpoints.bench.workload import encode_body
from fiber_endpoints.trace import client, jaeger
from fiber_endpoints.trace.breakdown import ClientCall, RequestBreakdown, breakdown
from fiber_endpoints.trace.spans import SERVER, Span
from fiber_endpoints.tracing import ATTR_FEATURES, ATTR_ROWS, INFERENCE_SPAN

pytestmark = pytest.mark.slow

STACKS = tuple(sorted(stacks.STACKS))  # every registered stack, fastapi and fiber among them
MODEL = model.DEFAULT_MODEL
TRACED = 30
UNSAMPLED = 5
HEALTH_PROBES = 5
BATCH_ROWS = 3
# Go's time.Now() reads the wall and the monotonic clock one after the other: a span's start and
# its duration may disagree by that gap, far below 1 µs.
READ_SLACK_NS = 1_000


class ClockSteps:
    """How far the wall clock stepped against the monotonic clock from creation to ``stop()``,
    sampled every 2 ms in a thread.

    A span's start is a wall-clock reading and its end the start plus a monotonic duration (Go)
    or another wall-clock reading (Python), so a step of the VM's wall clock between a parent's
    start and its child's shifts the child against the parent by the step: seen here once, by
    18 µs under load. Both clocks are system-wide: a step the stacks saw shows here too."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.low = self.high = self._offset_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _offset_ns() -> int:
        """wall - monotonic, from the tightest of a few bracketed readings."""
        best: tuple[int, int] | None = None
        for _ in range(5):
            m1 = time.monotonic_ns()
            wall = time.time_ns()
            m2 = time.monotonic_ns()
            if best is None or m2 - m1 < best[0]:
                best = (m2 - m1, wall - (m1 + m2) // 2)
        assert best is not None
        return best[1]

    def _sample(self) -> None:
        offset = self._offset_ns()
        self.low, self.high = min(self.low, offset), max(self.high, offset)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def step_ns(self) -> int:
        """The largest shift between any two moments of the run (0 if the clock never stepped)."""
        return self.high - self.low


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[jaeger.Jaeger]:
    jaeger.install()  # cached: a no-op after `make jaeger`; fails if it cannot install
    j = jaeger.start(log_dir=tmp_path_factory.mktemp("jaeger"))
    yield j
    jaeger.stop(j)


@dataclass
class Exchange:
    stack: str
    single: list[ClientCall]
    batch: ClientCall
    unsampled_trace_ids: list[str]
    clock_step_ns: int  # ClockSteps.step_ns over the stack's whole run


def _post(conn: RawClient, path: str, body: bytes, tp: str) -> Response:
    return conn.send(conn.prepare("POST", path, body, {"traceparent": tp}))


@pytest.fixture(scope="module", params=STACKS)
def exchange(
    request: pytest.FixtureRequest, store: jaeger.Jaeger, tmp_path_factory: pytest.TempPathFactory
) -> Exchange:
    name: str = request.param
    env = jaeger.otel_env(store, service_name=name)
    server = servers.start(name, MODEL, env=env, log_dir=tmp_path_factory.mktemp(name))
    clock = ClockSteps()  # every request's life, up to the graceful stop that exports its spans
    try:
        host, port = server.host_port
        rows = model.load_golden(MODEL).rows
        single = client.send_traced(host, port, rows, TRACED, warmup=0)
        conn = RawClient(f"http://{host}:{port}")
        try:
            trace_id, span_id = client.new_ids()
            body = json.dumps({"data": [[0.5] * len(rows[0])] * BATCH_ROWS}).encode()
            resp = _post(conn, "/inference/batch", body, client.traceparent(trace_id, span_id))
            assert resp.status == 200
            batch = ClientCall(trace_id, span_id, 0, 1, resp.status, {})
            unsampled = []
            for row in rows[:UNSAMPLED]:
                trace_id, span_id = client.new_ids()
                tp = client.traceparent(trace_id, span_id, client.NOT_SAMPLED)
                assert _post(conn, "/inference", encode_body(row), tp).status == 200
                unsampled.append(trace_id)
        finally:
            conn.close()
        for _ in range(HEALTH_PROBES):
            servers.get_json(server.url + "/health")
    finally:
        code = servers.stop(server)  # SIGTERM: graceful, must flush the spans
        clock.stop()
    assert code in (0, -15, 143), f"{name} exited with {code}: {servers.tail(server.log_path)}"
    assert all(c.status == 200 for c in single)
    if name == "asgi-msgspec":  # its fast path's spans reach Jaeger by otlp_direct, not the SDK
        assert "fast path: spans encoded here" in server.log_path.read_text()
    return Exchange(name, single, batch, unsampled, clock.step_ns)


def _fetch(store: jaeger.Jaeger, trace_id: str, wait: float = 5.0) -> list[Span] | None:
    """The trace, polled for up to ``wait`` seconds (the exporter's last batch may be in flight)."""
    deadline = time.monotonic() + wait
    while True:
        spans: list[Span] | None = store.fetch(trace_id)
        if spans or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def _breakdowns(store: jaeger.Jaeger, ex: Exchange) -> list[RequestBreakdown]:
    _fetch(store, ex.single[-1].trace_id)  # the last one sent is the last one exported
    results = [breakdown(c, store.fetch(c.trace_id)) for c in ex.single]
    problems = [str(r) for r in results if not isinstance(r, RequestBreakdown)]
    assert not problems, f"{ex.stack}: {len(problems)}/{len(results)} traces bad: {problems[:5]}"
    return [r for r in results if isinstance(r, RequestBreakdown)]


def test_every_traced_request_arrives_with_one_server_and_one_inference_span(
    store: jaeger.Jaeger, exchange: Exchange
) -> None:
    found = _breakdowns(store, exchange)
    assert len(found) == TRACED
    n_features = len(model.load_golden(MODEL).rows[0])
    for r in found:
        assert r.server.name == "POST /inference"
        assert r.server.kind == SERVER
        assert r.server.parent_id == r.call.parent_span_id  # traceparent honoured
        assert r.server.service == exchange.stack
        assert r.inference.name == INFERENCE_SPAN
        assert r.inference.parent_id == r.server.span_id
        assert r.inference.service == exchange.stack
        assert r.inference.attributes[ATTR_ROWS] == 1
        assert r.inference.attributes[ATTR_FEATURES] == n_features
        assert 0 < r.inference_ns <= r.server_ns
        # Nested in time, up to the wall clock's measured steps during this run (ClockSteps).
        skew = exchange.clock_step_ns + READ_SLACK_NS
        why = f"{exchange.stack}: wall clock stepped {exchange.clock_step_ns} ns during the run"
        assert r.server.start_ns <= r.inference.start_ns + skew, why
        assert r.inference.end_ns <= r.server.end_ns + skew, why
        # Server-Timing's inference is the predictor call alone: inside the span
        assert r.call.server_timing["inference"] * 1e6 <= r.inference_ns + 1_000
        assert r.call.server_timing["app"] > 0


def test_batch_request_span_names_its_route_and_rows(
    store: jaeger.Jaeger, exchange: Exchange
) -> None:
    r = breakdown(exchange.batch, _fetch(store, exchange.batch.trace_id))
    assert isinstance(r, RequestBreakdown), str(r)
    assert r.server.name == "POST /inference/batch"
    assert r.inference.attributes[ATTR_ROWS] == BATCH_ROWS


def test_unsampled_requests_make_no_trace(store: jaeger.Jaeger, exchange: Exchange) -> None:
    _breakdowns(store, exchange)  # everything flushed by now
    for trace_id in exchange.unsampled_trace_ids:
        assert store.fetch(trace_id) is None


def test_health_is_not_traced_and_nothing_else_is_either(
    store: jaeger.Jaeger, exchange: Exchange
) -> None:
    _breakdowns(store, exchange)
    assert exchange.stack in store.services()
    query = urllib.parse.urlencode({"service": exchange.stack, "limit": 10_000})
    with urllib.request.urlopen(f"{store.query_url}/api/traces?{query}", timeout=10) as resp:
        traces = json.loads(resp.read())["data"]
    names = [s["operationName"] for t in traces for s in t["spans"]]
    assert not [n for n in names if "health" in n]
    expected = {c.trace_id for c in exchange.single} | {exchange.batch.trace_id}
    assert {t["traceID"] for t in traces} == expected
    assert sorted(set(names)) == ["POST /inference", "POST /inference/batch", INFERENCE_SPAN]
    assert len(names) == 2 * len(expected)


def test_trace_command_finds_every_request(tmp_path: Path, store: jaeger.Jaeger) -> None:
    from fiber_endpoints.trace import command

    code = command.run(
        list(STACKS), 50, tmp_path, MODEL, warmup=20,
        otlp_endpoint=store.otlp_endpoint, query_url=store.query_url,
    )  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    for name in STACKS:
        assert doc["summaries"][name]["requests"] == 50
    assert (tmp_path / "breakdown.png").stat().st_size > 0
    assert (tmp_path / "waterfall-median.png").stat().st_size > 0


def _jaeger_traces(store: jaeger.Jaeger, service: str, wait: float = 10.0) -> list[Any]:
    query = urllib.parse.urlencode({"service": service, "limit": 10_000})
    deadline = time.monotonic() + wait
    while True:
        with urllib.request.urlopen(f"{store.query_url}/api/traces?{query}", timeout=10) as resp:
            traces: list[Any] = json.loads(resp.read())["data"]
        if len(traces) >= DIRECT_TRACES or time.monotonic() > deadline:
            return traces
        time.sleep(0.2)


def _shape(trace: dict[str, Any], client: dict[str, str]) -> str:
    """A trace as Jaeger stores it, without what is random or timed: each span's name, tags,
    parent (by name when the parent is in the trace), process tags (those of
    :data:`PER_INSTANCE` aside), Jaeger's warnings. The client's own ids (trace ids and
    parent span ids it chose: different for each instance, or Jaeger would merge their traces)
    become their labels in ``client``; a trace id the server chose becomes "root"."""
    names = {s["spanID"]: s["operationName"] for s in trace["spans"]}
    processes = trace["processes"]
    spans = []
    for s in trace["spans"]:
        assert s["duration"] >= 0, s
        parents = [
            names.get(r["spanID"]) or client[r["spanID"]]
            for r in s.get("references", [])
            if r["refType"] == "CHILD_OF"
        ]
        tags = sorted((t["key"], str(t["value"])) for t in s["tags"])
        process = processes[s["processID"]]
        resource = sorted(
            (t["key"], str(t["value"])) for t in process["tags"] if t["key"] not in PER_INSTANCE
        )
        warnings = [w.replace(pid, client[pid]) for w in s.get("warnings") or [] for pid in
                    [r["spanID"] for r in s.get("references", [])] if pid in client]  # fmt: skip
        spans.append((s["operationName"], tags, parents, resource, sorted(warnings)))
    return json.dumps([client.get(trace["traceID"], "root"), sorted(spans)], sort_keys=True)


DIRECT_TRACES = 40
PER_INSTANCE = ("service.name", "service.instance.id")  # the service's name, a random UUID


def test_the_fast_paths_direct_export_reaches_jaeger_as_the_sdks_spans_did(
    store: jaeger.Jaeger, tmp_path: Path
) -> None:
    """asgi-msgspec at 100 % sampling (``parentbased_traceidratio`` 1.0, as ``bench
    --observability-cost`` runs it) exports its fast path's spans itself (``otlp_direct``);
    beside it the same stack with a span attribute length limit, which keeps today's SDK path.
    The same requests to both (root traces, traces continuing the client's with a trace state,
    a batch, a V2 call, a refused row): Jaeger holds the same traces for both."""
    name = "asgi-msgspec"
    instances: dict[str, dict[str, str]] = {
        "direct": {},
        "sdk": {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4096"},
    }
    rows = model.load_golden(MODEL).rows
    n_features = len(rows[0])

    def requests() -> tuple[list[tuple[str, bytes, dict[str, str]]], dict[str, str]]:
        """The requests, with fresh client ids, and those ids' labels."""
        out: list[tuple[str, bytes, dict[str, str]]] = []
        labels: dict[str, str] = {}
        for i in range(DIRECT_TRACES - 6):
            out.append(("/inference", encode_body(rows[i % len(rows)]), {}))
        for i, state in enumerate(("", "vendor=abc,k=v", "not a valid==state")):
            trace_id, span_id = client.new_ids()
            labels |= {trace_id: f"client-trace-{i}", span_id: f"client-span-{i}"}
            headers = {"traceparent": client.traceparent(trace_id, span_id)}
            if state:
                headers["tracestate"] = state
            out.append(("/inference", encode_body(rows[0]), headers))
        batch = json.dumps({"data": [[0.5] * n_features] * BATCH_ROWS}).encode()
        out.append(("/inference/batch", batch, {}))
        v2 = {"inputs": [{"name": "x", "shape": [1, n_features], "datatype": "FP64",
                          "data": [0.5] * n_features}]}  # fmt: skip
        out.append(("/v2/models/model/infer", json.dumps(v2).encode(), {}))
        out.append(("/inference", b'{"data": [1, 2]}', {}))  # 422: wrong number of features
        return out, labels

    shapes: dict[str, list[str]] = {}
    for instance, extra in instances.items():
        service = f"{name}-{instance}"
        env = {**jaeger.otel_env(store, service_name=service, sampler="parentbased_traceidratio"),
               "OTEL_TRACES_SAMPLER_ARG": "1.0", **extra}  # fmt: skip
        server = servers.start(name, MODEL, env=env, log_dir=tmp_path / instance)
        sent, labels = requests()
        statuses = []
        try:
            host, port = server.host_port
            conn = RawClient(f"http://{host}:{port}")
            try:
                for path, body, headers in sent:
                    statuses.append(conn.send(conn.prepare("POST", path, body, headers)).status)
            finally:
                conn.close()
        finally:
            code = servers.stop(server)  # graceful: flushes the spans
        assert code in (0, -15, 143), servers.tail(server.log_path)
        assert statuses == [200] * (len(sent) - 1) + [422]
        log = server.log_path.read_text()
        if instance == "direct":
            assert "fast path: spans encoded here, posted to" in log, log
        else:
            assert "fast path: spans built through the SDK (span attribute length limit" in log, log
        traces = _jaeger_traces(store, service)
        assert len(traces) == len(sent), (instance, len(traces))
        shapes[instance] = sorted(_shape(t, labels) for t in traces)
    assert shapes["direct"] == shapes["sdk"]
    # And they are the spans the contract asks for (not merely equal to each other).
    spans = [s for t in shapes["direct"] for s in json.loads(t)[1]]
    assert sum(s[0] == INFERENCE_SPAN for s in spans) == DIRECT_TRACES - 1  # not the 422
    assert sum(s[0].startswith("POST ") for s in spans) == DIRECT_TRACES
    assert all(s[2][0].startswith("POST ") for s in spans if s[0] == INFERENCE_SPAN)
    remote = sorted(s[2][0] for s in spans if s[0].startswith("POST ") and s[2])
    assert remote == ["client-span-0", "client-span-1", "client-span-2"]
