"""Tracing on the fast path: decide and record per request, build and export the spans later.

Measured here first (``/tmp``-style micro-benchmark of ``tracing.server_span`` +
``tracing.inference_span`` with a ``BatchSpanProcessor`` into a null exporter, machine shared and
busy, load ~9 on 2 cores, so absolute values are inflated ~3-4x): 285 µs per request sampled,
95 µs per request with ``parentbased_traceidratio`` at 0.01 or 0 (the SDK's propagation
``extract``, a non-recording span and two context attaches still run for every unsampled
request), and the OTLP encoding of one span 91 µs. The goals (+5 µs at 1 %, +20 µs at 100 %)
rule out calling the SDK per request, so the fast path does only this:

- **decide** (:meth:`DeferredSpans.sample`): the W3C ``traceparent``/``tracestate`` headers
  parsed with the SDK propagator's own regular expression and rules, a trace id from the SDK's
  id generator for a root, and the sampler the SDK built from ``OTEL_TRACES_SAMPLER`` /
  ``OTEL_TRACES_SAMPLER_ARG``, evaluated without allocating (:func:`_decider`: the standard
  samplers, ``always_on``/``always_off``/``traceidratio`` and their ``parentbased_`` forms;
  any other sampler is asked through its own ``should_sample``);
- **record** a sampled request's few numbers (:meth:`DeferredSpans.add`: parent, wall-clock
  start and end, status, the predictor call's start and end, rows);
- **encode and export later, off the event loop** (:mod:`otlp_direct`), when the configuration
  is the plain one ``tracing.setup`` installs (decided once, at start, and logged): each record
  is spliced into OTLP protobuf bytes from templates, and one thread posts batches through the
  configured exporter's own client. Building the spans through the SDK costs 54-117 µs per
  request and their OTLP encoding another 53-101 µs (quiet to busy machine), on the server's
  core; splicing costs ~1.6 µs (``scripts/trace_export_cost.py``, ``docs/tracing.md``);
- otherwise **build and export later** (:meth:`DeferredSpans.flush`, on the event loop every
  :data:`FLUSH_INTERVAL_S`, at most :data:`CHUNK` requests per loop iteration so that I/O runs
  in between): each record becomes the same two spans through the SDK itself, with the recorded
  times (``start_span(start_time=...)``, ``end(end_time=...)``), a tracer sharing the
  installed provider's resource, limits and span processor (so ``BatchSpanProcessor`` and the
  OTLP exporter, configured by ``OTEL_*`` as before), whose sampler records what was already
  decided and whose id generator hands the decided trace id back (:class:`_PresetIds`).

The spans are the ones the ASGI path makes (``tracing.server_span``/``inference_span``): the
same names, kinds, attributes, parent, trace state and flags. With a propagator other than the
default W3C trace context (and baggage), the fast path is not taken with tracing on.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from fiber_endpoints import otlp_direct, tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

FLUSH_INTERVAL_S = 0.05
CHUNK = 32  # requests turned into spans per loop iteration (bounds the stall of a flush)

# The SDK propagator's header rules (opentelemetry.trace.propagation.tracecontext).
_TRACEPARENT_MAX = 512
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

# A decided request: (trace id, parent span id or 0, parent flags, tracestate header or None).
Trace = tuple[int, int, int, str | None]
# What the fast path records for a sampled request.
Record = tuple[Trace, str, str, int, int, int, tuple[int, int, int] | None]


def default_propagation() -> bool:
    """True when the global propagator is the default W3C trace context (and baggage): the
    only one :meth:`DeferredSpans.sample` reads itself."""
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    textmap = propagate.get_global_textmap()
    parts = textmap._propagators if isinstance(textmap, CompositePropagator) else [textmap]
    if not any(isinstance(p, TraceContextTextMapPropagator) for p in parts):
        return False
    return all(isinstance(p, TraceContextTextMapPropagator | W3CBaggagePropagator) for p in parts)


def _decider(sampler: Any) -> Callable[[int, int | None], bool] | None:
    """``(trace_id, parent_flags or None) -> sampled`` for the SDK's standard samplers, with
    the SDK's own rules; ``None`` for any other sampler (asked through ``should_sample``)."""
    from opentelemetry.sdk.trace import sampling

    def deciding_as(s: Any, base: Any) -> bool:
        """``s`` is a ``base`` that decides as ``base`` does: the class itself or a subclass
        that only sets it up, as the ones ``OTEL_TRACES_SAMPLER`` names are
        (``ParentBasedTraceIdRatio``, ``_ParentBasedAlwaysOn``, ``_AlwaysOff``, ...)."""
        return isinstance(s, base) and type(s).should_sample is base.should_sample

    def static(s: Any) -> bool | None:
        if deciding_as(s, sampling.StaticSampler):
            return bool(s._decision == sampling.Decision.RECORD_AND_SAMPLE)
        return None

    if static(sampler) is not None:
        on = static(sampler)
        return lambda trace_id, parent: bool(on)
    if (
        deciding_as(sampler, sampling.TraceIdRatioBased)
        and sampler.TRACE_ID_LIMIT == sampling.TraceIdRatioBased.TRACE_ID_LIMIT
    ):
        bound, limit = sampler.bound, sampling.TraceIdRatioBased.TRACE_ID_LIMIT
        return lambda trace_id, parent: trace_id & limit < bound
    if deciding_as(sampler, sampling.ParentBased):
        root = _decider(sampler._root)
        remote_on = static(sampler._remote_parent_sampled)
        remote_off = static(sampler._remote_parent_not_sampled)
        if root is None or remote_on is None or remote_off is None:
            return None
        root_decide = root

        def parent_based(trace_id: int, parent: int | None) -> bool:
            if parent is None:
                return root_decide(trace_id, None)
            return bool(remote_on) if parent & 1 else bool(remote_off)

        return parent_based
    return None


