"""A lean keep-alive HTTP/1.1 client that sends requests with a traceparent the client chose.

Raw sockets and pre-encoded requests, so the client's own cost inside "client outside server"
stays small (httpx alone costs ~350 us per call here, more than a fast server's response).
"""

from __future__ import annotations

import json
import math
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

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


def parse_server_timing(value: str) -> dict[str, float]:
    """``inference;dur=0.1, app;dur=0.2`` -> ``{"inference": 0.1, "app": 0.2}`` (ms)."""
    out: dict[str, float] = {}
    for metric in value.split(","):
        name, *params = (p.strip() for p in metric.split(";"))
        for param in params:
            key, _, raw = param.partition("=")
            if name and key.strip().lower() == "dur":
                out[name] = float(raw.strip().strip('"'))
    return out


def body_for(row: Sequence[float]) -> bytes:
    data = [None if math.isnan(v) else v for v in row]
    return json.dumps({"data": data}).encode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive connection; ``request`` sends pre-encoded bytes and reads one response."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def encode(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def request(self, raw: bytes) -> Response:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ValueError(f"response without Content-Length: {status_line}")
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += self._chunk()
        self.buffer = rest[length:]
        return Response(int(status_line.split()[1]), headers, rest[:length])

    def _chunk(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def _recv(self) -> None:
        self.buffer += self._chunk()


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
    bodies = [body_for(r) for r in rows]
    conn = Connection(host, port)
    calls: list[ClientCall] = []
    try:
        for i in range(warmup):
            trace_id, span_id = new_ids()
            tp = traceparent(trace_id, span_id, NOT_SAMPLED)
            resp = conn.request(conn.encode(path, bodies[i % len(bodies)], {"traceparent": tp}))
            if resp.status != 200:
                raise RuntimeError(f"warm-up request got {resp.status}: {resp.body[:200]!r}")
        for i in range(requests):
            trace_id, span_id = new_ids()
            raw = conn.encode(
                path, bodies[i % len(bodies)], {"traceparent": traceparent(trace_id, span_id)}
            )
            wall = time.time_ns()
            started = time.perf_counter_ns()
            resp = conn.request(raw)
            elapsed = time.perf_counter_ns() - started
            timing = parse_server_timing(resp.headers.get("server-timing", ""))
            calls.append(ClientCall(trace_id, span_id, wall, elapsed, resp.status, timing))
    finally:
        conn.close()
    return calls
