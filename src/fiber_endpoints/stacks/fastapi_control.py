"""The control stack: FastAPI + pydantic + uvicorn + ``Booster.predict``, written the common way.

Not optimised on purpose: it stands for how most teams serve a model. The only additions are
what the contract requires (error shape and statuses, body limit, ``Server-Timing``) and
LightGBM's thread count sized to the CPUs the process may use.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fiber_endpoints import contract, cpus, limits, metrics, tracing, v2
from fiber_endpoints import rows as body_rows
from fiber_endpoints.contract import ContractError
from fiber_endpoints.model import MODEL_ENV
from fiber_endpoints.stacks import ServeOptions, exit_zero_on_stop_signal

STACK_NAME = "fastapi"

Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)] | None


class InferenceRequest(BaseModel):
    data: list[Feature]


class BatchRequest(BaseModel):
    data: list[list[Feature]]


class Model:
    """A LightGBM booster with the shape facts the contract needs."""

    def __init__(self, path: Path) -> None:
        self.booster = lgb.Booster(model_file=str(path))
        self.num_features = self.booster.num_feature()
        self.num_class = max(1, self.booster.num_model_per_iteration())
        # Booster(params={"num_threads": ...}) is ignored for a model file: pass it to predict().
        self.threads = cpus.usable_cpus()

    def predict(self, rows: list[list[float | None]]) -> list[Any]:
        x = np.array(rows, dtype=np.float64)  # None -> nan
        out = np.asarray(self.booster.predict(x, num_threads=self.threads))
        if not np.isfinite(out).all():
            raise contract.non_finite_output()
        result: list[Any] = out.tolist()
        return result

    def predict_values(self, values: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
        """Rows of a float64 matrix (NaN = missing): the outputs flat, row after row."""
        out = np.asarray(self.booster.predict(values, num_threads=self.threads))
        if not np.isfinite(out).all():
            raise contract.non_finite_output()
        result: list[float] = out.reshape(-1).tolist()
        return result

    def check_row(self, field: str, row: list[float | None]) -> None:
        if len(row) != self.num_features:
            raise contract.wrong_feature_count(field, self.num_features, len(row))


# Time spent in the predictor for the current request, read by the timing middleware.
inference_seconds: ContextVar[float] = ContextVar("inference_seconds", default=0.0)


class ContractMiddleware:
    """Body limit, content type and ``Server-Timing`` for the inference routes (plain ASGI);
    for V2's, body limit and ``Server-Timing`` once path, method and model are known good (an
    unknown model is the app's 404, whatever the body)."""

    def __init__(self, app: ASGIApp, model_name: str = v2.DEFAULT_MODEL_NAME) -> None:
        self.app = app
        self.model_name = model_name

    def _v2_infer(self, path: str) -> bool:
        try:
            return v2.resolve("POST", path, self.model_name).kind == v2.INFER
        except ContractError:
            return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if path in (contract.INFERENCE_PATH, contract.BATCH_PATH):
            await self._limited(scope, receive, send, json_only=True)
        elif v2.is_v2_path(path) and self._v2_infer(path):
            await self._limited(scope, receive, send, json_only=False)
        else:
            await self.app(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, json_only: bool) -> None:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > contract.MAX_BODY_BYTES:
            await _send_error(send, contract.body_too_large())
            return
        # Buffer the body here, so a chunked body over the limit is a 413 and not a parse error.
        chunks: list[bytes] = []
        received, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > contract.MAX_BODY_BYTES:
                await _send_error(send, contract.body_too_large())
                return
            more = message.get("more_body", False)
        # The contract's order: body size, then content type.
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if json_only and not contract.is_json_content_type(content_type):
            await _send_error(send, contract.wrong_content_type())
            return
        body: bytes | None = b"".join(chunks)
        started = time.perf_counter()
        token = inference_seconds.set(0.0)

        async def replay_receive() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: wait for disconnect
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        async def timed_send(message: Message) -> None:
            # As in every stack: on responses the handler made (2xx, 422), not on a 400.
            if message["type"] == "http.response.start" and message["status"] in (200, 422):
                value = contract.server_timing(
                    inference_seconds.get(), time.perf_counter() - started
                )
                message["headers"] = [*message.get("headers", []),
                                      (b"server-timing", value.encode())]  # fmt: skip
            await send(message)

        try:
            await self.app(scope, replay_receive, timed_send)
        finally:
            inference_seconds.reset(token)


