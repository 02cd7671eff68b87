"""The fast stack's connection limits, inside uvicorn's httptools protocol (we own this code).

uvicorn bounds only how long a connection may sit idle *between* requests (``timeout_keep_alive``);
with httptools it bounds neither how long a request may take to arrive, nor its header size, and
never closes a connection that has sent nothing at all. This subclass adds each limit of
:mod:`fiber_endpoints.limits`:

- idle before the first request: closed after ``IDLE_TIMEOUT_S`` (uvicorn's keep-alive timer takes
  over after each response);
- a request (head and body) not whole within ``READ_TIMEOUT_S`` of its first byte: ``408``, close;
- request line and headers over ``MAX_HEADER_BYTES``: ``431``, close, nothing passed on;
- more than ``MAX_CONNECTIONS`` open: the new one gets ``503`` with ``Retry-After``, close.

Answers are the contract's ``{"error": ...}`` JSON with ``connection: close``. A connection whose
response has already started is closed without one. :func:`guarded` puts this in front of any
httptools protocol class (the fast path's, or uvicorn's own) by ordinary inheritance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fiber_endpoints import limits
from fiber_endpoints.contract import ContractError


class _Refused(httptools.HttpParserError):
    """Raised from a parser callback to stop parsing; uvicorn turns any parser error into
    :meth:`GuardedProtocol.send_400_response`, which sends the refusal instead."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :mod:`fiber_endpoints.limits` enforced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # request line and headers as parsed
        self._raw_head = 0  # bytes received while a head is incomplete (httptools buffers them)
        self._in_head = True
        self._begun = False  # a request's first byte has arrived, its last not yet
        self._draining = False  # graceful stop under way
        self._refused: ContractError | None = None

    # Timers
    def _arm(self, seconds: float, err: Callable[[], ContractError] | None) -> None:
        """``err`` makes the refusal at expiry (not per request: building the error on every
        request cost ~0.7 µs of it)."""
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, err)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, err: Callable[[], ContractError] | None) -> None:
        self._deadline = None
        if err is None:  # idle: nothing to answer
            self._refused = ContractError(408, "idle")
            self.transport.close()
        else:
            self._refuse(err())

    def _refuse(self, err: ContractError) -> None:
        """Answer ``err`` (unless a response is already under way) and close the connection."""
        self._refused = err
        self._disarm()
        flush = getattr(self, "_flush_batch", None)  # the fast path's: answers waiting first
        if flush is not None and int(getattr(self, "_batched", 0)):
            flush()
        cycle = self.cycle
        receiving_fast = getattr(self, "_fast_route", None) is not None  # the fast path's
        if not self._in_head and not receiving_fast and cycle is not None:
            # This request's ASGI cycle exists: its response may be under way or sent already
            # (a 413 while the client keeps sending): never a second answer, only the close.
            cycle.keep_alive = False
            if cycle.response_started or cycle.response_complete:
                self.transport.close()
                return
        body = json.dumps(err.body()).encode()
        parts = [STATUS_LINE[err.status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode()]
        if err.status == 503:
            parts += [b"\r\nretry-after: ", str(limits.RETRY_AFTER_S).encode()]
        parts += [b"\r\nconnection: close\r\n\r\n", body]
        self.transport.write(b"".join(parts))
        self.transport.close()

    # Connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > limits.MAX_CONNECTIONS:
            self._refuse(limits.too_many_connections())
        else:
            self._arm(limits.IDLE_TIMEOUT_S, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:  # after a refusal the rest of the stream is not read
            return
        if self._in_head:
            self._raw_head += len(data)
        super().data_received(data)
        # One header line trickled without its end is buffered by httptools, never passed to
        # on_header: bound what a head may make us hold, not only what it parses to.
        if self._in_head and self._raw_head > limits.MAX_HEADER_BYTES and self._refused is None:
            self._refuse(limits.headers_too_large())

    def send_400_response(self, msg: str) -> None:
        if self._refused is not None:
            self._refuse(self._refused)
        else:
            super().send_400_response(msg)

    # Parser callbacks
    def shutdown(self) -> None:
        """Graceful stop. uvicorn closes a connection between requests at once, which drops a
        request the client sent just before the signal and the loop has not read yet (measured:
        12-43 of ~6,000 under 64-connection load, sent up to 11 ms before SIGTERM). Here such a
        connection gets ``SHUTDOWN_DRAIN_S`` to deliver one, and one arriving is answered; either
        way with ``connection: close``. uvicorn's stop waits for every connection to close."""
        self._draining = True
        if self._in_head and self._begun:
            return  # a head arriving: on_headers_complete marks its answer the last
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._arm(limits.SHUTDOWN_DRAIN_S, None)  # between requests
            return
        super().shutdown()  # a body arriving or a response under way: the last on this one

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._head_bytes = 0
        self._arm(limits.READ_TIMEOUT_S, limits.read_timeout)

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > limits.MAX_HEADER_BYTES:
            self._refused = limits.headers_too_large()
            raise _Refused(self._refused.message)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._raw_head = False, 0
        super().on_headers_complete()
        if self._draining:  # answer this one, then close
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.keep_alive = False
            if hasattr(self, "_fast_close"):  # the fast path's flag
                self._fast_close = True

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._begun = True, False
        super().on_message_complete()


class GuardedHttpToolsProtocol(GuardedProtocol, HttpToolsProtocol):
    """uvicorn's own httptools protocol with the limits (a module-level class: ``--workers``
    pickles it into each worker)."""
