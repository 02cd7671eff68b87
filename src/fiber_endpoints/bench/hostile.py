"""Hostile HTTP clients against a running stack, each beside a well-behaved one (issue 13).

Every case opens real sockets to the stack and is bounded in count and time. While it runs, a
*bystander* (its own process, so the attack's Python never delays its clock) sends plain
``/inference`` requests on one keep-alive connection; its p99 during the case is compared with its
p99 alone. A case *holds* when the stack answered what it must (:class:`CaseResult.ok`), the
bystander got only 200s, and the stack is still healthy after it. The attack's own CPU time
(its thread's) is reported beside each case: the generator shares the client's CPU.

``python -m fiber_endpoints.bench.hostile bystander URL SECONDS`` is the bystander process.
"""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fiber_endpoints import contract, limits

N_FEATURES = 20
GOOD_BODY = json.dumps({"data": [0.5] * N_FEATURES}).encode()
BYSTANDER_PAUSE_S = 0.002  # between the bystander's requests: ~400 req/s, far under any peak


def request(
    path: str = contract.INFERENCE_PATH,
    body: bytes = GOOD_BODY,
    method: str = "POST",
    version: str = "1.1",
    extra: str = "",
) -> bytes:
    head = (
        f"{method} {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True)
class CaseResult:
    """One hostile case against one stack (raw figures; the report derives its table)."""

    stack: str
    case: str
    ok: bool  # the stack answered as it must (see detail)
    detail: str
    statuses: dict[str, int]  # status (or "closed", "open", "reset") -> count
    bystander_requests: int
    bystander_errors: int
    bystander_p99_ms: float
    alone_p99_ms: float
    attack_cpu_s: float
    wall_s: float
    healthy_after: bool
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def p99_ratio(self) -> float:
        return self.bystander_p99_ms / self.alone_p99_ms if self.alone_p99_ms else float("inf")

    @property
    def held(self) -> bool:
        return self.ok and self.bystander_errors == 0 and self.healthy_after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The bystander ------------------------------------------------------------------------------


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bool]:
    """Status and whether the server closes, of one response with a Content-Length body."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a response")
        rest += chunk
    del buf[:]
    buf += rest[length:]
    return status, headers.get("connection", "").lower() == "close"


_stopped = [False]


def bystander(url: str, seconds: float) -> dict[str, Any]:
    """Plain requests on one keep-alive connection for ``seconds`` (or until SIGTERM): latencies
    (ms) and errors."""
    host, port = _host_port(url)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    sock: socket.socket | None = None
    buf = bytearray()
    raw = request()
    while time.monotonic() < deadline and not _stopped[0]:
        t0 = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = bytearray()
            sock.sendall(raw)
            status, close = _read_response(sock, buf)
            if status != 200:
                errors += 1
            if close:
                sock.close()
                sock = None
        except OSError:
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
        latencies.append((time.perf_counter() - t0) * 1e3)
        time.sleep(BYSTANDER_PAUSE_S)
    if sock is not None:
        sock.close()
    return {"latencies_ms": latencies, "errors": errors}


@contextmanager
def bystanding(url: str, seconds: float) -> Iterator[Callable[[], dict[str, Any]]]:
    """Run the bystander in its own process for at most ``seconds``; yields a function that
    waits for it and returns its results."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiber_endpoints.bench.hostile", "bystander", url, str(seconds)],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)  # its interpreter starts

    def result() -> dict[str, Any]:
        proc.terminate()  # the case is over: the bystander stops and reports
        out, _ = proc.communicate(timeout=seconds + 30)
        data: dict[str, Any] = json.loads(out)
        return data

    try:
        yield result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def healthy(url: str) -> bool:
    host, port = _host_port(url)
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _ = _read_response(sock, bytearray())
            return status == 200
    except OSError:
        return False


# Socket helpers -----------------------------------------------------------------------------


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """``select`` for any descriptor number (thousands of sockets pass FD_SETSIZE)."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return [by_fd[fd] for fd, _ in poller.poll(max(0.0, timeout) * 1e3)]


def _status_of(data: bytes) -> str:
    if data.startswith(b"HTTP/"):
        return data.split(b" ", 2)[1].decode()
    return "closed" if not data else "garbage"


def _drain(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends within ``timeout``, and whether it closed."""
    sock.setblocking(False)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out), False
            ready = _readable([sock], left)
            if not ready:
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return bytes(out), True
            if not chunk:
                return bytes(out), True
            out += chunk
    finally:
        sock.setblocking(True)


