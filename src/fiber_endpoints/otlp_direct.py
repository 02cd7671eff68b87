"""The fast path's spans straight to OTLP protobuf bytes, posted by the SDK exporter's own client.

Measured first (``scripts/trace_export_cost.py``, pinned to one core, ``docs/tracing.md``): per
recorded request, building its two spans through the SDK (``DeferredSpans.flush``) and the
exporter's ``encode_spans`` cost 54-62 and 53-58 µs on the server's core (quiet machine; twice
that when busy); splicing the same spans into bytes costs ~1.6 µs. So, when the tracing
configuration is the plain one ``tracing.setup`` installs (one ``BatchSpanProcessor`` into the
OTLP/HTTP protobuf exporter, span limits that cannot change our attributes:
:func:`plain_exporter`), a recorded request
(``deferred_tracing.Record``) never becomes an SDK span:

- :class:`Encoder`: the constant parts of an ``ExportTraceServiceRequest`` (resource, scope,
  names, kinds, attribute keys and constant values, statuses, flags) are encoded once by the
  SDK exporter's own encoding functions into protobuf bytes; per span only the ids, times,
  trace state, parent and the varying attributes (status code, rows: cached per value) are
  spliced in. The fields are written in field-number order, as protobuf serialises them.
- :class:`BatchExport`: one background thread, like the ``BatchSpanProcessor`` it replaces
  for these spans and with its settings (``OTEL_BSP_*``: queue size, batch size and delay,
  counted in spans): a bounded queue (drops counted), a batch encoded in chunks with the GIL
  released in between, and posted through the configured exporter's HTTP client (endpoint,
  headers, timeout, compression, session and retries: ``OTEL_EXPORTER_OTLP_*`` as before),
  everything left flushed on stop.

The spans are the SDK path's: ``tests/unit/test_otlp_direct.py`` exports the same records both
ways and compares the decoded protobuf messages field by field.
"""

from __future__ import annotations

import logging
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fiber_endpoints import tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from fiber_endpoints.deferred_tracing import Record

_logger = logging.getLogger(__name__)