async def _send_error(send: Send, error: ContractError) -> None:
    response = JSONResponse(error.body(), status_code=error.status)
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})  # fmt: skip
    await send({"type": "http.response.body", "body": response.body})


def _field_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc[1:]:  # loc[0] is "body"
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _overflows_float(value: Any) -> bool:
    """A JSON integer literal too large for a float64 (``1`` followed by 400 zeros)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return True
    return False


def validation_error(errors: list[dict[str, Any]], n_features: int, batch: bool) -> ContractError:
    """Turn pydantic's first error into the contract's message for the same field."""
    err = errors[0]
    kind, loc = err["type"], tuple(err["loc"])
    field = _field_name(loc)
    if kind == "json_invalid" or (kind == "missing" and loc == ("body",)):  # empty body
        return contract.malformed_json()
    if kind in ("model_attributes_type", "dict_type") or field == "body":
        return contract.not_an_object()
    if kind == "missing":
        return contract.missing_data()
    if kind == "finite_number" or _overflows_float(err.get("input")):
        return contract.out_of_range(field)
    if kind == "list_type":
        return contract.not_a_batch() if batch else contract.not_an_array(field, n_features)
    return contract.not_a_number(field)


class StrictJSONRequest(Request):
    """``NaN``/``Infinity`` are not JSON (RFC 8259): a 400 here as in every other stack."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = contract.loads_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        inference = self.path in (contract.INFERENCE_PATH, contract.BATCH_PATH)
        batch = self.path == contract.BATCH_PATH

        async def strict_handler(request: Request) -> Response:
            strict = StrictJSONRequest(request.scope, request.receive)
            if inference:
                await rows_by_name(strict, batch)
            return await handler(strict)

        return strict_handler


async def rows_by_name(request: StrictJSONRequest, batch: bool) -> None:
    """Rows given by feature name (``{"data": {"name": value}}``) are read by ``rows.py`` (the
    fast stack's reading: duplicates, names, the contract's order) and handed to the route in
    the model's order, as the positional body pydantic checks. Positional bodies go on as sent."""
    try:
        doc = await request.json()
    except ValueError:
        return  # malformed: FastAPI answers it
    if body_rows.uses_names(doc, batch):
        read = body_rows.read(await request.body(), request.app.state.features, batch)
        request._json = {"data": read if batch else read[0]}


def create_app(model_path: Path | None = None, model_name: str | None = None) -> FastAPI:
    path = model_path or Path(os.environ[MODEL_ENV])
    name = v2.check_model_name(
        model_name or os.environ.get(v2.MODEL_NAME_ENV, v2.DEFAULT_MODEL_NAME)
    )
    model = Model(path)
    tracer = tracing.setup(STACK_NAME)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        tracing.shutdown()  # flush spans on graceful stop

    # No redirect from /inference/ to /inference: paths are exact in every stack.
    app = FastAPI(
        title="fiber-endpoints control (FastAPI)", lifespan=lifespan, redirect_slashes=False
    )
    app.router.route_class = StrictJSONRoute

    @app.exception_handler(ContractError)
    async def contract_error(_: Request, exc: ContractError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(list(exc.errors()), model.num_features,
                               request.url.path == contract.BATCH_PATH)  # fmt: skip
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = contract.not_found(request.url.path)
        elif exc.status_code == 405:
            err = contract.method_not_allowed(request.method, request.url.path)
        elif exc.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
            err = contract.malformed_json()
        else:
            err = ContractError(exc.status_code, str(exc.detail))
        return JSONResponse(err.body(), status_code=err.status, headers=exc.headers)

    @app.get(contract.HEALTH_PATH)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "stack": STACK_NAME, "num_features": model.num_features,
                "num_class": model.num_class, "predictor": "lightgbm-booster"}  # fmt: skip

    @app.post(contract.INFERENCE_PATH)
    async def inference(request: InferenceRequest) -> dict[str, Any]:
        model.check_row("data", request.data)
        with tracing.inference_span(tracer, 1, model.num_features):
            started = time.perf_counter()
            prediction = model.predict([request.data])[0]
            inference_seconds.set(time.perf_counter() - started)
        return {"prediction": prediction}

    @app.post(contract.BATCH_PATH)
    async def inference_batch(request: BatchRequest) -> dict[str, Any]:
        if not request.data:
            raise contract.empty_batch()
        if len(request.data) > contract.MAX_BATCH_ROWS:
            raise contract.batch_too_large(len(request.data))
        for i, row in enumerate(request.data):
            model.check_row(f"data[{i}]", row)
        with tracing.inference_span(tracer, len(request.data), model.num_features):
            started = time.perf_counter()
            predictions = model.predict(request.data)
            inference_seconds.set(time.perf_counter() - started)
        return {"predictions": predictions}

    add_v2_routes(app, model, name, tracer)

    if tracer is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # receive/send spans excluded: see docs/tracing.md for the measured cost. Only the
        # inference routes are traced (V2's included), as in every stack.
        FastAPIInstrumentor.instrument_app(
            app,
            excluded_urls=",".join([contract.HEALTH_PATH, *v2.UNTRACED_URLS]),
            exclude_spans=["receive", "send"],
        )
    app.state.model_name = name
    app.state.model_path = path
    app.state.features = body_rows.FeatureNames.of(model.booster.feature_name())
    return app