def _trickle(
    host: str, port: int, n: int, first: bytes, trickle: bytes, interval: float, limit_s: float
) -> tuple[dict[str, int], list[float]]:
    """``n`` connections send ``first``, then one byte of ``trickle`` each ``interval`` s, until
    the server closes them or ``limit_s`` passes; statuses and seconds until each close."""
    socks = [_connect(host, port) for _ in range(n)]
    for s in socks:
        s.sendall(first)
        s.setblocking(False)
    start = time.monotonic()
    closed_after: dict[int, float] = {}
    answers: dict[int, bytes] = {}
    sent = 0
    while len(closed_after) < n and time.monotonic() - start < limit_s:
        for i, s in enumerate(socks):
            if i in closed_after:
                continue
            try:
                chunk = s.recv(65536)
                answers[i] = answers.get(i, b"") + chunk
                if not chunk:
                    closed_after[i] = time.monotonic() - start
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed_after[i] = time.monotonic() - start
                continue
            try:
                s.send(trickle[sent % len(trickle) : sent % len(trickle) + 1])
            except BlockingIOError:
                pass
            except OSError:
                closed_after[i] = time.monotonic() - start
        sent += 1
        time.sleep(interval)
    statuses: dict[str, int] = {}
    for i, s in enumerate(socks):
        key = _status_of(answers.get(i, b"")) if i in closed_after else "open"
        statuses[key] = statuses.get(key, 0) + 1
        s.close()
    return statuses, sorted(closed_after.values())


# The cases: each returns (ok, detail, statuses, figures) -------------------------------------

Outcome = tuple[bool, str, dict[str, int], dict[str, float]]
# A stack that cannot bound head/body read time: its cases report the figure, not a failure.
UNBOUNDED_READ = {"fastapi"}


def slowloris(host: str, port: int, bounded: bool) -> Outcome:
    """200 connections send a request line, then one header byte each 0.5 s."""
    limit = limits.READ_TIMEOUT_S + 4
    statuses, closes = _trickle(
        host, port, 200, b"POST /inference HTTP/1.1\r\n", b"X-Slow: abcdefgh\r\n", 0.5, limit
    )
    figures = {"closed": float(len(closes)), "max_close_s": max(closes, default=float("nan"))}
    if bounded:
        ok = statuses.get("open", 0) == 0 and max(closes) <= limits.READ_TIMEOUT_S + 2
        return (
            ok,
            f"{len(closes)}/200 closed, last after {figures['max_close_s']:.1f} s",
            (statuses),
            figures,
        )
    return True, f"no bound: {len(closes)}/200 closed after {limit:.0f} s", statuses, figures


def slow_body(host: str, port: int, bounded: bool) -> Outcome:
    """50 connections send whole headers (Content-Length 400), then one body byte each 0.5 s."""
    limit = limits.READ_TIMEOUT_S + 4
    body = GOOD_BODY.ljust(400)
    statuses, closes = _trickle(host, port, 50, request(body=body)[: -len(body)], body, 0.5, limit)
    figures = {"closed": float(len(closes)), "max_close_s": max(closes, default=float("nan"))}
    if bounded:
        ok = statuses.get("open", 0) == 0 and max(closes) <= limits.READ_TIMEOUT_S + 2
        return (
            ok,
            f"{len(closes)}/50 closed, last after {figures['max_close_s']:.1f} s",
            (statuses),
            figures,
        )
    return True, f"no bound: {len(closes)}/50 closed after {limit:.0f} s", statuses, figures


def _one_shot(host: str, port: int, raw: bytes, wait: float = 5.0) -> tuple[str, bool]:
    sock = _connect(host, port)
    try:
        try:
            sock.sendall(raw)
        except OSError:
            pass  # the server may answer and close before all is sent
        data, closed = _drain(sock, wait)
        return _status_of(data), closed
    finally:
        sock.close()


def oversized_head(host: str, port: int, bounded: bool) -> Outcome:
    """A 64 KiB request line; 64 headers of 1 KiB; one 1 MiB header."""
    statuses: dict[str, int] = {}
    cases = [
        b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1024) for i in range(64))
        + b"\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * (1 << 20) + b"\r\n\r\n",
    ]
    for raw in cases:
        status, _ = _one_shot(host, port, raw)
        statuses[status] = statuses.get(status, 0) + 1
    refused = sum(n for s, n in statuses.items() if s in {"400", "414", "431"})
    no_5xx = not any(s.startswith("5") for s in statuses)
    if bounded:
        return refused == 3, f"{refused}/3 refused (400/414/431)", statuses, {}
    return no_5xx, f"no header limit: {refused}/3 refused", statuses, {}


