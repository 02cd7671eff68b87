"""The raw client's HTTP parsing, against a real socket peer (a thread sending canned bytes)."""

from __future__ import annotations

import socket
import threading

import pytest

from fiber_endpoints.bench.client import ClientError, RawClient, parse_server_timing


def serve_once(response: bytes) -> tuple[str, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            for i in range(0, len(response), 7):  # dribble: the parser must reassemble
                conn.sendall(response[i : i + 7])

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}", thread


def test_content_length_response() -> None:
    url, t = serve_once(
        b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\nServer-Timing: app;dur=1\r\n\r\n{"prediction":1}'
    )
    c = RawClient(url)
    resp = c.send(c.prepare("POST", "/inference", b"{}"))
    c.close()
    t.join(5)
    assert resp.status == 200
    assert resp.json() == {"prediction": 1}
    assert resp.headers["server-timing"] == "app;dur=1"


def test_chunked_response() -> None:
    url, t = serve_once(
        b"HTTP/1.1 422 Unprocessable\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"err\r\nb\r\nor": "bad"}\r\n0\r\n\r\n'
    )
    c = RawClient(url)
    resp = c.send(c.prepare("GET", "/x"))
    c.close()
    t.join(5)
    assert resp.status == 422
    assert resp.json() == {"error": "bad"}


def test_closed_connection_is_an_error() -> None:
    url, t = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")
    c = RawClient(url)
    with pytest.raises(ClientError):
        c.send(c.prepare("GET", "/"))
    t.join(5)


def test_prepare_sets_length_and_type() -> None:
    raw = RawClient("http://127.0.0.1:1").prepare("POST", "/inference", b'{"data":[]}')
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /inference HTTP/1.1\r\n")
    assert b"Content-Length: 11" in head and b"Content-Type: application/json" in head
    assert body == b'{"data":[]}'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("inference;dur=0.037, app;dur=0.068", {"inference": 0.037, "app": 0.068}),
        ('app;desc="handler";dur=2', {"app": 2.0}),
        ("cache, app;dur=bad", {}),
        ('inference;desc="x";dur=1, app;DUR="2.5"', {"inference": 1.0, "app": 2.5}),
        (None, {}),
    ],
)
def test_parse_server_timing(header: str | None, expected: dict[str, float]) -> None:
    assert parse_server_timing(header) == expected


def test_a_kept_alive_connection_closed_while_idle_is_retried_once_on_a_new_one() -> None:
    """A server's keep-alive timeout closes the connection between two calls: the second call
    gets nothing back on it, and is sent again on a new connection (as HTTP clients do)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    accepted = []

    def serve() -> None:
        with listener:
            for _ in range(2):  # each connection: one answer, then closed (idle timeout)
                conn, _ = listener.accept()
                accepted.append(conn)
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(4096)
                    conn.sendall(ok)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    c = RawClient(f"http://127.0.0.1:{port}")
    request = c.prepare("GET", "/")
    assert c.send(request).body == b"ok"
    assert c.send(request).body == b"ok"  # the first connection was closed: a new one
    c.close()
    thread.join(5)
    assert len(accepted) == 2


def test_a_fresh_connection_closed_without_an_answer_is_an_error() -> None:
    url, t = serve_once(b"")
    c = RawClient(url)
    with pytest.raises(ClientError):
        c.send(c.prepare("GET", "/"))
    t.join(5)


def test_server_timing_as_written_reads_back_the_same_in_str_and_bytes() -> None:
    """The contract's Server-Timing, as the control writes it (str) and as the fast stack
    writes it (bytes): one format, read back by the bench's parser to the milliseconds given."""
    from fiber_endpoints import contract

    text = contract.server_timing(37e-6, 68.5e-6)
    assert contract.server_timing_bytes(37e-6, 68.5e-6) == text.encode()
    assert parse_server_timing(text) == {"inference": 0.037, "app": 0.0685}
