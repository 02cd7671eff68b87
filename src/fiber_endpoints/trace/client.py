"""Requests with a traceparent the client chose, sent by the bench's raw keep-alive client, so
the client's own cost inside "client outside server" stays small (httpx alone costs ~350 us per
call here, more than a fast server's response)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from fiber_endpoints.bench.client import RawClient, parse_server_timing
from fiber_endpoints.bench.workload import encode_body
from fiber_endpoints.trace.breakdown import ClientCall

SAMPLED = "01"
NOT_SAMPLED = "00"


def traceparent(trace_id: str, span_id: str, flags: str = SAMPLED) -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def new_ids() -> tuple[str, str]:
    """A random W3C trace id (16 bytes) and parent span id (8 bytes), both never all-zero."""
    while True:
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        if int(trace_id, 16) and int(span_id, 16):
            return trace_id, span_id


def send_traced(
    host: str,
    port: int,
    rows: Sequence[Sequence[float]],
    requests: int,
    *,
    warmup: int = 200,
    path: str = "/inference",
) -> list[ClientCall]:
    """``warmup`` unsampled requests (flag 00: no spans), then ``requests`` sampled ones, each
    with a fresh trace id, rotating through ``rows``. Returns what the client observed."""
    bodies = [encode_body(r) for r in rows]
    conn = RawClient(f"http://{host}:{port}", timeout=10.0)
    calls: list[ClientCall] = []
    try:
        for i in range(warmup):
            trace_id, span_id = new_ids()
            tp = traceparent(trace_id, span_id, NOT_SAMPLED)
            resp = conn.send(
                conn.prepare("POST", path, bodies[i % len(bodies)], {"traceparent": tp})
            )
            if resp.status != 200:
                raise RuntimeError(f"warm-up request got {resp.status}: {resp.body[:200]!r}")
        for i in range(requests):
            trace_id, span_id = new_ids()
            tp = traceparent(trace_id, span_id)
            raw = conn.prepare("POST", path, bodies[i % len(bodies)], {"traceparent": tp})
            wall = time.time_ns()
            started = time.perf_counter_ns()
            resp = conn.send(raw)
            elapsed = time.perf_counter_ns() - started
            timing = parse_server_timing(resp.headers.get("server-timing"))
            calls.append(ClientCall(trace_id, span_id, wall, elapsed, resp.status, timing))
    finally:
        conn.close()
    return calls