def idle_connections(host: str, port: int, bounded: bool, n: int = 2000) -> Outcome:
    """``n`` connections, each one /health request then idle; closed after the idle timeout."""
    socks = []
    errors = 0
    for _ in range(n):
        try:
            s = _connect(host, port)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _ = _read_response(s, bytearray())
            errors += status != 200
            socks.append(s)
        except OSError:
            errors += 1
    start = time.monotonic()
    open_ = set(range(len(socks)))
    closes: list[float] = []
    limit = limits.IDLE_TIMEOUT_S + 5
    while open_ and time.monotonic() - start < limit:
        ready = _readable([socks[i] for i in open_], 0.2)
        index = {id(s): i for i, s in enumerate(socks)}
        for s in ready:
            i = index[id(s)]
            try:
                data = s.recv(1024)
            except OSError:
                data = b""
            if not data:
                open_.discard(i)
                closes.append(time.monotonic() - start)
    for s in socks:
        s.close()
    statuses = {"200": len(socks) - errors, "error": errors, "closed": len(closes)}
    figures = {"connections": float(len(socks)), "max_close_s": max(closes, default=float("nan"))}
    ok = errors == 0 and not open_
    return ok, f"{len(socks)} opened, {len(closes)} closed by the server", statuses, figures


def pipelined(host: str, port: int, bounded: bool, n: int = 100) -> Outcome:
    """``n`` requests in one write on one connection (good, bad JSON, health): answered in order."""
    kinds = [
        (request(), 200),
        (request(body=b"{bad"), 400),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ]
    raw = b"".join(kinds[i % 3][0] for i in range(n))
    expected = [kinds[i % 3][1] for i in range(n)]
    sock = _connect(host, port)
    got: list[int] = []
    try:
        sock.settimeout(10)
        sock.sendall(raw)
        buf = bytearray()
        for _ in range(n):
            status, _ = _read_response(sock, buf)
            got.append(status)
    except OSError:
        pass
    finally:
        sock.close()
    statuses: dict[str, int] = {}
    for s in got:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    ok = got == expected
    return ok, f"{len(got)}/{n} answered in order" if ok else f"got {got[:6]}...", statuses, {}


def chunked(host: str, port: int, bounded: bool) -> Outcome:
    """Broken chunk sizes (400), and a chunked body sent on and on: 413 once past 1 MiB, without
    the server reading it whole (the client stops at 16 MiB)."""
    statuses: dict[str, int] = {}
    head = (
        b"POST /inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for broken in (b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabcdefghij\r\n0\r\n\r\n"):
        status, _ = _one_shot(host, port, head + broken)
        statuses[status] = statuses.get(status, 0) + 1
    broken_ok = all(s == "400" or s == "closed" for s in statuses)
    sock = _connect(host, port)
    sent = 0
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    answer = b""
    try:
        sock.sendall(head + b"1\r\n{\r\n")
        sock.settimeout(5)
        while sent < 16 << 20:
            ready = _readable([sock], 0)
            if ready:
                break
            sock.sendall(chunk)
            sent += 0x10000
        answer, _ = _drain(sock, 5)
    except OSError:
        answer = answer or b""
    finally:
        sock.close()
    big = _status_of(answer)
    statuses["huge:" + big] = 1
    figures = {"sent_mib": sent / (1 << 20)}
    ok = broken_ok and big == "413" and sent < 16 << 20
    detail = f"broken: {sorted(statuses)}; huge: {big} after {sent / (1 << 20):.1f} MiB sent"
    return ok, detail, statuses, figures


def http10(host: str, port: int, bounded: bool, n: int = 200) -> Outcome:
    """``n`` HTTP/1.0 requests without keep-alive: each answered 200, then the server closes."""
    statuses: dict[str, int] = {}
    for _ in range(n):
        status, closed = _one_shot(host, port, request(version="1.0"), wait=5)
        key = status if closed else status + "-left-open"
        statuses[key] = statuses.get(key, 0) + 1
    ok = statuses == {"200": n}
    return ok, f"{statuses.get('200', 0)}/{n} answered and closed", statuses, {}


