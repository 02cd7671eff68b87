"""The shared tracing helpers, in process, with an in-memory span exporter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from fiber_endpoints import tracing

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_SERVICE_NAME": "fastapi"}, False),
    ],
)
def test_enabled_follows_the_contract(environ: dict[str, str], on: bool) -> None:
    assert tracing.enabled(environ) is on


def test_disabled_setup_imports_no_opentelemetry() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        "import sys\n"
        "from fiber_endpoints import tracing\n"
        "assert tracing.setup('x') is None\n"
        "with tracing.inference_span(None, 1, 20):\n"
        "    pass\n"
        "with tracing.server_span(None, 'POST', '/inference', {}) as h:\n"
        "    h.set_status_code(200)\n"
        "tracing.shutdown()\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


@pytest.fixture
def exporter_and_tracer() -> tuple[InMemorySpanExporter, Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("test")


def test_server_span_continues_the_callers_trace(
    exporter_and_tracer: tuple[InMemorySpanExporter, Tracer],
) -> None:
    exporter, tracer = exporter_and_tracer
    headers = [(b"Traceparent", f"00-{TRACE}-{PARENT}-01".encode()), (b"x-other", b"1")]
    with tracing.server_span(tracer, "POST", "/inference", headers) as handle:
        with tracing.inference_span(tracer, 3, 20):
            pass
        handle.set_status_code(503)
    inference, server = exporter.get_finished_spans()
    assert server.name == "POST /inference"
    assert server.kind == SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 503
    assert server.status.status_code == StatusCode.ERROR
    assert inference.name == tracing.INFERENCE_SPAN
    assert inference.parent is not None
    assert inference.parent.span_id == server.context.span_id
    assert dict(inference.attributes or {}) == {tracing.ATTR_ROWS: 3, tracing.ATTR_FEATURES: 20}


def test_server_span_without_traceparent_is_a_root(
    exporter_and_tracer: tuple[InMemorySpanExporter, Tracer],
) -> None:
    exporter, tracer = exporter_and_tracer
    with tracing.server_span(tracer, "POST", "/inference/batch", {"Content-Type": "x"}) as h:
        h.set_status_code(200)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.name == "POST /inference/batch"
    assert span.status.status_code == StatusCode.UNSET
