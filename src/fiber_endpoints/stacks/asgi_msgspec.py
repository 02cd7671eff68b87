"""The fast Python stack: a bare ASGI app on uvicorn (uvloop + httptools), msgspec, compiled model.

No framework between the server and the handler: the app reads path, method and two headers
from the ASGI scope, buffers the body under the contract's limit, and hands it to
:class:`~fiber_endpoints.stacks.msgspec_handler.Handler`. uvicorn supplies the HTTP parsing
(httptools, the llhttp parser of Node.js), keep-alive, workers (``--workers N`` share the port)
and graceful shutdown (SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0).
Why this server and not another: ``docs/fast-python.md``.

One shortcut inside uvicorn (``fast_path.py``, uvicorn's documented ``http=`` protocol class
option): the plain case of the two inference routes (POST, HTTP/1.1, ``application/json``, a
``Content-Length`` within the limit, nothing else in flight on the connection) and of V2
inference to the served model is answered by the same handler straight from uvicorn's httptools
protocol, without the asyncio Task, Event, scope and messages of an ASGI cycle. Every other
request goes through the ASGI app below, unchanged. ``FIBER_ENDPOINTS_FAST_PATH=0`` turns it
off. On the fast path the rows of the ``/inference`` requests that complete in one event-loop turn
are predicted in one call (``row_batching.py``; no added wait; ``FIBER_ENDPOINTS_BATCHING=0``
turns it off).

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
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fiber_endpoints import contract, cpus, limits, metrics, rows, tracing, v2
from fiber_endpoints.contract import ContractError
from fiber_endpoints.model import MODEL_ENV
from fiber_endpoints.stacks import (
    ServeOptions,
    accept_all,
    exit_zero_on_stop_signal,
    idle_spin,
    row_batching,
)
from fiber_endpoints.stacks.fast_path import GuardedFastPathProtocol, V2Route, fast_path_enabled
from fiber_endpoints.stacks.guarded_protocol import GuardedHttpToolsProtocol
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import JSON, Handler, Predictor, Reply
from fiber_endpoints.stacks.msgspec_v2 import V2Handler
from fiber_endpoints.v2 import HEADER_LENGTH_RAW

if TYPE_CHECKING:
    from fiber_endpoints.deferred_tracing import DeferredSpans

STACK_NAME = "asgi-msgspec"
WORKERS_ENV = "FIBER_ENDPOINTS_WORKERS"
PREDICTOR_ENV = "FIBER_ENDPOINTS_PREDICTOR"
PREDICTORS = ("lleaves", "capi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TOO_LARGE = Handler.error(contract.body_too_large())
_WRONG_TYPE = Handler.error(contract.wrong_content_type())
_INFERENCE_KEY = "fiber_endpoints.inference_s"  # the predictor's time, in the ASGI scope


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    if reply.header_length is not None:
        headers.append((HEADER_LENGTH_RAW, reply.header_length))
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

    serves_fast_path = True  # fast_path.py answers the plain case of its fast routes

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
            elif name == HEADER_LENGTH_RAW and header is None:
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
    idle_spin.configured_s()  # a malformed FIBER_ENDPOINTS_IDLE_SPIN_US stops the start, here
    exit_zero_on_stop_signal()
    uvicorn.run(
        "fiber_endpoints.stacks.asgi_msgspec:create_app",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        # uvloop, with a listener that accepts every waiting connection per turn (accept_all.py).
        # Several workers share one listening socket: there uvloop's one accept per turn spreads
        # a burst of new connections over them, where the first to wake would take it all.
        loop=accept_all.LOOP if opts.workers == 1 and accept_all.enabled() else "uvloop",
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
