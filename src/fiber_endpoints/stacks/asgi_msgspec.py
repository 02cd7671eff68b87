"""The fast Python stack: a bare ASGI app on uvicorn (uvloop + httptools), msgspec, compiled model.

No framework between the server and the handler: the app reads path, method and two headers
from the ASGI scope, buffers the body under the contract's limit, and hands it to
:class:`~fiber_endpoints.stacks.msgspec_handler.Handler`. uvicorn supplies the HTTP parsing
(httptools, the llhttp parser of Node.js), keep-alive, workers (``--workers N`` share the port)
and graceful shutdown (SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0).
Why this server and not another: ``docs/fast-python.md``.

One shortcut inside uvicorn (:class:`FastPathProtocol`, its documented ``http=`` protocol class
option): the plain case of the two inference routes (POST, HTTP/1.1, ``application/json``, a
``Content-Length`` within the limit, nothing else in flight on the connection) is
answered by the same handler straight from uvicorn's httptools protocol, without the asyncio Task,
Event, scope and messages of an ASGI cycle (~35 µs of the ~40 µs gap to Fiber's p50). So is a V2
inference request to the served model (``/v2/models/{name}[/versions/1]/infer``, any content
type, JSON or binary tensor data). Every other request goes through the ASGI app below, unchanged.
``FIBER_ENDPOINTS_FAST_PATH=0`` turns it off. On the fast path the rows of the ``/inference``
requests that complete in one event-loop turn are predicted in one call (``row_batching.py``;
no added wait; ``FIBER_ENDPOINTS_BATCHING=0`` turns it off).

The predictor is the model compiled by lleaves (``lleaves_predictor.py``), checked against
LightGBM's C API on every start, or LightGBM's C API itself (``lgbm_capi.py``) when
``FIBER_ENDPOINTS_PREDICTOR=capi``, when lleaves is not installed, or when the check fails.

Tracing (``tracing.py``) is decided once at start: without a tracer the request path has no
OpenTelemetry code at all; with one, each ``/inference*`` request gets a SERVER span and the
predictor call a ``model-inference`` child span. On the fast path the sampling decision is made
per request and a sampled request's times recorded; the spans are built by the SDK later, off
the request (``deferred_tracing.py``). Metrics (``metrics.py``): ``GET /metrics``, and every
request's duration recorded in place on both paths.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fiber_endpoints import contract, cpus, limits, metrics, rows, tracing, v2
from fiber_endpoints.contract import ContractError
from fiber_endpoints.model import MODEL_ENV
from fiber_endpoints.stacks import ServeOptions, exit_zero_on_stop_signal, row_batching
from fiber_endpoints.stacks.guarded_protocol import GuardedHttpToolsProtocol, GuardedProtocol
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import JSON, Handler, Predictor, Reply
from fiber_endpoints.stacks.msgspec_v2 import V2Handler

if TYPE_CHECKING:
    from fiber_endpoints.deferred_tracing import DeferredSpans, Trace

STACK_NAME = "asgi-msgspec"
WORKERS_ENV = "FIBER_ENDPOINTS_WORKERS"
PREDICTOR_ENV = "FIBER_ENDPOINTS_PREDICTOR"
FAST_PATH_ENV = "FIBER_ENDPOINTS_FAST_PATH"
PREDICTORS = ("lleaves", "capi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TOO_LARGE = Handler.error(contract.body_too_large())
_WRONG_TYPE = Handler.error(contract.wrong_content_type())
_HEADER_LENGTH = v2.HEADER_LENGTH.encode()
_INFERENCE_KEY = "fiber_endpoints.inference_s"  # the predictor's time, in the ASGI scope
# A V2 inference route takes the body and its Inference-Header-Content-Length (or None).
V2Route = Callable[[bytes, bytes | None], Reply]


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    if reply.header_length is not None:
        headers.append((_HEADER_LENGTH, reply.header_length))
    if reply.server_timing is not None:
        headers.append((b"server-timing", reply.server_timing))
    if reply.allow is not None:
        headers.append((b"allow", reply.allow))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or ``None`` past the limit (chunked bodies included) or on disconnect."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= contract.MAX_BODY_BYTES else None
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > contract.MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class App:
    """The ASGI application: routing and the contract's checks before the handler; ``GET
    /metrics`` and every other request's duration when ``recorder`` is set (``metrics.py``)."""

    def __init__(
        self,
        handler: Handler,
        tracer: Any = None,
        v2_handler: V2Handler | None = None,
        recorder: metrics.Recorder | None = None,
        deferred: DeferredSpans | None = None,
    ):
        self.handler = handler
        self.tracer = tracer
        self.recorder = recorder
        self._routes: dict[str, Callable[[bytes], Reply]] = {
            contract.INFERENCE_PATH: handler.single,
            contract.BATCH_PATH: handler.batch,
        }
        self.v2 = v2_handler or V2Handler(handler, STACK_NAME, v2.DEFAULT_MODEL_NAME)
        # With tracing on, the fast path traces through ``deferred`` (deferred_tracing.py): an
        # unsampled request is answered by a handler without spans, a sampled one by a handler
        # that records the predictor call's times; the ASGI path keeps the SDK's spans.
        self.deferred = deferred
        self.record_handler: Handler | None = None
        self._fast = self._record = handler, self.v2
        if deferred is not None:
            plain = Handler(handler.predictor, STACK_NAME, features=handler.features)
            self.record_handler = Handler(
                handler.predictor, STACK_NAME, record=True, features=handler.features
            )
            name = self.v2.model_name
            self._fast = plain, V2Handler(plain, STACK_NAME, name)
            self._record = self.record_handler, V2Handler(self.record_handler, STACK_NAME, name)
        # The fast path's unsampled single-row requests, predicted per event-loop turn.
        self.batcher = row_batching.RowBatcher(self._fast[0]) if row_batching.enabled() else None

    def fast_routes(self, record: bool = False) -> dict[bytes, Callable[[bytes], Reply]]:
        """Raw request target -> handler, for :class:`FastPathProtocol` (``record``: for the
        sampled requests); none with tracing on but no deferred spans."""
        if self.tracer is not None and self.deferred is None:
            return {}
        handler = (self._record if record else self._fast)[0]
        return {contract.INFERENCE_PATH.encode(): handler.single,
                contract.BATCH_PATH.encode(): handler.batch}  # fmt: skip

    def fast_v2_routes(self, record: bool = False) -> dict[bytes, V2Route]:
        """The V2 inference paths of the served model, as :meth:`fast_routes`."""
        if self.tracer is not None and self.deferred is None:
            return {}
        infer = (self._record if record else self._fast)[1].infer
        return {path.encode(): infer for path in v2.infer_paths(self.v2.model_name)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        recorder = self.recorder
        if recorder is None:
            await self._http(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path == metrics.METRICS_PATH:  # neither traced nor counted
            if method == "GET":
                reply = Reply(200, recorder.exposition(), content_type=metrics.CONTENT_TYPE)
            else:
                error = Handler.error(contract.method_not_allowed(method, path))
                reply = Reply(error.status, error.body, allow=b"GET")
            await _send(send, reply)
            return
        started = perf_counter()
        status = 500
        recorder.active += 1

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._http(scope, receive, sent)
        finally:
            recorder.active -= 1
            elapsed = perf_counter() - started
            inference_s = scope.get(_INFERENCE_KEY)
            label = metrics.method_label(method)
            recorder.request(label, recorder.route(path), status, elapsed, inference_s)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if v2.is_v2_path(path):
            await self._v2(method, path, scope, receive, send)
            return
        route = self._routes.get(path)
        if route is None or method != "POST":
            rejected = Handler.route_error(method, path)
            await _send(send, rejected or Reply(200, self.handler.health_body))
            return
        if self.tracer is None:
            await self._inference(route, scope, receive, send)
            return
        with tracing.server_span(self.tracer, method, path, scope["headers"]) as span:
            status = await self._inference(route, scope, receive, send)
            span.set_status_code(status)

    async def _inference(
        self, route: Callable[[bytes], Reply], scope: Scope, receive: Receive, send: Send
    ) -> int:
        content_type = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if length is not None and length.isdigit() and int(length) > contract.MAX_BODY_BYTES:
            reply = _TOO_LARGE
        elif content_type != JSON and not contract.is_json_content_type(
            content_type.decode("latin-1") if content_type is not None else None
        ):
            reply = _WRONG_TYPE
        else:
            body = await _read_body(receive)
            # None: too large, or the client went away (and this send is then dropped).
            reply = _TOO_LARGE if body is None else route(body)
        scope[_INFERENCE_KEY] = reply.inference_s
        await _send(send, reply)
        return reply.status

    async def _v2(self, method: str, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """V2: route, model and version (:func:`v2.resolve`), then GET bodies or inference."""
        try:
            route = v2.resolve(method, path, self.v2.model_name)
        except ContractError as err:
            reply = Handler.error(err)
            if err.status == 405:
                allowed = v2.match(path)
                allow = allowed.method.encode() if allowed else None
                reply = Reply(reply.status, reply.body, allow=allow)
            await _send(send, reply)
            return
        if route.kind != v2.INFER:
            await _send(send, self.v2.get(route))
            return
        if self.tracer is None:
            await self._v2_infer(scope, receive, send)
            return
        with tracing.server_span(self.tracer, method, path, scope["headers"]) as span:
            span.set_status_code(await self._v2_infer(scope, receive, send))

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Body limit as in the contract; no content type required (tritonclient sends none)."""
        header = length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == _HEADER_LENGTH and header is None:
                header = value
        if length is not None and length.isdigit() and int(length) > contract.MAX_BODY_BYTES:
            reply = _TOO_LARGE
        else:
            body = await _read_body(receive)
            reply = _TOO_LARGE if body is None else self.v2.infer(body, header)
        scope[_INFERENCE_KEY] = reply.inference_s
        await _send(send, reply)
        return reply.status

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.recorder is not None:
                    self.recorder.start(asyncio.get_running_loop())
                if self.deferred is not None:
                    self.deferred.start(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.recorder is not None:
                    self.recorder.stop()
                if self.deferred is not None:
                    self.deferred.stop()  # every recorded span to the processor, then flushed
                tracing.shutdown()  # flush spans on graceful stop
                await send({"type": "lifespan.shutdown.complete"})
                return


_JSON_HEAD = b"content-type: " + JSON + b"\r\ncontent-length: "


class FastPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering the inference routes' plain case in place.

    uvicorn hands each request to an ASGI app through an asyncio Task, an Event, a scope dict, a
    receive and two send messages, and writes head and body separately. This subclass skips all
    that only when a request is the plain case: a route of :meth:`App.fast_routes`, POST, HTTP/1.1,
    ``Content-Type: application/json`` exactly (or a route of :meth:`App.fast_v2_routes`, any
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
        app = self.app  # the App itself only without uvicorn's wrappers (serve turns them off)
        plain = isinstance(app, App) and not self.root_path and self.limit_concurrency is None
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
            elif name == _HEADER_LENGTH and header is None:
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
            return
        if self._batched:  # answers due on this connection go out before this one
            self._flush_batch()
        self._answer(reply, started, url, keep_alive and not self._fast_close)
        trace = self._fast_trace
        if trace is not None and self._spans is not None and self._record_handler is not None:
            self._fast_trace = None
            path = url.decode("latin-1")
            inference = self._record_handler.inference_ns
            self._spans.add(trace, "POST", path, self._fast_start_ns, reply.status, inference)

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
        self._batched -= 1
        if not self.transport.is_closing():
            self._write_500(started, ticket[0])

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
            parts += [_HEADER_LENGTH, b": ", reply.header_length, b"\r\n"]
        if reply.server_timing is not None:
            parts += [b"server-timing: ", reply.server_timing, b"\r\n"]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", reply.body]
        self.transport.write(b"".join(parts))
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


def _log(message: str) -> None:
    print(f"{STACK_NAME}: {message}", file=sys.stderr, flush=True)


def load_predictor(path: Path, threads: int, kind: str | None = None) -> Predictor:
    """``lleaves`` (default): the compiled model, used only when its artefact for this exact
    model file agreed with LightGBM's C API (checked at compile time, ``fiber-endpoints
    compile`` or the first start, and certified by the model's SHA-256); otherwise, or with
    ``capi``, LightGBM's own C API."""
    kind = kind or os.environ.get(PREDICTOR_ENV, "lleaves")
    if kind not in PREDICTORS:
        raise ValueError(f"{PREDICTOR_ENV}={kind!r}: expected one of {', '.join(PREDICTORS)}")
    if kind == "capi":
        _log("predictor: LightGBM C API")
        return CapiPredictor(path, threads=threads)
    try:
        from fiber_endpoints.stacks.lleaves_predictor import LleavesPredictor

        compiled = LleavesPredictor(path, threads=threads, check=True)
    except ValueError as exc:  # the parity check failed: never served
        _log(f"{exc}; predictor: LightGBM C API")
        return CapiPredictor(path, threads=threads)
    except Exception as exc:  # lleaves/llvmlite not installed, or the compile failed
        _log(f"lleaves unavailable ({type(exc).__name__}: {exc}); predictor: LightGBM C API")
        return CapiPredictor(path, threads=threads)
    _log("predictor: lleaves (compiled), parity with LightGBM certified for this model file")
    return compiled


def create_app(
    model_path: Path | None = None, workers: int | None = None, model_name: str | None = None
) -> App:
    """Load the model and build the app (uvicorn's factory; runs in each worker process)."""
    path = model_path or Path(os.environ[MODEL_ENV])
    workers = workers or int(os.environ.get(WORKERS_ENV, "1"))
    name = model_name or os.environ.get(v2.MODEL_NAME_ENV, v2.DEFAULT_MODEL_NAME)
    # The batch path's threads share the usable CPUs with the other workers.
    predictor = load_predictor(path, threads=max(1, cpus.usable_cpus() // workers))
    tracer = tracing.setup(STACK_NAME)
    features = rows.FeatureNames.of(rows.read_feature_names(path))
    handler = Handler(predictor, STACK_NAME, tracer, features=features)
    deferred = None
    if tracer is not None and fast_path_enabled():
        from fiber_endpoints import deferred_tracing

        deferred = deferred_tracing.setup(tracer, predictor.num_features)
    name = v2.check_model_name(name)
    recorder = None
    if metrics.enabled():
        recorder = metrics.Recorder(STACK_NAME, predictor.name, name, path)
    return App(handler, tracer, V2Handler(handler, STACK_NAME, name), recorder, deferred)


def serve(opts: ServeOptions) -> None:
    import uvicorn

    os.environ[MODEL_ENV] = str(opts.model)
    os.environ[WORKERS_ENV] = str(opts.workers)
    os.environ[v2.MODEL_NAME_ENV] = opts.model_name
    if metrics.enabled():  # every worker writes its metrics there; any worker answers a scrape
        metrics.prepare_multiprocess_dir()
    if os.environ.get(PREDICTOR_ENV, "lleaves") == "lleaves":
        try:  # compile and check once here (20-60 s the first time); every worker loads it
            from fiber_endpoints.stacks.lleaves_predictor import ensure_compiled

            ensure_compiled(opts.model)
        except Exception:  # not installed, or the compile failed: load_predictor says so
            pass  # and uses the C API
    exit_zero_on_stop_signal()
    uvicorn.run(
        "fiber_endpoints.stacks.asgi_msgspec:create_app",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        loop="uvloop",
        # The limits (limits.py) in our own protocol subclass: uvicorn has no option for most.
        http=GuardedFastPathProtocol if fast_path_enabled() else GuardedHttpToolsProtocol,
        timeout_keep_alive=int(limits.IDLE_TIMEOUT_S),
        timeout_graceful_shutdown=int(limits.SHUTDOWN_TIMEOUT_S),
        backlog=limits.BACKLOG,
        # The app never reads the client address or scheme; and the fast path needs the App
        # itself, not uvicorn's X-Forwarded-* middleware around it.
        proxy_headers=False,
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level="warning",
    )
