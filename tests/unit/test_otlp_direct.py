"""The fast path's direct OTLP export (``otlp_direct.py``) sends what the SDK path sends.

The same recorded requests go both ways into a real OTLP/HTTP receiver on loopback (a small
HTTP server keeping each request's body): through the SDK (``DeferredSpans.flush`` with the
direct export off, ``BatchSpanProcessor``, the OTLP exporter's own encoding) and through the
byte templates. Both bodies are decoded by protobuf's generated classes and compared field by
field; only the span ids are random, so those are compared as parentage instead.
"""

from __future__ import annotations

import gzip
import http.server
import random
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fiber_endpoints import deferred_tracing, otlp_direct, tracing

FEATURES = 20
PARENT = 0xB7AD6B7169203331


class Receiver:
    """An OTLP/HTTP receiver on loopback that keeps every request's (decompressed) body."""

    def __init__(self) -> None:
        bodies: list[bytes] = []
        headers: list[dict[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                encoding = self.headers.get("content-encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                bodies.append(body)
                headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies, self.headers = bodies, headers
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(b) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _provider(
    url: str,
    *,
    compression: Compression | None = None,
    limits: SpanLimits | None = None,
    **bsp: Any,
) -> TracerProvider:
    """What ``tracing.setup`` installs, pointed at ``url``."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: "asgi-msgspec", "deployment.environment": "t"}),
        span_limits=limits,
        shutdown_on_exit=False,
    )
    exporter = OTLPSpanExporter(endpoint=url, compression=compression, headers={"x-token": "s3"})
    provider.add_span_processor(BatchSpanProcessor(exporter, **bsp))
    return provider


def _records(n: int = 60, seed: int = 3) -> list[deferred_tracing.Record]:
    """Every shape the fast path records: root or remote parent (sampled or not), with or
    without a trace state (valid, several entries, invalid), each route, 2xx/4xx/5xx, a request
    that failed before the predictor (no ``model-inference`` span), one row or many."""
    rng = random.Random(seed)
    states = [None, "k=v", "vendor=abc,other=12@x", "not a valid==header"]
    paths = ["/inference", "/inference/batch", "/v2/models/model/infer"]
    out: list[deferred_tracing.Record] = []
    t = 1_764_000_000_000_000_000
    for i in range(n):
        remote = i % 3 != 0
        trace = (
            rng.getrandbits(128) or 1,
            PARENT + i if remote else 0,
            rng.choice([0, 1]) if remote else 0,
            rng.choice(states) if remote else None,
        )
        status = rng.choice([200, 200, 200, 400, 413, 500, 503])
        inference = (
            None if status in (400, 413) else (t + 20_000, t + 45_000 + i, rng.randint(1, 700))
        )
        out.append((trace, "POST", paths[i % 3], t, t + 60_000 + 7 * i, status, inference))
        t += 100_000
    return out


def _expected_spans(records: list[deferred_tracing.Record]) -> int:
    return sum(2 if r[6] is not None else 1 for r in records)


def _via_sdk(receiver: Receiver, records: list[deferred_tracing.Record]) -> list[Any]:
    provider = _provider(receiver.url)
    spans = deferred_tracing.DeferredSpans(provider, FEATURES, direct=False)
    assert spans.direct is None
    spans.pending = list(records)
    spans.flush()
    provider.shutdown()  # the BatchSpanProcessor exports everything, then stops
    return receiver.requests()


def _via_direct(
    receiver: Receiver, records: list[deferred_tracing.Record], **bsp: Any
) -> tuple[list[Any], otlp_direct.BatchExport]:
    provider = _provider(receiver.url, **bsp)
    spans = deferred_tracing.DeferredSpans(provider, FEATURES, direct=True)
    assert spans.direct is not None
    for record in records:
        spans.direct.put(record)
    spans.stop()
    provider.shutdown()
    return receiver.requests(), spans.direct


def _flatten(requests: list[Any]) -> tuple[list[Any], list[tuple[Any, str, Any, str]]]:
    spans, frames = [], []
    for request in requests:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                frames.append((rs.resource, rs.schema_url, ss.scope, ss.schema_url))
                spans += list(ss.spans)
    return spans, frames


def _without_ids(spans: list[Any]) -> list[Any]:
    """Each span with its own and its parent's span id replaced by parentage: a parent made
    here becomes the index of that span in the export; a remote parent keeps its id."""
    index = {s.span_id: i for i, s in enumerate(spans)}
    assert len(index) == len(spans), "span ids repeat"
    assert all(len(s.span_id) == 8 and s.span_id != bytes(8) for s in spans)
    out = []
    for s in spans:
        copy = Span()
        copy.CopyFrom(s)
        copy.ClearField("span_id")
        if s.parent_span_id in index:
            copy.parent_span_id = b"local:%d" % index[s.parent_span_id]
        out.append(copy)
    return out


def test_direct_export_equals_the_sdk_paths_field_by_field() -> None:
    records = _records()
    sdk_receiver, direct_receiver = Receiver(), Receiver()
    try:
        sdk_spans, sdk_frames = _flatten(_via_sdk(sdk_receiver, records))
        direct_spans, direct_frames = _flatten(_via_direct(direct_receiver, records)[0])
    finally:
        sdk_receiver.close()
        direct_receiver.close()
    assert len(sdk_spans) == _expected_spans(records)  # the reference is complete
    assert len(direct_spans) == len(sdk_spans)
    # Resource, scope and schema URLs: one frame on each side, equal.
    assert len(set(map(repr, sdk_frames))) == 1 and direct_frames[0] == sdk_frames[0]
    resource = {kv.key: kv.value.string_value for kv in direct_frames[0][0].attributes}
    assert resource[SERVICE_NAME] == "asgi-msgspec" and resource["deployment.environment"] == "t"
    assert direct_frames[0][2].name == tracing.TRACER_NAME
    for i, (want, got) in enumerate(
        zip(_without_ids(sdk_spans), _without_ids(direct_spans), strict=True)
    ):
        for field in Span.DESCRIPTOR.fields:
            assert getattr(got, field.name) == getattr(want, field.name), (i, field.name)
        assert got == want, i
    # And the bytes are what protobuf itself writes for those messages (field order and all).
    direct_receiver_bodies = direct_receiver.bodies
    assert direct_receiver_bodies[0] == (
        ExportTraceServiceRequest.FromString(direct_receiver_bodies[0]).SerializeToString()
    )


def test_what_the_records_say_is_in_the_spans(receiver: Receiver) -> None:
    """The direct bytes read back against the records themselves, not against the SDK."""
    records = _records(12, seed=11)
    spans, _ = _flatten(_via_direct(receiver, records)[0])
    servers = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    children = [s for s in spans if s.kind == Span.SPAN_KIND_INTERNAL]
    assert len(servers) == len(records) and len(children) == sum(r[6] is not None for r in records)
    by_id = {s.span_id: s for s in servers}
    for server, (trace, method, path, start, end, status, _) in zip(servers, records, strict=True):
        assert server.trace_id == trace[0].to_bytes(16, "big")
        assert server.name == f"{method} {path}"
        assert (server.start_time_unix_nano, server.end_time_unix_nano) == (start, end)
        attrs = {kv.key: kv.value for kv in server.attributes}
        assert [kv.key for kv in server.attributes] == [
            "http.request.method", "http.route", "url.path", "http.response.status_code"
        ]  # fmt: skip
        assert attrs["http.response.status_code"].int_value == status
        assert attrs["url.path"].string_value == path
        want = Status.STATUS_CODE_ERROR if status >= 500 else Status.STATUS_CODE_UNSET
        assert server.status.code == want
        assert server.parent_span_id == (trace[1].to_bytes(8, "big") if trace[1] else b"")
        assert server.flags & 0x100 and bool(server.flags & 0x200) == bool(trace[1])
    for child in children:
        parent = by_id[child.parent_span_id]
        assert child.trace_id == parent.trace_id and child.trace_state == parent.trace_state
        assert parent.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= parent.end_time_unix_nano
        attrs = {kv.key: kv.value.int_value for kv in child.attributes}
        assert attrs[tracing.ATTR_FEATURES] == FEATURES and attrs[tracing.ATTR_ROWS] >= 1
        assert child.flags == 0x100


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_the_exporters_own_client_sends_it(receiver: Receiver, compression: Compression) -> None:
    """Compression and headers come from the configured exporter, not from this module."""
    provider = _provider(receiver.url, compression=compression)
    spans = deferred_tracing.DeferredSpans(provider, FEATURES)
    assert spans.direct is not None
    records = _records(5)
    for r in records:
        spans.direct.put(r)
    spans.stop()
    provider.shutdown()
    assert receiver.headers[0]["content-encoding"] == compression.value
    assert receiver.headers[0]["x-token"] == "s3"
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"
    assert len(_flatten(receiver.requests())[0]) == _expected_spans(records)


def test_batches_follow_the_processors_settings_and_drops_are_counted(receiver: Receiver) -> None:
    records = [r for r in _records(40) if r[6] is not None]  # two spans each
    # Queue 8 spans = 4 requests, batches of 4 spans = 2 requests; the thread is not started,
    # so nothing leaves the queue before stop().
    requests, direct = _via_direct(receiver, records[:10], max_queue_size=8,
                                   max_export_batch_size=4)  # fmt: skip
    assert direct.dropped == 6 and direct.exported == 8 and direct.failed == 0
    assert [len(_flatten([r])[0]) for r in requests] == [4, 4]
    got = [s.trace_id for s in _flatten(requests)[0] if s.kind == Span.SPAN_KIND_SERVER]
    assert got == [r[0][0].to_bytes(16, "big") for r in records[:4]]  # the first four, in order


def test_the_thread_exports_full_batches_at_once_and_the_rest_on_stop(receiver: Receiver) -> None:
    """As the BatchSpanProcessor: a full batch wakes the thread; a part batch waits for the
    delay (a minute here), or the stop."""
    provider = _provider(receiver.url, max_export_batch_size=8, schedule_delay_millis=60_000)
    spans = deferred_tracing.DeferredSpans(provider, FEATURES)
    assert spans.direct is not None
    spans.direct.start()
    records = [r for r in _records(40) if r[6] is not None][:5]  # 10 spans: a batch and a part
    for r in records:
        spans.direct.put(r)
    for _ in range(200):
        if receiver.bodies:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.1)  # the part batch would have been posted by now, were it
    assert [len(_flatten([r])[0]) for r in receiver.requests()] == [8]
    spans.stop()
    assert [len(_flatten([r])[0]) for r in receiver.requests()] == [8, 2]
    provider.shutdown()


def _fallback(provider: TracerProvider) -> str:
    found = otlp_direct.plain_exporter(provider)
    assert isinstance(found, str)
    with pytest.raises(ValueError, match="no direct OTLP export"):
        deferred_tracing.DeferredSpans(provider, FEATURES, direct=True)
    spans = deferred_tracing.DeferredSpans(provider, FEATURES)
    assert spans.direct is None and spans.why_sdk == found
    provider.shutdown()
    return found


def test_any_other_configuration_keeps_the_sdk_path(receiver: Receiver) -> None:
    # Not the OTLP/HTTP exporter behind a BatchSpanProcessor.
    p = TracerProvider(shutdown_on_exit=False)
    p.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert "BatchSpanProcessor" in _fallback(p)
    p = TracerProvider(shutdown_on_exit=False)
    p.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    assert "InMemorySpanExporter" in _fallback(p)
    # A second processor beside the exporter's.
    p = _provider(receiver.url)
    p.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert "not one BatchSpanProcessor" in _fallback(p)
    # Span limits that would change the attributes.
    assert "length" in _fallback(_provider(receiver.url, limits=SpanLimits(max_attribute_length=5)))
    assert "count" in _fallback(_provider(receiver.url, limits=SpanLimits(max_span_attributes=3)))
    # The plain one does not.
    plain = _provider(receiver.url, limits=SpanLimits(max_span_attributes=4))
    assert not isinstance(otlp_direct.plain_exporter(plain), str)
    plain.shutdown()
