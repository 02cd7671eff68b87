"""OpenTelemetry setup shared by every Python stack (``docs/contract.md``, Tracing).

Tracing is on only when an OTLP endpoint is configured and the SDK is not disabled; otherwise
``setup`` returns ``None``, nothing from OpenTelemetry is imported, and the helpers below are
no-ops. Everything else (service name, sampler, exporter endpoint, batch sizes) comes from the
standard ``OTEL_*`` variables, read by the SDK itself.

A stack does three things:

    tracer = tracing.setup("my-stack")               # once, at start
    with tracing.inference_span(tracer, rows, n):   # around the predictor call
        ...
    tracing.shutdown()                               # on graceful stop: flushes the spans

A stack that is not FastAPI makes its own SERVER span with ``server_span``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

INFERENCE_SPAN = "model-inference"
TRACER_NAME = "fiber_endpoints"
ATTR_ROWS = "inference.rows"
ATTR_FEATURES = "inference.features"

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACED_HEADERS = ("traceparent", "tracestate")

_provider: TracerProvider | None = None


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """The contract's rule: an OTLP endpoint is set and ``OTEL_SDK_DISABLED`` is not ``true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARS)


def setup(default_service_name: str) -> Tracer | None:
    """Install a global TracerProvider exporting OTLP/HTTP in batches; ``None`` when disabled.

    The service name is ``OTEL_SERVICE_NAME`` or ``default_service_name``; the sampler is read
    by the SDK from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``. Calling it again returns
    a tracer from the provider already installed.
    """
    global _provider
    if not enabled():
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if _provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or default_service_name
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
    return _provider.get_tracer(TRACER_NAME)


def provider() -> TracerProvider | None:
    """The provider ``setup`` installed, if any (``deferred_tracing`` builds spans with it)."""
    return _provider


def shutdown() -> None:
    """Flush pending spans and stop the exporter (graceful stop). Safe to call when disabled."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def inference_span(tracer: Tracer | None, rows: int, features: int) -> AbstractContextManager[Any]:
    """The ``model-inference`` span around the predictor call; a no-op without a tracer."""
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(
        INFERENCE_SPAN, attributes={ATTR_ROWS: rows, ATTR_FEATURES: features}
    )


class ServerSpanHandle:
    """What ``server_span`` yields: lets the stack record the response status."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def set_status_code(self, status: int) -> None:
        if self.span is None:
            return
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_status(Status(StatusCode.ERROR))


_NO_SPAN = ServerSpanHandle(None)

Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]] | Iterable[tuple[str, str]]


def _trace_headers(headers: Headers) -> dict[str, str]:
    """The W3C trace-context headers, lower-cased, from a mapping or ASGI-style pairs."""
    pairs: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        name = name.lower()
        if name in TRACED_HEADERS:
            carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return carrier


@contextmanager
def server_span(
    tracer: Tracer | None, method: str, route: str, headers: Headers
) -> Iterator[ServerSpanHandle]:
    """A SERVER span named like FastAPI's instrumentation (``"POST /inference"``), child of the
    request's ``traceparent`` when there is one. Yields a handle for the response status."""
    if tracer is None:
        yield _NO_SPAN
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    context = extract(_trace_headers(headers))
    attributes = {"http.request.method": method, "http.route": route, "url.path": route}
    with tracer.start_as_current_span(
        f"{method} {route}", context=context, kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield ServerSpanHandle(span)
