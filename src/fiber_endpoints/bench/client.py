"""Benchmark clients: a raw-socket HTTP/1.1 keep-alive client whose own cost is small and
measured, and httpx, the proof of concept's client, to show what a heavy client adds.

The common Python clients spend 300-500 µs of their own per call on this machine, more than a
fast server's whole response; the raw client sends pre-encoded requests and parses only the
status line and the headers it needs.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

INSECURE_TLS_ENV = "FIBER_ENDPOINTS_INSECURE_TLS"


class ClientError(RuntimeError):
    """The server's answer was not a well-formed HTTP/1.1 response, or the connection died."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; only the last value of a repeated header
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class StaleConnection(ClientError):
    """The server closed the connection without a byte of the answer."""


class Client(Protocol):
    """What the protocols need from a client: send one prepared request, wait for the answer."""

    name: str

    def prepare(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any: ...

    def send(self, prepared: Any) -> Response: ...

    def close(self) -> None: ...


class RawClient:
    """One keep-alive TCP connection (TLS for an ``https://`` URL); requests are pre-encoded
    bytes."""

    name = "raw"

    def __init__(self, url: str, timeout: float = 30.0, verify: bool | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.timeout = timeout
        # TLS: verified against the system's CAs unless FIBER_ENDPOINTS_INSECURE_TLS=1 (a
        # self-signed terminator in a test, an ingress whose CA this machine lacks); wrk and
        # vegeta never verify, parity (checked first, with this client) is what is trusted.
        self.verify = (os.environ.get(INSECURE_TLS_ENV) != "1") if verify is None else verify
        self._sock: socket.socket | None = None
        self._buf = b""
        self._first = False  # nothing of the current answer received yet

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                context = ssl.create_default_context()
                if not self.verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=self.host)
            self._sock, self._buf = sock, b""
        return self._sock

    def prepare(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1"]
        if not any(k.lower() == "host" for k in headers or {}):  # --header 'Host: ...' wins
            lines.append(f"Host: {self.host}:{self.port}")
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def send(self, prepared: bytes) -> Response:
        """Send and read the answer. A kept-alive connection the server closed while idle (its
        keep-alive timeout: uvicorn's is 5 s, and a stack waits that long while the others take
        their turn) is detected by getting nothing back; the request is then sent once more on a
        new connection, as HTTP clients do, and the reconnect is part of that call's time."""
        reused = self._sock is not None
        try:
            return self._exchange(prepared)
        except (OSError, ClientError) as exc:
            self.close()
            if not (reused and isinstance(exc, StaleConnection | ConnectionResetError |
                                          BrokenPipeError)):  # fmt: skip
                raise
        try:
            return self._exchange(prepared)
        except (OSError, ClientError):
            self.close()
            raise

    def _exchange(self, prepared: bytes) -> Response:
        sock = self._connect()
        sock.sendall(prepared)
        if not self._buf:
            self._first = True
        return self._read_response(sock)

    def _recv(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            if self._first:
                raise StaleConnection("connection closed by server before answering")
            raise ClientError("connection closed by server")
        self._first = False
        self._buf += chunk

    def _read_response(self, sock: socket.socket) -> Response:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._recv(sock)
        head, self._buf = self._buf[:end].decode("latin-1"), self._buf[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ClientError(f"bad status line: {status_line!r}") from None
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._read_exact(sock, int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked(sock)
        else:
            raise ClientError("response has neither Content-Length nor chunked encoding")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    def _read_exact(self, sock: socket.socket, n: int) -> bytes:
        while len(self._buf) < n:
            self._recv(sock)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _read_chunked(self, sock: socket.socket) -> bytes:
        body = b""
        while True:
            while (eol := self._buf.find(b"\r\n")) < 0:
                self._recv(sock)
            size = int(self._buf[:eol].split(b";")[0], 16)
            self._buf = self._buf[eol + 2 :]
            chunk = self._read_exact(sock, size + 2)  # data + CRLF
            if size == 0:
                return body  # (trailers are not used by any stack)
            body += chunk[:-2]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class HttpxClient:
    """The proof of concept's client: httpx, JSON encoded per call, one keep-alive connection."""

    name = "httpx"

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self.base = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def prepare(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, ...]:
        # Decoded again so httpx pays the JSON encoding per call, as the notebook did.
        payload = json.loads(body) if body is not None else None
        return (method, self.base + path, payload, headers or {})

    def send(self, prepared: tuple[Any, ...]) -> Response:
        method, url, payload, headers = prepared
        r = self._client.request(method, url, json=payload, headers=headers)
        return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    def close(self) -> None:
        self._client.close()


CLIENTS: dict[str, type[RawClient] | type[HttpxClient]] = {"raw": RawClient, "httpx": HttpxClient}


def make_client(kind: str, url: str) -> Client:
    try:
        return CLIENTS[kind](url)
    except KeyError:
        raise ValueError(f"unknown client {kind!r}; known: {', '.join(CLIENTS)}") from None


def parse_server_timing(value: str | None) -> dict[str, float]:
    """``inference;dur=0.1, app;dur=0.2`` -> ``{"inference": 0.1, "app": 0.2}`` (ms)."""
    out: dict[str, float] = {}
    for metric in (value or "").split(","):
        name, *params = (p.strip() for p in metric.split(";"))
        for param in params:
            key, _, val = param.partition("=")
            if name and key.strip().lower() == "dur":  # parameter names are case-insensitive
                try:
                    out[name] = float(val.strip('"'))
                except ValueError:
                    pass
    return out
