"""The fast path: uvicorn's httptools protocol answering the inference routes' plain case itself.

uvicorn hands each request to an ASGI app through an asyncio Task, an Event, a scope dict, a
receive and two send messages; that is ~35 µs of the ~40 µs gap to Fiber's sequential p50 that
the fast stack closed (docs/fast-python.md). :class:`FastPathProtocol` (uvicorn's documented
``http=`` protocol class option) answers the plain case of the two inference routes and of V2
inference to the served model with the handler the ASGI app would call, in one write; every
other request goes through the app (``asgi_msgspec.App``) unchanged. The ``/inference`` rows
that complete in one event-loop turn are predicted in one call (``row_batching.py``).
``FIBER_ENDPOINTS_FAST_PATH=0`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fiber_endpoints import contract, metrics
from fiber_endpoints.stacks import idle_spin, row_batching
from fiber_endpoints.stacks.guarded_protocol import GuardedProtocol
from fiber_endpoints.stacks.msgspec_handler import JSON, Handler, Reply
from fiber_endpoints.v2 import HEADER_LENGTH_RAW

if TYPE_CHECKING:
    from fiber_endpoints.deferred_tracing import DeferredSpans, Trace

FAST_PATH_ENV = "FIBER_ENDPOINTS_FAST_PATH"
# A V2 inference route takes the body and its Inference-Header-Content-Length (or None).
V2Route = Callable[[bytes, bytes | None], Reply]


class FastApp(Protocol):
    """What the fast path takes from the ASGI app (``asgi_msgspec.App``), which says so with
    ``serves_fast_path``."""

    serves_fast_path: bool
    recorder: metrics.Recorder | None
    batcher: row_batching.RowBatcher | None
    deferred: DeferredSpans | None
    record_handler: Handler | None

    def fast_routes(self, record: bool = False) -> dict[bytes, Callable[[bytes], Reply]]: ...

    def fast_v2_routes(self, record: bool = False) -> dict[bytes, V2Route]: ...


_JSON_HEAD = b"content-type: " + JSON + b"\r\ncontent-length: "


class FastPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering the inference routes' plain case in place.

    uvicorn hands each request to an ASGI app through an asyncio Task, an Event, a scope dict, a
    receive and two send messages, and writes head and body separately. This subclass skips all
    that only when a request is the plain case: a route of ``App.fast_routes``, POST, HTTP/1.1,
    ``Content-Type: application/json`` exactly (or a route of ``App.fast_v2_routes``, any
    content type, its ``Inference-Header-Content-Length`` passed on), a ``Content-Length``
    within the limit and no ``Transfer-Encoding``, no ``Expect``, no upgrade, no ASGI cycle in
    flight on the connection
    (pipelining keeps its order), and writing not paused (a client that does not read). Its body
    is collected, the handler the ASGI app would call runs when the message is complete, and the
    response (the headers uvicorn would write, in the same order) goes out in one write.
    Everything else is uvicorn's, unchanged: parsing (llhttp), every other request through the
    ASGI app, keep-alive and its timeout, flow control, workers, graceful shutdown (a fast request
    still arriving is answered, then the connection closes). Built on uvicorn's internals (the
    parser callbacks and attributes of ``HttpToolsProtocol``): ``tests/unit/test_asgi_msgspec.py``
    drives it through uvicorn, and ``FIBER_ENDPOINTS_FAST_PATH=0`` falls back to plain uvicorn.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app: FastApp = self.app  # the App itself only without uvicorn's wrappers (serve turns
        # them off); a wrapper has no fast routes, and every request goes through it
        plain = (
            getattr(app, "serves_fast_path", False)
            and not self.root_path
            and self.limit_concurrency is None
        )
        self._fast_routes = app.fast_routes() if plain else {}
        self._fast_v2_routes = app.fast_v2_routes() if plain else {}
        recorder: metrics.Recorder | None = app.recorder if plain else None
        self._recorder = recorder
        self._fast_labels = {
            url: recorder.route(url.decode("latin-1"))
            for url in (*self._fast_routes, *self._fast_v2_routes)
            if recorder is not None
        }
        self._fast_started = 0.0
        # Dynamic batching (row_batching.py): /inference's rows, parsed here, predicted per turn.
        batcher: row_batching.RowBatcher | None = app.batcher if plain else None
        self._batcher = batcher
        self._batch_url = contract.INFERENCE_PATH.encode()
        self._parse_single = batcher.handler.parse_single if batcher is not None else None
        self._batched = 0  # this connection's requests waiting in the batch
        self._fast_batch = False  # the request arriving goes to the batch
        # Tracing on the fast path (deferred_tracing.py): the sampled requests' routes.
        self._spans: DeferredSpans | None = app.deferred if plain else None
        self._record_routes = app.fast_routes(record=True) if self._spans else {}
        self._record_v2_routes = app.fast_v2_routes(record=True) if self._spans else {}
        self._record_handler = app.record_handler if self._spans else None
        self._traceparent: bytes | None = None
        self._tracestate: bytes | None = None
        self._fast_trace: Trace | None = None
        self._fast_start_ns = 0
        self._fast_route: Callable[[bytes], Reply] | None = None
        self._fast_v2_route: V2Route | None = None
        self._fast_header: bytes | None = None  # V2's Inference-Header-Content-Length
        self._fast_body: list[bytes] = []
        self._fast_close = False
        self._idle_spin = idle_spin.for_loop(self.loop)

    def on_headers_complete(self) -> None:
        route = self._fast_routes.get(self.url)
        if route is not None and self._plain_request():
            self._fast_batch = self._batcher is not None and self.url == self._batch_url
            if self._spans is not None and self._sampled() and not self._fast_batch:
                route = self._record_routes[self.url]  # records its own predictor call
            self._fast_route, self._fast_body = route, []
            self._fast_started = perf_counter()
            return
        v2_route = self._fast_v2_routes.get(self.url)
        if v2_route is not None and self._plain_request(v2=True):
            if self._spans is not None and self._sampled():
                v2_route = self._record_v2_routes[self.url]
            # Through the same code as a contract request: a V2 route wrapped to take the body.
            header = self._fast_header
            self._fast_route, self._fast_body = lambda body: v2_route(body, header), []
            self._fast_batch = False
            self._fast_started = perf_counter()
            return
        self._fast_route = None
        if self._batched:  # answers due on this connection go out before this one's
            self._flush_batch()
        super().on_headers_complete()

    def _sampled(self) -> bool:
        """Tracing on: the sampling decision, and for a sampled request its start."""
        assert self._spans is not None and self._record_handler is not None
        trace = self._fast_trace = self._spans.sample(self._traceparent, self._tracestate)
        if trace is None:
            return False
        self._fast_start_ns = time_ns()
        self._record_handler.inference_ns = None
        return True

    def _plain_request(self, v2: bool = False) -> bool:
        parser = self.parser
        if (
            parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or self.expect_100_continue
            or parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.flow.write_paused  # a client not reading: uvicorn's send waits for it
        ):
            return False
        content_type = length = header = traceparent = tracestate = None
        for name, value in self.headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return False
            elif name == HEADER_LENGTH_RAW and header is None:
                header = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        self._fast_header = header
        self._traceparent, self._tracestate = traceparent, tracestate
        return (
            (v2 or content_type == JSON)  # V2 takes any content type, as Triton does
            and length is not None
            and length.isdigit()
            and int(length) <= contract.MAX_BODY_BYTES
        )

    def on_body(self, body: bytes) -> None:
        if self._fast_route is None:
            super().on_body(body)
        else:
            self._fast_body.append(body)

    def on_message_complete(self) -> None:
        route = self._fast_route
        if route is None:
            super().on_message_complete()
            return
        self._fast_route = None
        body = b"".join(self._fast_body)
        self._fast_body = []
        started, url = self._fast_started, self.url
        keep_alive = not self._fast_close and self.parser.should_keep_alive()
        try:
            if self._fast_batch:
                assert self._batcher is not None and self._parse_single is not None
                parsed = self._parse_single(body, started)
                if isinstance(parsed, Reply):
                    reply = parsed
                else:
                    trace = self._fast_trace
                    ticket = (url, keep_alive, trace, self._fast_start_ns)
                    if self._batcher.wait(self.loop, self, parsed, started, ticket):
                        self._batched += 1  # predicted with this turn's others, at its end
                        self._fast_trace = None
                        return
                    handler = self._record_handler if trace is not None else self._batcher.handler
                    assert handler is not None
                    reply = handler.answer_row(parsed, started)  # the turn's first: at once
            else:
                reply = route(body)
        except Exception:  # as uvicorn does for an ASGI app that raises: log, 500, close
            self.logger.error("Exception in the inference fast path", exc_info=True)
            if self._batched:
                self._flush_batch()
            self._write_500(started, url)
            self._traced(url, 500, None)  # the ASGI path's span says 500 (ERROR) too
            return
        if self._batched:  # answers due on this connection go out before this one
            self._flush_batch()
        self._answer(reply, started, url, keep_alive and not self._fast_close)
        if self._fast_trace is not None and self._record_handler is not None:
            self._traced(url, reply.status, self._record_handler.inference_ns)

    def _traced(self, url: bytes, status: int, inference: tuple[int, int, int] | None) -> None:
        """The request just answered, if sampled: its spans, built later (deferred_tracing.py)."""
        trace = self._fast_trace
        if trace is not None and self._spans is not None:
            self._fast_trace = None
            path = url.decode("latin-1")
            self._spans.add(trace, "POST", path, self._fast_start_ns, status, inference)

    def _flush_batch(self) -> None:
        assert self._batcher is not None
        self._batcher.flush()

    def answer_batched(
        self,
        reply: Reply,
        started: float,
        ticket: tuple[bytes, bool, Trace | None, int],
        call_ns: tuple[int, int],
    ) -> None:
        """A request of this connection answered by the batch (row_batching.py); the last one
        waiting closes the connection when a graceful stop began meanwhile. A sampled request's
        spans: its model-inference span is the batch's predictor call (its own row: 1)."""
        self._batched -= 1
        url, keep_alive, trace, start_ns = ticket
        self._answer(
            reply,
            started,
            url,
            # The last one closes, unless a request is still arriving (it is answered, then closes)
            keep_alive
            and not (self._fast_close and not self._batched and self._fast_route is None),
        )
        if trace is not None and self._spans is not None:
            path = url.decode("latin-1")
            self._spans.add(trace, "POST", path, start_ns, reply.status, (*call_ns, 1))

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparsable request (and, guarded, a refusal): the answers
        still waiting in the batch for this connection go out first, or the client would read
        this one as theirs when the connection closes."""
        if self._batched:
            self._flush_batch()
        super().send_400_response(msg)

    def fail_batched(self, started: float, ticket: tuple[bytes, bool, Trace | None, int]) -> None:
        """A request of this connection whose batch's predictor call raised: 500, close."""
        self._batched -= 1
        url, _, trace, start_ns = ticket
        if not self.transport.is_closing():
            self._write_500(started, url)
        if trace is not None and self._spans is not None:
            self._spans.add(trace, "POST", url.decode("latin-1"), start_ns, 500, None)

    def _answer(self, reply: Reply, started: float, url: bytes, keep_alive: bool) -> None:
        """Write the response in one write, as uvicorn would have written it, and count it."""
        if self.transport.is_closing():  # the client went away while its request waited
            return
        parts = [STATUS_LINE[reply.status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        if reply.content_type == JSON:
            parts.append(_JSON_HEAD)
        else:
            parts += [b"content-type: ", reply.content_type, b"\r\ncontent-length: "]
        parts += [str(len(reply.body)).encode(), b"\r\n"]
        if reply.header_length is not None:
            parts += [HEADER_LENGTH_RAW, b": ", reply.header_length, b"\r\n"]
        if reply.server_timing is not None:
            parts += [b"server-timing: ", reply.server_timing, b"\r\n"]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", reply.body]
        self.transport.write(b"".join(parts))
        if self._idle_spin is not None:
            self._idle_spin.arm()
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()
        recorder = self._recorder
        if recorder is not None:
            elapsed = perf_counter() - started
            recorder.request(
                "POST", self._fast_labels[url], reply.status, elapsed, reply.inference_s
            )

    def _write_500(self, started: float, url: bytes) -> None:
        """As uvicorn answers an app that raised: 500, close; counted like any answer."""
        body = b"Internal Server Error"
        parts = [STATUS_LINE[500]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts += [
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(parts))
        self.transport.close()
        if self._recorder is not None:
            elapsed = perf_counter() - started
            self._recorder.request("POST", self._fast_labels[url], 500, elapsed, None)

    def shutdown(self) -> None:
        # A fast request still arriving, or waiting in the batch: answer it, then close.
        if self._fast_route is not None or self._batched:
            self._fast_close = True
        else:
            super().shutdown()


class GuardedFastPathProtocol(GuardedProtocol, FastPathProtocol):
    """The fast path with the connection limits of ``limits.py`` in front (guarded_protocol.py)."""


def fast_path_enabled() -> bool:
    return os.environ.get(FAST_PATH_ENV, "1") != "0"
