"""Where one request's time went, from its spans and what the client observed: pure functions.

Per request (all durations from the same trace):

- ``inference``                = the ``model-inference`` span;
- ``server_outside_inference`` = the SERVER span minus ``inference``;
- ``client_outside_server``    = client-observed latency minus the SERVER span (loopback, client,
  and whatever the stack does outside its span: parsing the request line, writing the response).

A request whose trace does not give exactly one of each span is not guessed at: it becomes a
``Problem`` that names the trace and what was wrong, and the caller decides (``trace`` fails).
An identical span stored twice (same id, same content) counts once; the same id with different
content is a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fiber_endpoints import stats
from fiber_endpoints.trace.spans import SERVER, Span
from fiber_endpoints.tracing import INFERENCE_SPAN

COMPONENTS = ("inference", "server_outside_inference", "client_outside_server")

MISSING_TRACE = "missing-trace"
MISSING_SERVER_SPAN = "missing-server-span"
SERVER_SPAN_WRONG_PARENT = "server-span-wrong-parent"
DUPLICATE_SERVER_SPAN = "duplicate-server-span"
MISSING_INFERENCE_SPAN = "missing-inference-span"
INFERENCE_OUTSIDE_SERVER = "inference-span-outside-server-span"
DUPLICATE_INFERENCE_SPAN = "duplicate-inference-span"
CONFLICTING_SPAN = "conflicting-span"


@dataclass(frozen=True)
class ClientCall:
    """One request as the client saw it. ``parent_span_id`` is the id it sent in traceparent."""

    trace_id: str
    parent_span_id: str
    start_unix_ns: int  # wall clock when the request was sent (to place spans on a timeline)
    duration_ns: int  # monotonic: request sent -> response fully read
    status: int
    server_timing: Mapping[str, float]  # the Server-Timing header, name -> ms

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "start_unix_ns": self.start_unix_ns,
            "duration_ns": self.duration_ns,
            "status": self.status,
            "server_timing": dict(self.server_timing),
        }


@dataclass(frozen=True)
class RequestBreakdown:
    call: ClientCall
    server: Span
    inference: Span
    spans: tuple[Span, ...]

    @property
    def client_ns(self) -> int:
        return self.call.duration_ns

    @property
    def server_ns(self) -> int:
        return self.server.duration_ns

    @property
    def inference_ns(self) -> int:
        return self.inference.duration_ns

    @property
    def server_outside_inference_ns(self) -> int:
        return self.server_ns - self.inference_ns

    @property
    def client_outside_server_ns(self) -> int:
        return self.client_ns - self.server_ns

    def component_ns(self, name: str) -> int:
        value: int = getattr(self, f"{name}_ns")
        return value


@dataclass(frozen=True)
class Problem:
    trace_id: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.kind} ({self.detail})"


def dedupe(spans: Iterable[Span]) -> tuple[list[Span], list[str]]:
    """Identical copies of a span kept once; returns the spans and the ids stored with
    different content."""
    by_id: dict[str, Span] = {}
    conflicts: list[str] = []
    for span in spans:
        seen = by_id.get(span.span_id)
        if seen is None:
            by_id[span.span_id] = span
        elif seen != span and span.span_id not in conflicts:
            conflicts.append(span.span_id)
    return list(by_id.values()), conflicts


def _descends_from(span: Span, ancestor_id: str, by_id: Mapping[str, Span]) -> bool:
    hops = 0
    parent = span.parent_id
    while parent and hops < len(by_id) + 1:
        if parent == ancestor_id:
            return True
        parent = by_id[parent].parent_id if parent in by_id else ""
        hops += 1
    return False


def breakdown(call: ClientCall, spans: Sequence[Span] | None) -> RequestBreakdown | Problem:
    """The breakdown of one request, or the problem that prevents it."""
    if not spans:
        return Problem(call.trace_id, MISSING_TRACE, "Jaeger returned no spans for this trace id")
    unique, conflicts = dedupe(s for s in spans if s.trace_id == call.trace_id)
    if conflicts:
        return Problem(call.trace_id, CONFLICTING_SPAN, f"span ids {', '.join(conflicts)}")
    if not unique:
        return Problem(call.trace_id, MISSING_TRACE, "no span carries this trace id")
    by_id = {s.span_id: s for s in unique}

    servers = [s for s in unique if s.kind == SERVER]
    if not servers:
        return Problem(call.trace_id, MISSING_SERVER_SPAN, f"{len(unique)} spans, none SERVER")
    mine = [s for s in servers if s.parent_id == call.parent_span_id]
    if not mine:
        parents = ", ".join(sorted({s.parent_id or "<root>" for s in servers}))
        return Problem(
            call.trace_id,
            SERVER_SPAN_WRONG_PARENT,
            f"expected parent {call.parent_span_id}, got {parents}",
        )
    if len(mine) > 1:
        names = ", ".join(f"{s.name} {s.span_id}" for s in mine)
        return Problem(call.trace_id, DUPLICATE_SERVER_SPAN, names)
    server = mine[0]

    named = [s for s in unique if s.name == INFERENCE_SPAN]
    inside = [s for s in named if _descends_from(s, server.span_id, by_id)]
    if not inside:
        kind = INFERENCE_OUTSIDE_SERVER if named else MISSING_INFERENCE_SPAN
        return Problem(call.trace_id, kind, f"server span {server.name} {server.span_id}")
    if len(inside) > 1:
        return Problem(
            call.trace_id, DUPLICATE_INFERENCE_SPAN, ", ".join(s.span_id for s in inside)
        )
    ordered = tuple(sorted(unique, key=lambda s: (s.start_ns, s.span_id)))
    return RequestBreakdown(call, server, inside[0], ordered)


def summarize(requests: Sequence[RequestBreakdown]) -> dict[str, Any]:
    """Per component: p50/p90/p99 and mean in microseconds, and its share of the summed
    client-observed time. Also the same percentiles for client and server totals."""
    if not requests:
        raise ValueError("no requests to summarize")
    total_client = sum(r.client_ns for r in requests)
    out: dict[str, Any] = {"requests": len(requests)}
    for name in (*COMPONENTS, "server", "client"):
        values_us = [r.component_ns(name) / 1000.0 for r in requests]
        entry: dict[str, Any] = dict(stats.percentiles(values_us))
        entry["mean"] = sum(values_us) / len(values_us)
        entry["share"] = sum(r.component_ns(name) for r in requests) / total_client
        out[name] = entry
    return out


def median_request(requests: Sequence[RequestBreakdown]) -> RequestBreakdown:
    """The request with the median client-observed latency (the lower one for an even count)."""
    if not requests:
        raise ValueError("no requests")
    ordered = sorted(requests, key=lambda r: (r.client_ns, r.call.trace_id))
    return ordered[(len(ordered) - 1) // 2]
