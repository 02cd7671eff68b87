"""The breakdown arithmetic on hand-built spans: normal, missing and duplicated spans."""

from __future__ import annotations

import dataclasses

import pytest

from fiber_endpoints.trace import breakdown as bd
from fiber_endpoints.trace.spans import INTERNAL, SERVER, Span, parse_otlp
from fiber_endpoints.tracing import ATTR_FEATURES, ATTR_ROWS, INFERENCE_SPAN

TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
T0 = 1_700_000_000_000_000_000


def call(duration_us: int = 500, trace_id: str = TRACE) -> bd.ClientCall:
    return bd.ClientCall(trace_id, CLIENT_SPAN, T0, duration_us * 1000, 200, {})


def server(start_us: int = 100, dur_us: int = 300, span_id: str = "1" * 16) -> Span:
    return Span(TRACE, span_id, CLIENT_SPAN, "POST /inference", SERVER, "fastapi",
                T0 + start_us * 1000, T0 + (start_us + dur_us) * 1000)  # fmt: skip


def inference(
    start_us: int = 150, dur_us: int = 120, span_id: str = "2" * 16, parent: str = "1" * 16
) -> Span:
    return Span(TRACE, span_id, parent, INFERENCE_SPAN, INTERNAL, "fastapi",
                T0 + start_us * 1000, T0 + (start_us + dur_us) * 1000,
                {ATTR_ROWS: 1, ATTR_FEATURES: 20})  # fmt: skip


def test_components_add_up_to_client_time() -> None:
    r = bd.breakdown(call(500), [server(dur_us=300), inference(dur_us=120)])
    assert isinstance(r, bd.RequestBreakdown)
    assert r.inference_ns == 120_000
    assert r.server_outside_inference_ns == 180_000
    assert r.client_outside_server_ns == 200_000
    assert sum(r.component_ns(c) for c in bd.COMPONENTS) == r.client_ns


def test_inference_may_be_a_grandchild_of_the_server_span() -> None:
    middle = Span(TRACE, "3" * 16, "1" * 16, "handler", INTERNAL, "fastapi", T0, T0 + 1)
    r = bd.breakdown(call(), [server(), middle, inference(parent="3" * 16)])
    assert isinstance(r, bd.RequestBreakdown)
    assert r.inference.span_id == "2" * 16


def test_other_child_spans_are_kept_but_not_counted() -> None:
    send = Span(TRACE, "4" * 16, "1" * 16, "POST /inference http send", INTERNAL, "fastapi",
                T0, T0 + 5_000)  # fmt: skip
    r = bd.breakdown(call(), [server(), inference(), send])
    assert isinstance(r, bd.RequestBreakdown)
    assert len(r.spans) == 3
    assert r.server_outside_inference_ns == 180_000


@pytest.mark.parametrize("spans", [None, []])
def test_no_spans_is_a_missing_trace(spans: list[Span] | None) -> None:
    r = bd.breakdown(call(), spans)
    assert isinstance(r, bd.Problem)
    assert r.kind == bd.MISSING_TRACE
    assert r.trace_id == TRACE


def test_spans_of_another_trace_do_not_count() -> None:
    other = [dataclasses.replace(s, trace_id="f" * 32) for s in (server(), inference())]
    r = bd.breakdown(call(), other)
    assert isinstance(r, bd.Problem) and r.kind == bd.MISSING_TRACE


def test_missing_server_span() -> None:
    r = bd.breakdown(call(), [inference()])
    assert isinstance(r, bd.Problem) and r.kind == bd.MISSING_SERVER_SPAN


def test_server_span_not_child_of_the_client_traceparent() -> None:
    root = dataclasses.replace(server(), parent_id="")
    r = bd.breakdown(call(), [root, inference()])
    assert isinstance(r, bd.Problem) and r.kind == bd.SERVER_SPAN_WRONG_PARENT
    assert "<root>" in r.detail


def test_missing_inference_span() -> None:
    r = bd.breakdown(call(), [server()])
    assert isinstance(r, bd.Problem) and r.kind == bd.MISSING_INFERENCE_SPAN


def test_inference_span_outside_the_server_span() -> None:
    r = bd.breakdown(call(), [server(), inference(parent="9" * 16)])
    assert isinstance(r, bd.Problem) and r.kind == bd.INFERENCE_OUTSIDE_SERVER


def test_identical_duplicate_spans_count_once() -> None:
    r = bd.breakdown(call(), [server(), inference(), server(), inference()])
    assert isinstance(r, bd.RequestBreakdown)
    assert len(r.spans) == 2
    assert r.inference_ns == 120_000


def test_same_span_id_with_different_content_is_a_conflict() -> None:
    r = bd.breakdown(call(), [server(), inference(), inference(dur_us=99)])
    assert isinstance(r, bd.Problem) and r.kind == bd.CONFLICTING_SPAN
    assert "2" * 16 in r.detail


