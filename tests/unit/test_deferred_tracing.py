"""Tracing on the fast path (``deferred_tracing.py``): the fast path's spans equal the ASGI
path's (the SDK's own spans), unsampled requests make none and stay on the fast path, and the
sampling decisions equal the SDK samplers' on the same trace ids."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from fake_transport import FakeTransport
from fiber_endpoints import deferred_tracing, model, tracing
from fiber_endpoints.stacks import asgi_msgspec, fast_path
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler

MODEL = model.MODELS_DIR / "regression" / "model.txt"
GOOD = json.dumps({"data": [0.5] * 20}).encode()
PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def predictor() -> Iterator[CapiPredictor]:
    p = CapiPredictor(MODEL, threads=1)
    yield p
    p.close()


def _traced_app(
    predictor: CapiPredictor, sampler: Sampler = ALWAYS_ON
) -> tuple[asgi_msgspec.App, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        sampler=sampler, resource=Resource.create({"service.name": "t"}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(tracing.TRACER_NAME)
    deferred = deferred_tracing.DeferredSpans(provider, predictor.num_features)
    handler = Handler(predictor, asgi_msgspec.STACK_NAME, tracer)
    return asgi_msgspec.App(handler, tracer, deferred=deferred), exporter


def _fast(app: asgi_msgspec.App, requests: bytes) -> FakeTransport:
    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="warning")
    protocol = fast_path.FastPathProtocol(config, ServerState(), {}, _loop=loop)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    assert protocol._fast_routes and protocol._spans is not None  # tracing on, fast path on
    protocol.data_received(requests)
    loop.run_until_complete(asyncio.sleep(0))  # unsampled rows wait for the turn's batch
    protocol.connection_lost(None)
    loop.close()
    return transport


def _request(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path, len(body), extra, body)
    )


def _asgi(app: asgi_msgspec.App, path: str, body: bytes, traceparent: bytes | None) -> int:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def _shape(span: ReadableSpan) -> dict[str, Any]:
    """Everything of a span but its ids and times."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code,
        "flags": int(span.context.trace_flags),
        "trace_state": span.context.trace_state.to_header(),
        "parent_remote": span.parent.is_remote if span.parent else None,
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


@pytest.mark.parametrize("path", ["/inference", "/v2/models/model/infer"])
@pytest.mark.parametrize("traceparent", [PARENT, None])
def test_fast_path_spans_equal_the_asgi_paths(
    predictor: CapiPredictor, path: str, traceparent: bytes | None
) -> None:
    body = GOOD
    if path.startswith("/v2"):
        inputs = [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.5] * 20}]
        body = json.dumps({"inputs": inputs}).encode()
    app, exporter = _traced_app(predictor)
    assert _asgi(app, path, body, traceparent) == 200
    asgi_spans = exporter.get_finished_spans()
    exporter.clear()
    extra = b"traceparent: %s\r\ntracestate: k=v\r\n" % traceparent if traceparent else b""
    transport = _fast(app, _request(path.encode(), body, extra))
    assert len(transport.writes) == 1  # answered on the fast path
    assert app.deferred is not None and exporter.get_finished_spans() == ()  # not yet built
    assert app.deferred.flush() == 1
    fast_spans = exporter.get_finished_spans()
    assert [s.name for s in fast_spans] == [s.name for s in asgi_spans]
    for fast, asgi in zip(fast_spans, asgi_spans, strict=True):
        want = _shape(asgi)
        if traceparent is not None:  # the fast request also sent a tracestate
            want["trace_state"] = "k=v"
        assert _shape(fast) == want
    inference, server = fast_spans
    assert server.kind == SpanKind.SERVER and inference.parent is not None
    assert server.context is not None and inference.parent.span_id == server.context.span_id
    assert inference.context is not None
    assert inference.context.trace_id == server.context.trace_id
    if traceparent is not None:
        assert f"{server.context.trace_id:032x}" == PARENT.split(b"-")[1].decode()
        assert server.parent is not None and f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    else:
        assert server.parent is None
    assert server.start_time is not None and inference.start_time is not None
    assert server.end_time is not None and inference.end_time is not None
    assert server.start_time <= inference.start_time <= inference.end_time <= server.end_time


