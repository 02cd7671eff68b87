"""The fast Python stack: a bare ASGI app on uvicorn (uvloop + httptools), msgspec, compiled model.

No framework between the server and the handler: the app reads path, method and two headers
from the ASGI scope, buffers the body under the contract's limit, and hands it to
:class:`~fiber_endpoints.stacks.msgspec_handler.Handler`. uvicorn supplies the HTTP parsing
(httptools, the llhttp parser of Node.js), keep-alive, workers (``--workers N`` share the port)
and graceful shutdown (SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0).
Why this server and not another: ``docs/fast-python.md``.

The predictor is the model compiled by lleaves (``lleaves_predictor.py``), checked against
LightGBM's C API on every start, or LightGBM's C API itself (``lgbm_capi.py``) when
``FIBER_ENDPOINTS_PREDICTOR=capi``, when lleaves is not installed, or when the check fails.

Tracing (``tracing.py``) is decided once at start: without a tracer the request path has no
OpenTelemetry code at all; with one, each ``/inference*`` request gets a SERVER span and the
predictor call a ``model-inference`` child span.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fiber_endpoints import contract, cpus, tracing
from fiber_endpoints.stacks import ServeOptions
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import JSON, Handler, Predictor, Reply

STACK_NAME = "asgi-msgspec"
MODEL_ENV = "FIBER_ENDPOINTS_MODEL"
WORKERS_ENV = "FIBER_ENDPOINTS_WORKERS"
PREDICTOR_ENV = "FIBER_ENDPOINTS_PREDICTOR"
PREDICTORS = ("lleaves", "capi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TOO_LARGE = Handler.error(contract.body_too_large())
_WRONG_TYPE = Handler.error(contract.wrong_content_type())


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", JSON), (b"content-length", str(len(reply.body)).encode())]
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
    """The ASGI application: routing and the contract's checks before the handler."""

    def __init__(self, handler: Handler, tracer: Any = None) -> None:
        self.handler = handler
        self.tracer = tracer
        self._routes: dict[str, Callable[[bytes], Reply]] = {
            contract.INFERENCE_PATH: handler.single,
            contract.BATCH_PATH: handler.batch,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        method, path = scope["method"], scope["path"]
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
        await _send(send, reply)
        return reply.status

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                tracing.shutdown()  # flush spans on graceful stop
                await send({"type": "lifespan.shutdown.complete"})
                return


def _log(message: str) -> None:
    print(f"{STACK_NAME}: {message}", file=sys.stderr, flush=True)


def load_predictor(path: Path, threads: int, kind: str | None = None) -> Predictor:
    """``lleaves`` (default): the compiled model, used only once it agrees with LightGBM's C API
    on random rows at start; otherwise, or with ``capi``, LightGBM's own C API."""
    kind = kind or os.environ.get(PREDICTOR_ENV, "lleaves")
    if kind not in PREDICTORS:
        raise ValueError(f"{PREDICTOR_ENV}={kind!r}: expected one of {', '.join(PREDICTORS)}")
    capi = CapiPredictor(path, threads=threads)
    if kind == "capi":
        _log("predictor: LightGBM C API")
        return capi
    try:
        from fiber_endpoints.stacks.lleaves_predictor import LleavesPredictor, check_parity

        compiled = LleavesPredictor(path, threads=threads)
    except Exception as exc:  # lleaves/llvmlite not installed, or the compile failed
        _log(f"lleaves unavailable ({type(exc).__name__}: {exc}); predictor: LightGBM C API")
        return capi
    errors = check_parity(compiled, capi)
    if errors:
        _log(f"lleaves disagrees with LightGBM ({errors[0]}); predictor: LightGBM C API")
        compiled.close()
        return capi
    capi.close()
    _log("predictor: lleaves (compiled), parity with LightGBM checked")
    return compiled


def create_app(model_path: Path | None = None, workers: int | None = None) -> App:
    """Load the model and build the app (uvicorn's factory; runs in each worker process)."""
    path = model_path or Path(os.environ[MODEL_ENV])
    workers = workers or int(os.environ.get(WORKERS_ENV, "1"))
    # The batch path's threads share the usable CPUs with the other workers.
    predictor = load_predictor(path, threads=max(1, cpus.usable_cpus() // workers))
    tracer = tracing.setup(STACK_NAME)
    return App(Handler(predictor, STACK_NAME, tracer), tracer)


def _exit_zero(signum: int, frame: object) -> None:
    sys.exit(0)


def serve(opts: ServeOptions) -> None:
    import uvicorn

    os.environ[MODEL_ENV] = str(opts.model)
    os.environ[WORKERS_ENV] = str(opts.workers)
    if os.environ.get(PREDICTOR_ENV, "lleaves") == "lleaves":
        try:  # compile once here (20-60 s the first time), so every worker loads the cache
            from fiber_endpoints.stacks.lleaves_predictor import ensure_compiled

            ensure_compiled(opts.model)
        except Exception:  # not installed, or the compile failed: load_predictor says so
            pass  # and uses the C API
    # uvicorn shuts down gracefully, then re-raises the signal it caught: make that an exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_zero)
    uvicorn.run(
        "fiber_endpoints.stacks.asgi_msgspec:create_app",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level="warning",
    )