def test_two_server_spans_for_one_request() -> None:
    r = bd.breakdown(call(), [server(), server(span_id="5" * 16), inference()])
    assert isinstance(r, bd.Problem) and r.kind == bd.DUPLICATE_SERVER_SPAN


def test_two_inference_spans_for_one_request() -> None:
    r = bd.breakdown(call(), [server(), inference(), inference(span_id="6" * 16)])
    assert isinstance(r, bd.Problem) and r.kind == bd.DUPLICATE_INFERENCE_SPAN


def test_client_faster_than_server_span_gives_a_negative_part_not_a_clamp() -> None:
    r = bd.breakdown(call(250), [server(dur_us=300), inference()])
    assert isinstance(r, bd.RequestBreakdown)
    assert r.client_outside_server_ns == -50_000


def _request(client_us: int, server_us: int, inference_us: int, n: int) -> bd.RequestBreakdown:
    trace_id = f"{n:032x}"
    s = dataclasses.replace(server(dur_us=server_us), trace_id=trace_id)
    i = dataclasses.replace(inference(dur_us=inference_us), trace_id=trace_id)
    r = bd.breakdown(call(client_us, trace_id), [s, i])
    assert isinstance(r, bd.RequestBreakdown)
    return r


def test_summarize_percentiles_and_shares() -> None:
    reqs = [_request(400, 200, 100, 1), _request(600, 300, 100, 2), _request(1000, 500, 300, 3)]
    s = bd.summarize(reqs)
    assert s["requests"] == 3
    assert s["inference"]["p50"] == pytest.approx(100.0)
    assert s["server_outside_inference"]["p50"] == pytest.approx(200.0)
    assert s["client_outside_server"]["p50"] == pytest.approx(300.0)
    assert s["client"]["p50"] == pytest.approx(600.0)
    # shares are of the summed client time: 500 / 2000, 500 / 2000, 1000 / 2000
    assert s["inference"]["share"] == pytest.approx(0.25)
    assert s["server_outside_inference"]["share"] == pytest.approx(0.25)
    assert s["client_outside_server"]["share"] == pytest.approx(0.5)
    assert sum(s[c]["share"] for c in bd.COMPONENTS) == pytest.approx(1.0)


def test_summarize_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        bd.summarize([])


def test_median_request_is_the_median_not_the_fastest() -> None:
    reqs = [_request(us, 100, 50, n) for n, us in enumerate([900, 300, 500, 700, 100])]
    assert bd.median_request(reqs).client_ns == 500_000
    even = reqs[:4]  # 900, 300, 500, 700 -> lower median 500
    assert bd.median_request(even).client_ns == 500_000


def test_parse_otlp_json_from_jaeger_v3() -> None:
    body = {
        "result": {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "fiber"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE,
                                    "spanId": "1" * 16,
                                    "parentSpanId": CLIENT_SPAN,
                                    "name": "POST /inference",
                                    "kind": 2,
                                    "startTimeUnixNano": "1000",
                                    "endTimeUnixNano": "4000",
                                    "attributes": [
                                        {"key": ATTR_ROWS, "value": {"intValue": "1"}},
                                        {"key": "x", "value": {"doubleValue": 1.5}},
                                    ],
                                },
                                {
                                    "traceId": TRACE,
                                    "spanId": "2" * 16,
                                    "parentSpanId": "1" * 16,
                                    "name": INFERENCE_SPAN,
                                    "kind": "SPAN_KIND_INTERNAL",
                                    "startTimeUnixNano": "2000",
                                    "endTimeUnixNano": "3000",
                                },
                            ]
                        }
                    ],
                }
            ]
        }
    }
    s, i = parse_otlp(body)
    assert (s.service, s.kind, s.duration_ns, s.parent_id) == ("fiber", SERVER, 3000, CLIENT_SPAN)
    assert s.attributes == {ATTR_ROWS: 1, "x": 1.5}
    assert (i.kind, i.parent_id, i.duration_ns) == (INTERNAL, "1" * 16, 1000)
    r = bd.breakdown(call(10), [s, i])
    assert isinstance(r, bd.RequestBreakdown)


def test_parse_jaeger_v1_shape_with_base64_ids() -> None:
    import base64

    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    body = {
        "result": {
            "resourceSpans": [
                {
                    "resource": {"attributes": []},
                    "instrumentationLibrarySpans": [
                        {
                            "spans": [
                                {
                                    "traceId": b64(TRACE),
                                    "spanId": b64("1" * 16),
                                    "parentSpanId": b64(CLIENT_SPAN),
                                    "name": "POST /inference",
                                    "kind": "SPAN_KIND_SERVER",
                                    "startTimeUnixNano": "1",
                                    "endTimeUnixNano": "3",
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    }
    (s,) = parse_otlp(body)
    assert (s.trace_id, s.span_id, s.parent_id) == (TRACE, "1" * 16, CLIENT_SPAN)
    assert s.kind == SERVER and s.service == ""