SERVER_ATTRIBUTES = 4  # method, route, url.path, status code: what the span limits must allow
CHUNK = 64  # records encoded between two releases of the GIL (~0.2 ms of work)
_TIMES = struct.Struct("<BQBQ")  # start and end: (tag, fixed64) twice


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def plain_exporter(provider: TracerProvider) -> tuple[Any, Any] | str:
    """``(OTLPSpanExporter, BatchSpanProcessor)`` when the provider exports exactly as
    ``tracing.setup`` configures it, so spans encoded here equal the SDK's; else why not."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    active = provider._active_span_processor
    if type(active) is not SynchronousMultiSpanProcessor:
        return f"span processor {type(active).__name__}"
    processors = active._span_processors
    if len(processors) != 1 or type(processors[0]) is not BatchSpanProcessor:
        return (
            f"span processors {[type(p).__name__ for p in processors]}, not one BatchSpanProcessor"
        )
    bsp = processors[0]
    batch = getattr(bsp, "_batch_processor", None)
    exporter = getattr(batch, "_exporter", None)
    if type(exporter) is not OTLPSpanExporter:
        return f"exporter {type(exporter).__name__}, not the OTLP/HTTP protobuf one"
    needed = (
        (batch, ("_max_queue_size", "_schedule_delay", "_max_export_batch_size", "_export_lock")),
        (exporter, ("_client", "_max_request_size", "_metrics", "_shutdown", "_endpoint")),
    )
    for obj, names in needed:
        missing = [n for n in names if not hasattr(obj, n)]
        if missing:
            return f"{type(obj).__name__} without {missing} (another SDK version)"
    limits = provider._span_limits
    if limits.max_span_attributes is not None and limits.max_span_attributes < SERVER_ATTRIBUTES:
        return f"span attribute count limit {limits.max_span_attributes}"
    if limits.max_span_attribute_length is not None:
        return f"span attribute length limit {limits.max_span_attribute_length}"
    return exporter, bsp


class Encoder:
    """Recorded requests -> the bytes of one ``ExportTraceServiceRequest``, equal to what the
    SDK's exporter would encode for the spans ``DeferredSpans.flush`` builds from them."""

    def __init__(
        self, resource: Any, scope: Any, features: int, new_span_id: Callable[[], int]
    ) -> None:
        from opentelemetry.exporter.otlp.proto.common._internal import (
            _encode_instrumentation_scope,
            _encode_resource,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

        self.features = features
        self._new_span_id = new_span_id
        s = Span.SerializeToString
        # Field tags, from protobuf itself (a field set to a value of known length, cut off).
        self._trace_tag = s(Span(trace_id=bytes(16)))[:-16]
        self._span_tag = s(Span(span_id=bytes(8)))[:-8]
        self._parent_tag = s(Span(parent_span_id=bytes(8)))[:-8]
        start_tag = s(Span(start_time_unix_nano=1))[:-8]
        end_tag = s(Span(end_time_unix_nano=1))[:-8]
        assert len(start_tag) == len(end_tag) == 1
        self._start_tag, self._end_tag = start_tag[0], end_tag[0]
        self._spans_tag = ScopeSpans(spans=[Span()]).SerializeToString()[:-1]
        self._scope_spans_tag = ResourceSpans(scope_spans=[ScopeSpans()]).SerializeToString()[:-1]
        self._resource_spans_tag = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans()]
        ).SerializeToString()[:-1]
        # The constant frame: resource and scope before the spans, their schema URLs after.
        self._resource_head = ResourceSpans(resource=_encode_resource(resource)).SerializeToString()
        self._resource_tail = ResourceSpans(schema_url=resource.schema_url).SerializeToString()
        self._scope_head = ScopeSpans(
            scope=_encode_instrumentation_scope(scope)
        ).SerializeToString()
        schema_url: str = (scope.schema_url if scope else None) or ""
        self._scope_tail = ScopeSpans(schema_url=schema_url).SerializeToString()
        self._server: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._server_tail: dict[tuple[int, bool], bytes] = {}
        self._child_tail: dict[int, bytes] = {}
        self._child_head = s(Span(name=tracing.INFERENCE_SPAN, kind=Span.SPAN_KIND_INTERNAL))
        self._states: dict[str, bytes] = {}
        self._lengths: dict[int, bytes] = {}

    @classmethod
    def for_provider(cls, provider: TracerProvider, tracer_name: str, features: int) -> Encoder:
        """The encoder for spans a tracer named ``tracer_name`` of ``provider`` makes."""
        tracer = provider.get_tracer(tracer_name)
        scope = getattr(tracer, "_instrumentation_scope", None)
        return cls(provider.resource, scope, features, provider.id_generator.generate_span_id)

    # -- the pieces, each encoded once by protobuf with the SDK exporter's functions -------
    def _server_head(self, method: str, path: str) -> tuple[bytes, bytes]:
        """``(name + kind, the constant attributes)`` of the SERVER span of one route."""
        from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        head = Span(name=f"{method} {path}", kind=Span.SPAN_KIND_SERVER).SerializeToString()
        attrs = {"http.request.method": method, "http.route": path, "url.path": path}
        encoded = Span(attributes=_encode_attributes(attrs)).SerializeToString()
        self._server[(method, path)] = (head, encoded)
        return head, encoded

    def _tail(self, attributes: dict[str, Any], error: bool, remote: bool) -> bytes:
        """The fields after the times: the varying attributes, the status, the flags."""
        from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes
        from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
            _encode_status,
            _span_flags,
        )
        from opentelemetry.proto.trace.v1.trace_pb2 import Span
        from opentelemetry.trace import SpanContext, Status, StatusCode

        status = Status(StatusCode.ERROR) if error else Status()
        parent = SpanContext(1, 1, is_remote=True) if remote else None
        span = Span(
            attributes=_encode_attributes(attributes),
            status=_encode_status(status),
            flags=_span_flags(parent),
        )
        return bytes(span.SerializeToString())

    def _server_status(self, status: int, remote: bool) -> bytes:
        tail = self._tail({"http.response.status_code": status}, status >= 500, remote)
        self._server_tail[(status, remote)] = tail
        return tail

    def _rows(self, rows: int) -> bytes:
        tail = self._tail(
            {tracing.ATTR_ROWS: rows, tracing.ATTR_FEATURES: self.features}, False, False
        )
        if len(self._child_tail) < 4096:
            self._child_tail[rows] = tail
        return tail

    def _state(self, header: str) -> bytes:
        """The trace state field as the SDK writes it: parsed by ``TraceState.from_header``
        (invalid -> empty), then ``key=value`` joined by commas; empty -> absent."""
        from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
            _encode_trace_state,
        )
        from opentelemetry.proto.trace.v1.trace_pb2 import Span
        from opentelemetry.trace import TraceState

        text = _encode_trace_state(TraceState.from_header([header]))
        piece = Span(trace_state=text).SerializeToString() if text else b""
        if len(self._states) >= 256:
            self._states.clear()
        self._states[header] = piece
        return piece

    def _length(self, n: int) -> bytes:
        piece = self._lengths.get(n)
        if piece is None:
            piece = self._lengths[n] = _varint(n)
        return piece

    # -- per span: splicing -----------------------------------------------------------------
    def spans(self, records: Sequence[Record]) -> bytes:
        """The ``spans`` fields of one ``ScopeSpans`` for ``records``, in the SDK path's order
        (each child ends, so is exported, before its SERVER span)."""
        out: list[bytes] = []
        add = out.append
        trace_tag, span_tag, parent_tag = self._trace_tag, self._span_tag, self._parent_tag
        spans_tag, length, times = self._spans_tag, self._length, _TIMES.pack
        start_tag, end_tag = self._start_tag, self._end_tag
        new_id = self._new_span_id
        for (trace_id, parent_id, _flags, state), method, path, start, end, status, inf in records:
            tid = trace_tag + trace_id.to_bytes(16, "big")
            sid = new_id().to_bytes(8, "big")
            state_piece = b""
            if state is not None:
                cached = self._states.get(state)
                state_piece = self._state(state) if cached is None else cached
            remote = parent_id != 0
            head = self._server.get((method, path)) or self._server_head(method, path)
            tail = self._server_tail.get((status, remote)) or self._server_status(status, remote)
            if inf is not None:
                inf_start, inf_end, rows = inf
                child = b"".join((
                    tid, span_tag, new_id().to_bytes(8, "big"), state_piece,
                    parent_tag, sid, self._child_head,
                    times(start_tag, inf_start, end_tag, inf_end),
                    self._child_tail.get(rows) or self._rows(rows),
                ))  # fmt: skip
                add(spans_tag)
                add(length(len(child)))
                add(child)
            server = b"".join((
                tid, span_tag, sid, state_piece,
                parent_tag + parent_id.to_bytes(8, "big") if remote else b"",
                head[0], times(start_tag, start, end_tag, end), head[1], tail,
            ))  # fmt: skip
            add(spans_tag)
            add(length(len(server)))
            add(server)
        return b"".join(out)

    def wrap(self, spans: bytes) -> bytes:
        """One ``ExportTraceServiceRequest`` around the output of :meth:`spans`: one resource,
        one scope (the SDK groups spans by them; the fast path's share both)."""
        scope = b"".join((self._scope_head, spans, self._scope_tail))
        resource = b"".join((self._resource_head, self._scope_spans_tag, _varint(len(scope)),
                             scope, self._resource_tail))  # fmt: skip
        return b"".join((self._resource_spans_tag, _varint(len(resource)), resource))

    def request(self, records: Sequence[Record]) -> bytes:
        return self.wrap(self.spans(records))


