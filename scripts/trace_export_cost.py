"""What tracing at 100 % costs the fast Python stack's core per request, after the request.

The request path only decides and records (``deferred_tracing.DeferredSpans.sample/add``); this
times the decision, and what happens to a recorded request afterwards, on the same core, per
request (two spans: the SERVER span and its ``model-inference`` child):

- **decide**: a root request's sampling decision, through the sampler's ``should_sample`` and
  in place (``DeferredSpans.sample``);

- **sdk build**: ``DeferredSpans.flush`` through the OpenTelemetry SDK (``start_span``,
  attributes, ``end``, the ``BatchSpanProcessor``'s queue);
- **sdk encode**: the OTLP exporter's ``encode_spans(...).SerializePartialToString()`` on those
  spans, in batches of 512 spans (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``'s default);
- **direct encode** (``otlp_direct``): the same requests spliced into OTLP protobuf bytes;
- **post**: the exporter's own HTTP client sending one batch to a sink that answers 200 (a
  child process on another CPU), thread CPU time per request.

Run pinned to one core, nothing else of yours running::

    taskset -c 1 .venv/bin/python scripts/trace_export_cost.py

Results: ``docs/tracing.md`` (Tracing on the fast path).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from fiber_endpoints import deferred_tracing, tracing

REQUESTS = 2048  # recorded requests per repeat
REPEATS = 7
BATCH_SPANS = 512
SINK = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_POST(self):\n"
    "        self.rfile.read(int(self.headers['content-length']))\n"
    "        self.send_response(200); self.send_header('content-length', '0'); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
    "print(s.server_address[1], flush=True)\n"
    "s.serve_forever()\n"
)


def records(n: int) -> list[deferred_tracing.Record]:
    """What ``bench --observability-cost`` makes at 100 %: root traces (no ``traceparent``),
    ``POST /inference``, 200, one row."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    ids = RandomIdGenerator()
    now = time.time_ns()
    out: list[deferred_tracing.Record] = []
    for i in range(n):
        start = now + i * 100_000
        trace = (ids.generate_trace_id(), 0, 0, None)
        out.append((trace, "POST", "/inference", start, start + 60_000, 200,
                    (start + 20_000, start + 45_000, 1)))  # fmt: skip
    return out


def provider(endpoint: str) -> tuple[Any, Any]:
    """The provider ``tracing.setup`` installs, except that the batch processor never exports
    on its own (the timing reads its queue)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    p = TracerProvider(resource=Resource.create({SERVICE_NAME: "asgi-msgspec"}))
    exporter = OTLPSpanExporter(endpoint=endpoint)
    big = 10 * REQUESTS
    bsp = BatchSpanProcessor(
        exporter, max_queue_size=big, schedule_delay_millis=3.6e6, max_export_batch_size=big
    )
    p.add_span_processor(bsp)
    return p, bsp


def decisions(p: Any) -> tuple[list[float], list[float]]:
    """Per request, a root's sampling decision with ``parentbased_traceidratio`` as
    ``OTEL_TRACES_SAMPLER`` builds it: asked through the sampler's ``should_sample`` (what the
    fast path did for that sampler before it was decided in place), and in place."""
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    p.sampler = ParentBasedTraceIdRatio(1.0)
    spans = deferred_tracing.DeferredSpans(p, 20, direct=False)
    ids = [p.id_generator.generate_trace_id() for _ in range(REQUESTS)]
    sdk, here = [], []
    for _ in range(REPEATS + 1):
        t0 = time.perf_counter_ns()
        for trace_id in ids:
            spans._ask_sampler(trace_id, 0, None, None)
        sdk.append((time.perf_counter_ns() - t0) / REQUESTS / 1e3)
        t0 = time.perf_counter_ns()
        for _ in ids:
            spans.sample(None, None)
        here.append((time.perf_counter_ns() - t0) / REQUESTS / 1e3)
    return sdk, here


def main() -> int:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from fiber_endpoints import otlp_direct

    cpus = sorted(os.sched_getaffinity(0))
    others = [c for c in range(os.cpu_count() or 1) if c not in cpus] or cpus
    sink = subprocess.Popen(["taskset", "-c", str(others[0]), sys.executable, "-c", SINK],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert sink.stdout is not None
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}/v1/traces"
        p, bsp = provider(endpoint)
        sdk_spans = deferred_tracing.DeferredSpans(p, 20, direct=False)
        direct = otlp_direct.Encoder.for_provider(p, tracing.TRACER_NAME, 20)
        assert direct is not None
        exporter = bsp._batch_processor._exporter
        build, encode, splice, post = [], [], [], []
        for _ in range(REPEATS + 1):  # the first repeat warms up, discarded
            batch = records(REQUESTS)
            sdk_spans.pending = list(batch)
            t0 = time.perf_counter_ns()
            sdk_spans.flush()
            build.append((time.perf_counter_ns() - t0) / REQUESTS / 1e3)
            queue = bsp._batch_processor._queue
            spans = [queue.pop() for _ in range(len(queue))]
            t0 = time.perf_counter_ns()
            for i in range(0, len(spans), BATCH_SPANS):
                data = encode_spans(spans[i : i + BATCH_SPANS]).SerializePartialToString()
            encode.append((time.perf_counter_ns() - t0) / REQUESTS / 1e3)
            per_post = BATCH_SPANS // 2
            t0 = time.perf_counter_ns()
            for i in range(0, REQUESTS, per_post):
                data = direct.request(batch[i : i + per_post])
            splice.append((time.perf_counter_ns() - t0) / REQUESTS / 1e3)
            c0 = time.thread_time_ns()
            for _ in range(REQUESTS // per_post):
                assert exporter._client.export(data).success
            post.append((time.thread_time_ns() - c0) / REQUESTS / 1e3)
        decide_sdk, decide_here = decisions(p)
        rows = [("decide: the SDK sampler's should_sample", decide_sdk),
                ("decide: in place (DeferredSpans.sample)", decide_here),
                ("sdk build (DeferredSpans.flush)", build), ("sdk encode (encode_spans)", encode),
                ("direct encode (otlp_direct)", splice),
                (f"post, {BATCH_SPANS // 2} requests a batch (thread CPU)", post)]  # fmt: skip
        print(f"per request (2 spans), {REQUESTS} requests x {REPEATS} repeats, CPUs {cpus}, "
              f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")  # fmt: skip
        for name, values in rows:
            v = values[1:]
            print(f"  {name:45s} median {statistics.median(v):7.2f} µs "
                  f"(min {min(v):.2f}, max {max(v):.2f})")  # fmt: skip
    finally:
        sink.terminate()
        sink.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
