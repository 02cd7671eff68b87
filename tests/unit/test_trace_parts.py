"""The small pieces of ``trace``: traceparent, Server-Timing parsing, Jaeger's config, tables."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fiber_endpoints.trace import client, command, jaeger


def test_traceparent_is_w3c_with_fresh_nonzero_ids() -> None:
    trace_id, span_id = client.new_ids()
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and int(trace_id, 16)
    assert re.fullmatch(r"[0-9a-f]{16}", span_id) and int(span_id, 16)
    assert client.traceparent(trace_id, span_id) == f"00-{trace_id}-{span_id}-01"
    assert client.traceparent(trace_id, span_id, client.NOT_SAMPLED).endswith("-00")
    assert client.new_ids() != (trace_id, span_id)


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = (self.headers.get("traceparent", "") + "|").encode() + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Server-Timing", "inference;dur=0.01, app;dur=0.02")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def test_send_traced_keeps_one_connection_and_records_every_call() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[0], server.server_address[1]
        calls = client.send_traced(str(host), int(port), [[1.0], [2.0]], 5, warmup=2)
    finally:
        server.shutdown()
        server.server_close()
    assert len(calls) == 5
    assert len({c.trace_id for c in calls}) == 5
    for c in calls:
        assert c.status == 200
        assert c.duration_ns > 0
        assert c.server_timing == {"inference": 0.01, "app": 0.02}


def test_v2_config_puts_every_listener_on_the_given_ports() -> None:
    text = jaeger.V2_CONFIG.format(
        host="127.0.0.1", otlp_port=1, query_port=2, query_grpc_port=3, max_traces=10
    )
    assert "endpoint: 127.0.0.1:1" in text
    assert "endpoint: 127.0.0.1:2" in text
    assert "endpoint: 127.0.0.1:3" in text
    assert "enable_tracing: false" in text
    assert "memory:" in text and "max_traces: 10" in text


def test_missing_install_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(jaeger.JaegerError, match="make jaeger"):
        jaeger.find_install(tmp_path)


def test_tables_list_every_part_of_every_stack() -> None:
    entry = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "share": 0.25}
    parts = ("inference", "server_outside_inference", "client_outside_server", "client")
    summaries = {"fiber": dict.fromkeys(parts, entry), "asgi-msgspec": dict.fromkeys(parts, entry)}
    text = command.format_table(summaries)
    assert len(text.splitlines()) == 2 + 8
    md = command.markdown_table(summaries)
    assert md.count("| fiber |") == 4 and "25.0 %" in md