class _PresetIds:
    """The SDK's id generator, except that the next trace id is the one already decided."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.next_trace_id = 0

    def generate_trace_id(self) -> int:
        return self.next_trace_id

    def generate_span_id(self) -> int:
        return int(self.inner.generate_span_id())

    def is_trace_id_random(self) -> bool:
        return bool(self.inner.is_trace_id_random())


class DeferredSpans:
    """The fast path's spans for one worker (one event loop; not thread-safe)."""

    def __init__(self, provider: TracerProvider, features: int, direct: bool | None = None) -> None:
        """``direct``: ``None`` uses :mod:`otlp_direct` when the configuration allows it,
        ``True`` requires it (``ValueError`` when it does not), ``False`` keeps the SDK path."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.features = features
        self._sampler = provider.sampler
        self._decide = _decider(provider.sampler)
        self._new_trace_id: Callable[[], int] = provider.id_generator.generate_trace_id
        self._traceparent = TraceContextTextMapPropagator._TRACEPARENT_HEADER_FORMAT_RE
        self._ids = _PresetIds(provider.id_generator)
        builder = TracerProvider(
            sampler=ALWAYS_ON,  # decided already, with the configured sampler
            resource=provider.resource,
            id_generator=self._ids,  # type: ignore[arg-type]
            span_limits=provider._span_limits,
            active_span_processor=provider._active_span_processor,
            shutdown_on_exit=False,
        )
        self._tracer = builder.get_tracer(tracing.TRACER_NAME)
        self.pending: list[Record] = []
        self._timer: Any = None
        self._loop: Any = None
        self.direct: otlp_direct.BatchExport | None = None
        self.why_sdk = "asked for" if direct is False else ""
        if direct is not False:
            found = otlp_direct.setup(provider, features)
            if isinstance(found, str):
                if direct:
                    raise ValueError(f"no direct OTLP export: {found}")
                self.why_sdk = found
            else:
                self.direct = found

    # -- on the request path ---------------------------------------------------------------
    def sample(self, traceparent: bytes | None, tracestate: bytes | None) -> Trace | None:
        """The decision for one request: its trace, or ``None`` when not sampled."""
        parent_id = 0
        flags: int | None = None
        state: str | None = None
        if traceparent is not None and len(traceparent) <= _TRACEPARENT_MAX:
            match = self._traceparent.search(traceparent.decode("latin-1"))
            if match is not None:
                version, trace_hex, span_hex, flag_hex, rest = match.groups()
                if (
                    trace_hex != _ZERO_TRACE
                    and span_hex != _ZERO_SPAN
                    and version != "ff"
                    and not (version == "00" and rest)
                ):
                    trace_id = int(trace_hex, 16)
                    parent_id, flags = int(span_hex, 16), int(flag_hex, 16)
                    state = tracestate.decode("latin-1") if tracestate is not None else None
        if flags is None:
            trace_id = self._new_trace_id()
        decide = self._decide
        sampled = (
            decide(trace_id, flags)
            if decide is not None
            else self._ask_sampler(trace_id, parent_id, flags, state)
        )
        return (trace_id, parent_id, flags or 0, state) if sampled else None

    def _ask_sampler(
        self, trace_id: int, parent_id: int, flags: int | None, state: str | None
    ) -> bool:
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import SpanKind

        context = (
            self._parent_context((trace_id, parent_id, flags or 0, state))
            if flags is not None
            else None
        )
        result = self._sampler.should_sample(context, trace_id, "POST", SpanKind.SERVER)
        return bool(result.decision == Decision.RECORD_AND_SAMPLE)

    def add(
        self,
        trace: Trace,
        method: str,
        path: str,
        start_ns: int,
        status: int,
        inference: tuple[int, int, int] | None,
    ) -> None:
        """A sampled request, answered: its numbers, queued for the direct export or kept until
        :meth:`flush`."""
        record = (trace, method, path, start_ns, time_ns(), status, inference)
        if self.direct is not None:
            self.direct.put(record)
        else:
            self.pending.append(record)

    # -- later, on the event loop ----------------------------------------------------------
    def start(self, loop: Any) -> None:
        if self.direct is not None:
            self.direct.start()  # its own thread; nothing on the event loop
            return
        self._loop = loop
        self._timer = loop.call_later(FLUSH_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self.flush(CHUNK)
        if self.pending:  # more than a chunk: the rest on the next iterations, I/O in between
            self._timer = self._loop.call_soon(self._tick)
        else:
            self._timer = self._loop.call_later(FLUSH_INTERVAL_S, self._tick)

    def stop(self) -> None:
        """Graceful stop: every recorded request exported (direct) or handed to the SDK's
        span processor (flushed by ``tracing.shutdown`` next)."""
        if self.direct is not None:
            self.direct.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def _parent_context(self, trace: Trace) -> Any:
        from opentelemetry import trace as trace_api
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

        trace_id, parent_id, flags, state = trace
        if not parent_id:
            return None
        parent = SpanContext(
            trace_id=trace_id,
            span_id=parent_id,
            is_remote=True,
            trace_flags=TraceFlags(flags),
            trace_state=TraceState.from_header([state]) if state is not None else None,
        )
        return trace_api.set_span_in_context(NonRecordingSpan(parent))

    def flush(self, limit: int | None = None) -> int:
        """Build and hand to the span processor the spans of up to ``limit`` requests (all by
        default): the SERVER span and its ``model-inference`` child, as ``tracing`` makes them."""
        from opentelemetry import trace as trace_api
        from opentelemetry.trace import SpanKind, Status, StatusCode

        todo = self.pending[:limit]  # a copy: the slice before the delete
        del self.pending[: len(todo)]
        tracer, ids = self._tracer, self._ids
        for trace, method, path, start, end, status, inference in todo:
            ids.next_trace_id = trace[0]
            server = tracer.start_span(
                f"{method} {path}",
                context=self._parent_context(trace),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "http.route": path, "url.path": path},
                start_time=start,
            )
            if inference is not None:
                inf_start, inf_end, rows = inference
                child = tracer.start_span(
                    tracing.INFERENCE_SPAN,
                    context=trace_api.set_span_in_context(server),
                    attributes={tracing.ATTR_ROWS: rows, tracing.ATTR_FEATURES: self.features},
                    start_time=inf_start,
                )
                child.end(end_time=inf_end)
            server.set_attribute("http.response.status_code", status)
            if status >= 500:
                server.set_status(Status(StatusCode.ERROR))
            server.end(end_time=end)
        return len(todo)


def setup(tracer: Any, features: int) -> DeferredSpans | None:
    """The deferred spans for the installed provider, or ``None`` when the fast path cannot
    trace exactly as the ASGI path does (another propagator, or no SDK provider)."""
    provider = tracing.provider()
    if tracer is None or provider is None or not default_propagation():
        return None
    spans = DeferredSpans(provider, features)
    if spans.direct is not None:
        otlp_direct.log(
            f"fast path: spans encoded here, posted to {spans.direct.endpoint} (OTLP/HTTP protobuf)"
        )
    else:
        otlp_direct.log(f"fast path: spans built through the SDK ({spans.why_sdk})")
    return spans