def add_v2_routes(app: FastAPI, model: Model, model_name: str, tracer: Any) -> None:
    """Open Inference Protocol V2 over the same booster: routes here, the protocol (parsing,
    checks, messages, response) in :mod:`fiber_endpoints.v2`, shared with the fast stack."""

    def get(request: Request) -> Any:
        route = v2.resolve(request.method, request.url.path, model_name)
        return v2.get_body(route, STACK_NAME, model_name, model.num_features, model.num_class)

    async def infer(request: Request) -> Response:
        v2.resolve(request.method, request.url.path, model_name)
        header = request.headers.get(v2.HEADER_LENGTH)
        parsed = v2.parse_infer(
            await request.body(),
            header.encode("latin-1") if header is not None else None,
            model.num_features,
        )
        with tracing.inference_span(tracer, parsed.rows, model.num_features):
            started = time.perf_counter()
            rows = np.frombuffer(parsed.values).reshape(parsed.rows, model.num_features)
            flat = model.predict_values(rows)
            inference_seconds.set(time.perf_counter() - started)
        binary = parsed.binary_output
        doc = v2.response_doc(model_name, parsed.id, parsed.rows, model.num_class, flat, binary)
        head = json.dumps(doc, separators=(",", ":")).encode()
        if not binary:
            return Response(head, media_type=contract.JSON_CONTENT_TYPE)
        return Response(
            head + v2.binary_data(flat),
            media_type=v2.BINARY_CONTENT_TYPE,
            headers={v2.HEADER_LENGTH: str(len(head))},
        )

    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        app.get(path)(get)
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.get(base)(get)
        app.get(base + "/ready")(get)
        app.post(base + "/infer")(infer)


def asgi_app() -> ASGIApp:
    """uvicorn's factory: the app with the contract middleware around it, and the metrics
    middleware (``metrics.py``) outside both unless ``FIBER_ENDPOINTS_METRICS=0``."""
    app = create_app()
    outer: ASGIApp = ContractMiddleware(app, app.state.model_name)
    if not metrics.enabled():
        return outer
    name = app.state.model_name
    recorder = metrics.Recorder(STACK_NAME, "lightgbm-booster", name, app.state.model_path)

    def inference_s() -> float | None:
        value = inference_seconds.get()
        inference_seconds.set(0.0)  # the next request on this context starts from none
        return value or None

    return metrics.ASGIMiddleware(outer, recorder, inference_s)


def serve(opts: ServeOptions) -> None:
    import uvicorn

    os.environ[MODEL_ENV] = str(opts.model)
    os.environ[v2.MODEL_NAME_ENV] = opts.model_name
    if metrics.enabled():  # every worker writes its metrics there; any worker answers a scrape
        metrics.prepare_multiprocess_dir()
    exit_zero_on_stop_signal()
    uvicorn.run(
        "fiber_endpoints.stacks.fastapi_control:asgi_app",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        # uvicorn's own options for the limits (limits.py); it has none for a request read
        # timeout or a header size limit with httptools: a proxy in front must bound those.
        timeout_keep_alive=int(limits.IDLE_TIMEOUT_S),
        timeout_graceful_shutdown=int(limits.SHUTDOWN_TIMEOUT_S),
        limit_concurrency=limits.MAX_CONNECTIONS,
        backlog=limits.BACKLOG,
    )