class BatchExport:
    """The ``BatchSpanProcessor``'s job for recorded requests: a bounded queue filled on the
    event loop (:meth:`put`), drained by one thread that encodes and posts batches."""

    def __init__(self, encoder: Encoder, exporter: Any, bsp: Any) -> None:
        batch = bsp._batch_processor
        self.encoder = encoder
        self.exporter = exporter
        # The processor's settings are in spans; a recorded request makes at most two.
        self.max_queue = max(1, batch._max_queue_size // 2)
        self.batch = max(1, batch._max_export_batch_size // 2)
        self.delay_s = float(batch._schedule_delay)
        self._export_lock = batch._export_lock  # one export at a time on the exporter's session
        self.queue: deque[Record] = deque()
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return str(self.exporter._endpoint)

    def put(self, record: Record) -> None:
        """On the request path: queue one recorded request (dropped, and counted, when full)."""
        queue = self.queue
        if len(queue) >= self.max_queue:
            if not self.dropped:
                _logger.warning("span queue full (%d requests): dropping", self.max_queue)
            self.dropped += 1
            return
        queue.append(record)
        if len(queue) >= self.batch and not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="FastPathSpanExport", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Export everything queued (graceful stop), then return; at most ``timeout_s``."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        else:
            self.drain()
        if self.dropped:
            _logger.warning("%d traced requests dropped (span queue full)", self.dropped)

    def _run(self) -> None:
        while not self._stopping:
            woken = self._wake.wait(self.delay_s)
            self._wake.clear()
            # As the BatchSpanProcessor: full batches when woken by one, everything on the timer.
            self.drain(everything=not woken)
        self.drain()

    def drain(self, everything: bool = True) -> None:
        """Encode and post what is queued, a batch per request to the collector: every full
        batch, and the rest too when ``everything``."""
        queue, encoder = self.queue, self.encoder
        while len(queue) >= self.batch or (everything and queue):
            n = min(self.batch, len(queue))
            records = [queue.popleft() for _ in range(n)]
            parts = []
            for i in range(0, n, CHUNK):
                parts.append(encoder.spans(records[i : i + CHUNK]))
                time.sleep(0)  # let the event loop's thread have the GIL between chunks
            spans = sum(2 if r[6] is not None else 1 for r in records)
            self._post(encoder.wrap(b"".join(parts)), spans)

    def _post(self, data: bytes, spans: int) -> None:
        """What ``OTLPSpanExporter.export`` does after its encoding: the size check, the
        exporter's metrics, and its HTTP client (compression, headers, retries, timeout)."""
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
        from opentelemetry.exporter.otlp.proto.http._common import (
            RequestPayloadTooLargeError,
            _is_request_too_large,
        )

        exporter = self.exporter
        if exporter._shutdown:
            _logger.warning("exporter already shut down: %d spans not exported", spans)
            self.failed += spans
            return
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._export_lock, exporter._metrics.export_operation(spans) as result:
                if _is_request_too_large(data, exporter._max_request_size):
                    _logger.warning("dropping %d spans: %d bytes over max_request_size %d",
                                    spans, len(data), exporter._max_request_size)  # fmt: skip
                    result.error = RequestPayloadTooLargeError(f"{len(data)} bytes")
                    self.failed += spans
                    return
                sent = exporter._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    self.failed += spans
                    return
            self.exported += spans
        except Exception:  # the exporter logs its own failures; never kill the thread
            _logger.exception("exporting %d spans failed", spans)
            self.failed += spans
        finally:
            detach(token)


def setup(provider: TracerProvider, features: int) -> BatchExport | str:
    """The direct export for ``provider``'s plain configuration, or why it cannot be used."""
    found = plain_exporter(provider)
    if isinstance(found, str):
        return found
    exporter, bsp = found
    encoder = Encoder.for_provider(provider, tracing.TRACER_NAME, features)
    return BatchExport(encoder, exporter, bsp)


def log(message: str) -> None:
    print(f"tracing: {message}", file=sys.stderr, flush=True)