def test_a_fast_path_500_is_traced_as_an_error(
    predictor: CapiPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predictor raising (it never does on a checked row; forced by replacing it, as the
    batching tests do): each sampled request answered 500 on the fast path -- alone in its turn,
    and waiting in the turn's batch -- has its SERVER span say 500 and ERROR, as the ASGI path's
    does, instead of no span at all."""
    import uvicorn
    from uvicorn.server import ServerState

    def broken(*args: Any) -> Any:
        raise RuntimeError("forced")

    monkeypatch.setattr(predictor, "predict_row", broken)
    monkeypatch.setattr(predictor, "predict_rows", broken)
    app, exporter = _traced_app(predictor)
    assert app.batcher is not None and app.deferred is not None
    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="critical")
    sampled = _request(b"/inference", GOOD, b"traceparent: %s\r\n" % PARENT)
    connections = []
    for _ in range(2):  # the turn's first (answered at once), then one waiting in its batch
        protocol = fast_path.FastPathProtocol(config, ServerState(), {}, _loop=loop)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(sampled)
        connections.append((protocol, transport))
    assert connections[1][1].writes == []  # waiting for the turn's end
    loop.run_until_complete(asyncio.sleep(0))
    for protocol, transport in connections:
        assert b"".join(transport.writes).startswith(b"HTTP/1.1 500 ")
        protocol.connection_lost(None)
    loop.close()
    assert app.deferred.flush() == 2
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [(s.attributes or {}).get("http.response.status_code") for s in servers] == [500, 500]
    assert [s.status.status_code for s in servers] == [StatusCode.ERROR, StatusCode.ERROR]


def test_unsampled_requests_make_no_spans_and_stay_fast(predictor: CapiPredictor) -> None:
    app, exporter = _traced_app(predictor, ParentBased(TraceIdRatioBased(0.0)))
    unsampled = b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n"
    requests = _request(b"/inference", GOOD) * 3 + _request(b"/inference", GOOD, unsampled)
    transport = _fast(app, requests)
    assert len(transport.writes) == 4
    assert app.deferred is not None and app.deferred.flush() == 0
    assert exporter.get_finished_spans() == ()
    # A sampled parent is followed (parentbased) even at ratio 0.
    _fast(app, _request(b"/inference", GOOD, b"traceparent: %s\r\n" % PARENT))
    assert app.deferred.flush() == 1 and len(exporter.get_finished_spans()) == 2


def _decides_as_the_sdk(decide: Any, sampler: Sampler, seed: int, n: int) -> None:
    """``decide`` against the SDK sampler's own ``should_sample`` on ``n`` random traces, as
    roots and under sampled and unsampled remote parents."""
    rng = random.Random(seed)
    for _ in range(n):
        trace_id = rng.getrandbits(128)
        flags = rng.choice([None, 0, 1])
        context = None
        if flags is not None:
            parent = SpanContext(trace_id, 1, is_remote=True, trace_flags=TraceFlags(flags))
            context = set_span_in_context(NonRecordingSpan(parent))
        want = sampler.should_sample(context, trace_id, "x").decision.is_sampled()  # type: ignore[no-untyped-call]
        assert decide(trace_id, flags) == want


@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.01),
        TraceIdRatioBased(0.5),
        ParentBased(ALWAYS_ON),
        ParentBased(TraceIdRatioBased(0.01)),
        ParentBased(TraceIdRatioBased(0.3)),
    ],
    ids=repr,
)
def test_decisions_equal_the_sdk_samplers(sampler: Sampler) -> None:
    decide = deferred_tracing._decider(sampler)
    assert decide is not None
    _decides_as_the_sdk(decide, sampler, seed=7, n=3000)


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("always_on", None),
        ("always_off", None),
        ("parentbased_always_on", None),
        ("parentbased_always_off", None),
        ("traceidratio", "0.25"),
        ("parentbased_traceidratio", "0.01"),
        ("parentbased_traceidratio", "1.0"),
    ],
)
def test_the_samplers_otel_traces_sampler_names_are_decided_in_place(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str | None
) -> None:
    """As the SDK builds them from the environment (``parentbased_traceidratio`` is its own
    class, ``ParentBasedTraceIdRatio``): none is left to ``should_sample`` per request (~15 µs
    per request on the server, sampled or not), and each decides as the SDK does."""
    from opentelemetry.sdk.trace import sampling

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    sampler = sampling._get_from_env_or_default()
    decide = deferred_tracing._decider(sampler)
    assert decide is not None, type(sampler).__name__
    _decides_as_the_sdk(decide, sampler, seed=5, n=2000)


def test_a_sampler_deciding_otherwise_is_asked_itself() -> None:
    class Odd(TraceIdRatioBased):
        def should_sample(self, *args: Any, **kwargs: Any) -> Any:
            return ALWAYS_ON.should_sample(*args, **kwargs)

    assert deferred_tracing._decider(Odd(0.0)) is None
    assert deferred_tracing._decider(ParentBased(Odd(0.0))) is None


def test_another_propagator_keeps_tracing_on_the_asgi_path() -> None:
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    class Other(TextMapPropagator):
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            return context

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            pass

        @property
        def fields(self) -> set[str]:
            return set()

    assert deferred_tracing.default_propagation()
    default = propagate.get_global_textmap()
    propagate.set_global_textmap(Other())
    try:
        assert not deferred_tracing.default_propagation()
    finally:
        propagate.set_global_textmap(default)


def test_sampled_rows_answered_by_the_batch_get_their_own_spans(predictor: CapiPredictor) -> None:
    """Three pipelined requests on one connection, all sampled: the first is answered at once,
    the other two wait for the turn's batch. Each gets its SERVER span and a model-inference
    child (its own row: 1) inside it, in its own trace."""
    app, exporter = _traced_app(predictor, ALWAYS_ON)
    assert app.batcher is not None
    batches = app.batcher.batches
    transport = _fast(app, _request(b"/inference", GOOD) * 3)
    assert len(transport.writes) == 3
    assert app.batcher.batches == batches + 1  # the two waiting rows: one predictor call
    assert app.deferred is not None and app.deferred.flush() == 3
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    children = [s for s in spans if s.name == tracing.INFERENCE_SPAN]
    assert len(servers) == len(children) == 3
    assert len({s.context.trace_id for s in servers if s.context is not None}) == 3
    for server in servers:
        assert server.context is not None and server.start_time and server.end_time
        [child] = [c for c in children if c.parent and c.parent.span_id == server.context.span_id]
        assert child.attributes is not None and child.attributes[tracing.ATTR_ROWS] == 1
        assert child.start_time and child.end_time
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time