def expect_continue(host: str, port: int, bounded: bool, n: int = 50) -> Outcome:
    """``Expect: 100-continue``: 100 then 200 for a good body; 413 at once for one over 1 MiB."""
    statuses: dict[str, int] = {}
    for _ in range(n):
        sock = _connect(host, port)
        try:
            raw = request(extra="Expect: 100-continue\r\n")
            sock.sendall(raw[: -len(GOOD_BODY)])
            first, _ = _drain_until(sock, b"\r\n\r\n", 3)
            if first.startswith(b"HTTP/1.1 100"):
                sock.sendall(GOOD_BODY)
                rest, _ = _drain_until(sock, b"}", 5)
                key = "100+" + _status_of(rest.split(b"\r\n\r\n", 1)[-1] or rest)
                if not rest.split(b"\r\n\r\n", 1)[-1].startswith(b"HTTP/"):
                    key = "100+" + _status_of(rest)
            else:
                key = "no100:" + _status_of(first)
        finally:
            sock.close()
        statuses[key] = statuses.get(key, 0) + 1
    # Over the limit: 413 at once, or 100 and then 413 once the body is sent (both RFC 9110).
    size = contract.MAX_BODY_BYTES + 1
    big = request(body=b"", extra="Expect: 100-continue\r\n").replace(
        b"Content-Length: 0", f"Content-Length: {size}".encode()
    )
    sock = _connect(host, port)
    try:
        sock.sendall(big)
        first, _ = _drain_until(sock, b"\r\n\r\n", 3)
        if first.startswith(b"HTTP/1.1 100"):
            sock.sendall(b" " * size)
            first, _ = _drain_until(sock, b"}", 5)
            first = first.split(b"\r\n\r\n", 1)[-1] if first.startswith(b"HTTP/1.1 100") else first
        status = _status_of(first)
    finally:
        sock.close()
    statuses["over-limit:" + status] = 1
    ok = statuses.get("100+200", 0) == n and status == "413"
    return ok, f"{statuses.get('100+200', 0)}/{n} 100 then 200; over limit: {status}", statuses, {}


def _drain_until(sock: socket.socket, marker: bytes, timeout: float) -> tuple[bytes, bool]:
    sock.settimeout(timeout)
    out = b""
    try:
        while marker not in out:
            chunk = sock.recv(65536)
            if not chunk:
                return out, True
            out += chunk
            if marker == b"\r\n\r\n" and out.startswith(b"HTTP/1.1 100") and out.count(b"\r\n\r\n"):
                break
    except OSError:
        pass
    return out, False


CASES: dict[str, Callable[..., Outcome]] = {
    "slowloris": slowloris,
    "slow-body": slow_body,
    "oversized-head": oversized_head,
    "idle-keepalive": idle_connections,
    "pipelined": pipelined,
    "chunked": chunked,
    "http1.0": http10,
    "expect-100": expect_continue,
}
# The bystander's longest run (it is stopped when its case ends): the longest case and slack.
CASE_SECONDS = 60.0
MIN_CASE_S = 2.0
MAX_ROUNDS = 40


def alone_p99(url: str, windows: int = 3, seconds: float = 1.0) -> float:
    """The bystander's p99 with nothing else going on: the median of ``windows`` windows, so
    one stall of a shared machine does not set the yardstick (a single 3 s window read 5-120 ms
    on the busy VM)."""
    values = sorted(p99(bystander(url, seconds)["latencies_ms"]) for _ in range(windows))
    return values[len(values) // 2]


def run_case(stack: str, url: str, case: str, alone_p99_ms: float) -> CaseResult:
    """One case with the bystander beside it (in its own process)."""
    host, port = _host_port(url)
    seconds = CASE_SECONDS
    with bystanding(url, seconds) as result:
        wall0, cpu0 = time.monotonic(), time.thread_time()
        ok, rounds = True, 0
        # A quick case is repeated (bounded) so the bystander's p99 covers some seconds of it.
        while rounds < MAX_ROUNDS and (rounds == 0 or time.monotonic() - wall0 < MIN_CASE_S):
            ok_i, detail, statuses, figures = CASES[case](host, port, stack not in UNBOUNDED_READ)
            ok, rounds = ok and ok_i, rounds + 1
        cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
        figures = figures | {"rounds": float(rounds)}
        data = result()  # stopped once the case is over: its p99 covers only the attack
    lat = data["latencies_ms"]
    return CaseResult(
        stack=stack,
        case=case,
        ok=ok,
        detail=detail,
        statuses=statuses,
        bystander_requests=len(lat),
        bystander_errors=int(data["errors"]),
        bystander_p99_ms=p99(lat),
        alone_p99_ms=alone_p99_ms,
        attack_cpu_s=cpu,
        wall_s=wall,
        healthy_after=healthy(url),
        figures=figures,
    )


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "bystander":
        signal.signal(signal.SIGTERM, lambda *_: _stopped.__setitem__(0, True))
        print(json.dumps(bystander(argv[1], float(argv[2]))))
        return 0
    print("usage: python -m fiber_endpoints.bench.hostile bystander URL SECONDS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
