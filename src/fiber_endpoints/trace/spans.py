"""Spans as the breakdown needs them, parsed from Jaeger's OTLP-JSON query API (``/api/v3``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SERVER = "server"
INTERNAL = "internal"
CLIENT = "client"

# OTLP's SpanKind enum, as a number or as the protobuf name in JSON.
_KINDS = {
    0: "unspecified",
    1: INTERNAL,
    2: SERVER,
    3: CLIENT,
    4: "producer",
    5: "consumer",
}


@dataclass(frozen=True)
class Span:
    """One span; times are Unix nanoseconds (wall clock of the process that made it)."""

    trace_id: str  # 32 lower-case hex digits
    span_id: str  # 16 lower-case hex digits
    parent_id: str  # "" for a root span
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def _hex_id(value: str, size: int) -> str:
    """OTLP/JSON ids are hex; some encoders write protobuf bytes as base64. Accept both."""
    if not value:
        return ""
    if len(value) == size * 2:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value.lower()


def _any_value(value: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in OTLP/JSON
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _any_value(item.get("value", {})) for item in items}


def _kind(value: Any) -> str:
    if isinstance(value, int):
        return _KINDS.get(value, "unspecified")
    text = str(value).lower()
    return text.removeprefix("span_kind_")


def parse_otlp(body: Mapping[str, Any]) -> list[Span]:
    """Spans from an OTLP/JSON ``TracesData`` (Jaeger wraps it in ``{"result": ...}``). Ids may be
    hex (OTLP/JSON, Jaeger v2) or base64 (protobuf JSON, Jaeger v1)."""
    data = body.get("result", body)
    spans: list[Span] = []
    for resource_spans in data.get("resourceSpans", []):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
        service = str(resource.get("service.name", ""))
        # "instrumentationLibrarySpans": the pre-1.0 OTLP name, still used by Jaeger v1.
        scopes = resource_spans.get("scopeSpans") or resource_spans.get(
            "instrumentationLibrarySpans", []
        )
        for scope_spans in scopes:
            for raw in scope_spans.get("spans", []):
                spans.append(
                    Span(
                        trace_id=_hex_id(raw.get("traceId", ""), 16),
                        span_id=_hex_id(raw.get("spanId", ""), 8),
                        parent_id=_hex_id(raw.get("parentSpanId", ""), 8),
                        name=raw.get("name", ""),
                        kind=_kind(raw.get("kind", 0)),
                        service=service,
                        start_ns=int(raw.get("startTimeUnixNano", 0)),
                        end_ns=int(raw.get("endTimeUnixNano", 0)),
                        attributes=_attributes(raw.get("attributes", [])),
                    )
                )
    return spans
