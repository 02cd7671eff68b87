"""The asgi-msgspec stack in process: C API parity on every golden model, validation on a table
of bad bodies (the same answers as the control stack), and the ASGI app's contract checks."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import shutil
import struct
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from fake_transport import FakeTransport
from fiber_endpoints import contract, model, paths
from fiber_endpoints.stacks import asgi_msgspec, fast_path, row_batching
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler

MODELS = {
    name: model.MODELS_DIR / name / "model.txt" for name in ("regression", "binary", "multiclass")
}
N = 20
ROW = [0.5] * N
GOOD = json.dumps({"data": ROW}).encode()


def _rows(golden: model.Golden) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in golden.rows]


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    predictor = CapiPredictor(MODELS["regression"], threads=1)
    yield Handler(predictor, asgi_msgspec.STACK_NAME)
    predictor.close()


# -- parity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_single_row_parity(name: str) -> None:
    golden = model.load_golden(MODELS[name])
    predictor = CapiPredictor(MODELS[name], threads=1)
    assert predictor.num_features == golden.num_features
    assert predictor.num_class == golden.num_class
    got = [predictor.predict_row(row) for row in _rows(golden)]
    assert model.parity_errors(got, golden) == []
    assert got == golden.predictions  # the same trees and code as Booster.predict: bit for bit


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_batch_parity(name: str, threads: int) -> None:
    golden = model.load_golden(MODELS[name])
    predictor = CapiPredictor(MODELS[name], threads=threads)
    got = predictor.predict_rows(_rows(golden))
    assert model.parity_errors(got, golden) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_handler_parity_through_json(name: str) -> None:
    """What goes over the wire (msgspec's float output) round-trips to LightGBM's numbers."""
    golden = model.load_golden(MODELS[name])
    h = Handler(CapiPredictor(MODELS[name], threads=1), "test")
    rows = _rows(golden)
    single = [
        json.loads(h.single(json.dumps({"data": r}).encode()).body)["prediction"] for r in rows
    ]
    assert single == golden.predictions
    batch = h.batch(json.dumps({"data": rows}).encode())
    assert batch.status == 200
    assert json.loads(batch.body)["predictions"] == golden.predictions


# Compiling the 500-tree regression model takes 20-60 s on a cold cache: the slow tier's.
LLEAVES_CASES = [
    pytest.param(name, marks=[pytest.mark.slow] if name == "regression" else [])
    for name in sorted(MODELS)
]


@pytest.mark.parametrize("name", LLEAVES_CASES)
def test_lleaves_parity(name: str) -> None:
    """The compiled model agrees with LightGBM within 1e-9, one row at a time and batched
    (also split over two threads: more rows than the per-thread minimum)."""
    from fiber_endpoints.stacks.lleaves_predictor import LleavesPredictor

    golden = model.load_golden(MODELS[name])
    predictor = LleavesPredictor(MODELS[name], threads=2)
    assert (predictor.num_features, predictor.num_class) == (N, golden.num_class)
    rows = _rows(golden)
    assert model.parity_errors([predictor.predict_row(r) for r in rows], golden) == []
    assert model.parity_errors(predictor.predict_rows(rows), golden) == []
    many = predictor.predict_rows(rows * 4)
    for i in range(4):
        part = many[i * len(rows) : (i + 1) * len(rows)]
        assert model.parity_errors(part, golden) == []
    predictor.close()


def test_load_predictor_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fiber_endpoints.stacks.lleaves_predictor import LleavesPredictor

    path = MODELS["binary"]
    assert isinstance(asgi_msgspec.load_predictor(path, 1, "capi"), CapiPredictor)
    assert isinstance(asgi_msgspec.load_predictor(path, 1, "lleaves"), LleavesPredictor)
    with pytest.raises(ValueError, match="expected one of"):
        asgi_msgspec.load_predictor(path, 1, "leaves")
    # Fakes, because neither failure can be produced on demand with a real toolchain: a failing
    # LLVM compile, and a compiled model that disagrees with LightGBM.
    # A compile that fails falls back to the C API.
    with monkeypatch.context() as m:
        m.setattr(LleavesPredictor, "__init__", lambda *a, **k: (_ for _ in ()).throw(OSError()))
        assert isinstance(asgi_msgspec.load_predictor(path, 1, "lleaves"), CapiPredictor)
    # A compiled model that disagrees with LightGBM is never used (a fresh cache: the check
    # runs when the artefact is made, and its certificate is what later starts trust).
    from fiber_endpoints.stacks import lleaves_predictor

    obj = lleaves_predictor.cache_path(path)  # compiled above: copied, not compiled again
    (tmp_path / "lleaves").mkdir()
    shutil.copy(obj, tmp_path / "lleaves" / obj.name)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(LleavesPredictor, "predict_row", lambda self, row: 0.0)
    assert isinstance(asgi_msgspec.load_predictor(path, 1, "lleaves"), CapiPredictor)
    assert not list(tmp_path.glob("lleaves/*.parity.json"))  # no certificate for it


def test_missing_values_in_a_batch_do_not_shift_rows(handler: Handler) -> None:
    golden = model.load_golden(MODELS["regression"])
    rows = _rows(golden)
    # A None in the middle of a row makes the fast path fall back: the row must stay whole.
    with_none = [i for i, r in enumerate(rows) if None in r]
    assert with_none
    got = handler.predictor.predict_rows([rows[i] for i in with_none])
    assert got == [golden.predictions[i] for i in with_none]


# -- validation ----------------------------------------------------------------------------------
def _row(*values: str) -> bytes:
    """A single-row body: the given JSON tokens, padded with 1s to N features."""
    return b'{"data": [' + ", ".join([*values, *["1"] * (N - len(values))]).encode() + b"]}"


def _batch(*rows: str) -> bytes:
    return b'{"data": [' + ", ".join(rows).encode() + b"]}"


GOOD_ROW = "[" + ", ".join(["1"] * N) + "]"

SINGLE_CASES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "malformed JSON body"),
    ("truncated", b'{"data": [1', 400, "malformed JSON body"),
    ("nan-token", _row("NaN"), 400, "malformed JSON body"),
    ("infinity-token", _row("Infinity"), 400, "malformed JSON body"),
    ("minus-infinity", _row("-Infinity"), 400, "malformed JSON body"),
    ("trailing", GOOD + b" x", 400, "malformed JSON body"),
    ("array", b"[]", 422, 'body must be a JSON object with a "data" field'),
    ("null-body", b"null", 422, 'body must be a JSON object with a "data" field'),
    ("string-body", b'"x"', 422, 'body must be a JSON object with a "data" field'),
    ("no-data", b'{"rows": []}', 422, "data: field required"),
    ("data-null", b'{"data": null}', 422, "data: expected an array of 20 numbers"),
    (
        "data-object",
        b'{"data": {}}',
        422,
        contract.unknown_or_missing("data", [], [f"Column_{i}" for i in range(N)]).message,
    ),
    ("data-string", b'{"data": "1,2"}', 422, "data: expected an array of 20 numbers"),
    ("short", b'{"data": [1, 2]}', 422, "data: expected 20 features, got 2"),
    ("long", _row(*["1"] * 21), 422, "data: expected 20 features, got 21"),
    ("empty-row", b'{"data": []}', 422, "data: expected 20 features, got 0"),
    ("string", _row("1", "2", "3", "4", '"5"'), 422, "data[4]: expected a number or null"),
    ("true", _row("true"), 422, "data[0]: expected a number or null"),
    ("false", _row("1", "false"), 422, "data[1]: expected a number or null"),
    ("object", _row("{}"), 422, "data[0]: expected a number or null"),
    ("nested", _row("[1]"), 422, "data[0]: expected a number or null"),
    ("1e400", _row("1", "1", "1", "1", "1e400"), 422, "data[4]: number out of range"),
    ("-1e400", _row("-1e400"), 422, "data[0]: number out of range"),
    ("first-error-wins", _row('"x"', "1e400"), 422, "data[0]: expected a number or null"),
    ("value-before-length", b'{"data": [1, true]}', 422, "data[1]: expected a number or null"),
]

BATCH_CASES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "malformed JSON body"),
    ("nan-token", _batch("[NaN]"), 400, "malformed JSON body"),
    ("array", b"[[1]]", 422, 'body must be a JSON object with a "data" field'),
    ("no-data", b"{}", 422, "data: field required"),
    ("no-rows", b'{"data": []}', 422, "data: batch must have at least 1 row"),
    ("flat", b'{"data": [1, 2]}', 422, "data: expected an array of rows (arrays of numbers)"),
    ("not-array", b'{"data": 3}', 422, "data: expected an array of rows (arrays of numbers)"),
    ("null-row", b'{"data": [null]}', 422, "data: expected an array of rows (arrays of numbers)"),
    ("short-row", _batch(GOOD_ROW, "[1, 2]"), 422, "data[1]: expected 20 features, got 2"),
    ("bad-value", _batch(GOOD_ROW, '["x"]'), 422, "data[1][0]: expected a number or null"),
    ("range", _batch("[1, 1e400]"), 422, "data[0][1]: number out of range"),
    ("value-before-row-type", _batch('["x"]', "1"), 422, "data[0][0]: expected a number or null"),
    (
        "value-before-count",
        _batch(*['["x"]'] * 10_001),
        422,
        "data[0][0]: expected a number or null",
    ),
    (
        "too-many",
        _batch(*["[1]"] * 10_001),
        422,
        "data: batch has 10001 rows, at most 10000 allowed",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES]
)
def test_single_validation(
    handler: Handler, case: str, body: bytes, status: int, message: str
) -> None:
    reply = handler.single(body)
    assert (reply.status, json.loads(reply.body)) == (status, {"error": message})
    # Server-Timing on 2xx and 422 (inference 0), not on a 400.
    if status == 422:
        assert reply.server_timing is not None
        assert reply.server_timing.startswith(b"inference;dur=0.000000, app;dur=")
    else:
        assert reply.server_timing is None


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BATCH_CASES, ids=[c[0] for c in BATCH_CASES]
)
def test_batch_validation(
    handler: Handler, case: str, body: bytes, status: int, message: str
) -> None:
    reply = handler.batch(body)
    assert (reply.status, json.loads(reply.body)) == (status, {"error": message})


def test_null_is_missing_and_ints_are_numbers(handler: Handler) -> None:
    with_null = handler.single(_row("null", "2"))
    as_nan = handler.predictor.predict_row([math.nan, 2.0, *[1.0] * (N - 2)])
    assert with_null.status == 200
    assert json.loads(with_null.body) == {"prediction": as_nan}
    assert handler.single(_row("1", "2")).body == handler.single(_row("1.0", "2.0")).body


def test_huge_integer_literal_is_out_of_range(handler: Handler) -> None:
    """An integer past float64 is 'a number that does not fit a float64' (the contract's 422
    out of range); the control stack calls it 'expected a number or null'."""
    reply = handler.single(_row("1" + "0" * 400))
    assert json.loads(reply.body) == {"error": "data[0]: number out of range"}


def test_success_carries_server_timing(handler: Handler) -> None:
    reply = handler.single(GOOD)
    assert reply.status == 200
    assert reply.server_timing is not None
    inference, app = (
        float(part.split("=")[1]) for part in reply.server_timing.decode().split(", ")
    )
    assert 0 < inference <= app


@pytest.fixture(scope="module")
def control() -> Any:
    from fastapi.testclient import TestClient

    from fiber_endpoints.stacks import fastapi_control

    return TestClient(
        fastapi_control.ContractMiddleware(fastapi_control.create_app(MODELS["regression"]))
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [(contract.INFERENCE_PATH, c[1]) for c in SINGLE_CASES]
    + [(contract.BATCH_PATH, c[1]) for c in BATCH_CASES]
    + [(contract.INFERENCE_PATH, GOOD), (contract.BATCH_PATH, _batch(GOOD_ROW, GOOD_ROW))],
)
def test_same_answers_as_the_control(
    handler: Handler, control: Any, path: str, body: bytes
) -> None:
    want = control.post(path, content=body, headers={"content-type": "application/json"})
    got = handler.single(body) if path == contract.INFERENCE_PATH else handler.batch(body)
    assert (got.status, json.loads(got.body)) == (want.status_code, want.json())


# -- the ASGI app --------------------------------------------------------------------------------
def _call(
    app: asgi_msgspec.App,
    method: str,
    path: str,
    body_chunks: list[bytes] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    chunks = list(body_chunks or [b""])
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers if headers is not None else [(b"content-type", JSON)],
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


JSON = b"application/json"


@pytest.fixture(scope="module")
def app(handler: Handler) -> asgi_msgspec.App:
    return asgi_msgspec.App(handler)


def test_app_routes(app: asgi_msgspec.App) -> None:
    status, headers, body = _call(app, "GET", "/health")
    assert status == 200
    assert json.loads(body) == {
        "status": "ok",
        "stack": "asgi-msgspec",
        "num_features": N,
        "num_class": 1,
        "predictor": "lightgbm-c-api",
    }
    status, _, body = _call(app, "GET", "/foo")
    assert (status, json.loads(body)) == (404, {"error": "not found: /foo"})
    status, headers, body = _call(app, "GET", "/inference")
    assert (status, headers[b"allow"]) == (405, b"POST")
    assert json.loads(body) == {"error": "method GET not allowed on /inference"}
    status, headers, _ = _call(app, "POST", "/health")
    assert (status, headers[b"allow"]) == (405, b"GET")


def test_app_inference_and_content_type(app: asgi_msgspec.App) -> None:
    status, headers, body = _call(app, "POST", "/inference", [GOOD])
    assert status == 200
    assert headers[b"content-type"] == JSON
    assert int(headers[b"content-length"]) == len(body)
    assert headers[b"server-timing"].startswith(b"inference;dur=")
    with_charset = [(b"content-type", b"Application/JSON; charset=utf-8")]
    assert _call(app, "POST", "/inference", [GOOD], with_charset)[0] == 200
    for headers_ in ([(b"content-type", b"text/plain")], []):
        status, _, body = _call(app, "POST", "/inference", [GOOD], headers_)
        assert (status, json.loads(body)) == (
            400,
            {"error": "Content-Type must be application/json"},
        )


def test_app_body_limit(app: asgi_msgspec.App) -> None:
    too_large = {"error": f"request body larger than {contract.MAX_BODY_BYTES} bytes"}
    declared = [(b"content-type", JSON), (b"content-length", b"1048577")]
    status, _, body = _call(app, "POST", "/inference", [b""], declared)
    assert (status, json.loads(body)) == (413, too_large)
    # Chunked: no Content-Length, the body grows past the limit over several messages.
    chunks = [b" " * 400_000] * 3
    status, _, body = _call(app, "POST", "/inference/batch", chunks)
    assert (status, json.loads(body)) == (413, too_large)
    # A body in several messages under the limit is read whole.
    status, _, _ = _call(app, "POST", "/inference", [GOOD[:10], GOOD[10:]])
    assert status == 200


def test_model_path_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(asgi_msgspec.MODEL_ENV, str(MODELS["multiclass"]))
    built = asgi_msgspec.create_app(workers=1)
    assert built.tracer is None  # no OTLP endpoint configured: no tracer, no OTel on the path
    assert built.handler.predictor.num_class == 3  # the multiclass model, not the default


def test_tracing_spans(handler: Handler) -> None:
    """With a tracer: one SERVER span per /inference* request (traceparent honoured) with a
    model-inference child carrying rows and features; /health is not traced."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    traced = asgi_msgspec.App(Handler(handler.predictor, "test", tracer), tracer)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [(b"content-type", JSON), (b"traceparent", parent.encode())]
    assert (
        _call(traced, "POST", "/inference/batch", [_batch(GOOD_ROW, GOOD_ROW)], headers)[0] == 200
    )
    assert _call(traced, "GET", "/health")[0] == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /inference/batch", "model-inference"}
    server, inference = spans["POST /inference/batch"], spans["model-inference"]
    assert server.kind == SpanKind.SERVER
    assert server.context is not None and inference.parent is not None
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert inference.parent.span_id == server.context.span_id
    assert inference.attributes is not None
    assert dict(inference.attributes) == {"inference.rows": 2, "inference.features": N}


# -- the fast path inside uvicorn's protocol -----------------------------------------------------
def _request(body: bytes, content_type: bytes = JSON, extra: bytes = b"") -> bytes:
    return (
        b"POST /inference HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s"
        % (content_type, len(body), extra, body)
    )


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        out.append((int(head.split(b" ")[1]), rest[:length]))
        data = rest[length:]
    return out


Connection = tuple[fast_path.FastPathProtocol, FakeTransport]


def _one_turn(loop: asyncio.AbstractEventLoop) -> None:
    """Run the callbacks scheduled so far (the batch's flush among them)."""
    loop.run_until_complete(asyncio.sleep(0))


def _connections(
    app: asgi_msgspec.App, protocol_class: type[fast_path.FastPathProtocol]
) -> Iterator[tuple[Callable[[], Connection], Any]]:
    """New connections of ``protocol_class`` to one uvicorn setup (as ``serve`` builds it), and
    its loop."""
    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="warning")
    state = ServerState()
    state.default_headers = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]

    def new() -> Connection:
        protocol = protocol_class(config, state, {}, _loop=loop)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        assert protocol._fast_routes  # the App itself, tracing off: the fast path is on
        return protocol, transport

    yield new, loop
    loop.close()


@pytest.fixture
def connect(app: asgi_msgspec.App) -> Iterator[tuple[Callable[[], Connection], Any]]:
    yield from _connections(app, fast_path.FastPathProtocol)


def test_fast_path_answers_in_one_write_and_keeps_pipelined_order(
    connect: tuple[Callable[[], Connection], Any], app: asgi_msgspec.App
) -> None:
    new, loop = connect
    protocol, transport = new()
    protocol.data_received(_request(GOOD))
    assert len(transport.writes) == 1  # handled in place: no task, head and body together
    _one_turn(loop)  # the turn's end (row_batching.py): nothing else was waiting
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\ndate: ")
    assert b"\r\ncontent-type: application/json\r\n" in head
    assert b"\r\nserver-timing: inference;dur=" in head
    assert body == _call(app, "POST", "/inference", [GOOD])[2]  # what the ASGI app answers
    # Pipelined: fast, ASGI (wrong type), fast (422), ASGI (health), Connection: close.
    transport.writes.clear()
    protocol.data_received(
        _request(GOOD)
        + _request(GOOD, b"text/plain")
        + _request(b'{"data": [1]}')
        + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
        + _request(GOOD, extra=b"Connection: close\r\n")
    )
    loop.run_until_complete(asyncio.sleep(0.05))  # the ASGI cycles run as tasks
    answers = b"".join(transport.writes)
    assert [status for status, _ in _responses(answers)] == [200, 400, 422, 200, 200]
    assert answers.rpartition(b"HTTP/1.1 ")[2].split(b"\r\n\r\n")[0].endswith(b"close")
    assert transport.closed
    protocol.connection_lost(None)


def test_fast_path_leaves_the_rest_to_asgi_and_finishes_on_shutdown(
    connect: tuple[Callable[[], Connection], Any],
) -> None:
    new, loop = connect
    protocol, transport = new()
    # Oversized declared body: not the plain case, the ASGI app answers 413.
    protocol.data_received(
        b"POST /inference HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (contract.MAX_BODY_BYTES + 1)
    )
    loop.run_until_complete(asyncio.sleep(0.05))
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [413]
    protocol.connection_lost(None)
    # A fast request half arrived when shutdown starts: answered, then the connection closes.
    protocol, transport = new()
    request = _request(GOOD)
    protocol.data_received(request[:-5])
    protocol.shutdown()
    assert not transport.closed
    protocol.data_received(request[-5:])
    _one_turn(loop)
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200]
    assert transport.closed
    protocol.connection_lost(None)
    # A request waiting in the batch when shutdown starts (another connection's row opened the
    # turn and was answered at once): answered at the turn's end, then the connection closes.
    first, first_transport = new()
    first.data_received(request)
    assert len(first_transport.writes) == 1
    protocol, transport = new()
    protocol.data_received(request)
    assert transport.writes == []
    protocol.shutdown()
    assert not transport.closed
    _one_turn(loop)
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200]
    assert transport.closed
    protocol.connection_lost(None)
    first.connection_lost(None)


def test_fast_path_answers_v2_inference_in_place(
    connect: tuple[Callable[[], Connection], Any], app: asgi_msgspec.App
) -> None:
    """A V2 inference request to the served model (no content type, as tritonclient sends it;
    JSON or binary tensor data) is answered in one write, as the ASGI app answers it."""
    new, _ = connect
    path = b"/v2/models/model/infer"
    json_body = json.dumps(
        {"id": "1", "inputs": [{"name": "x", "shape": [1, N], "datatype": "FP64", "data": ROW}]}
    ).encode()
    head = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, N], "datatype": "FP64",
                     "parameters": {"binary_data_size": 8 * N}}],
         "parameters": {"binary_data_output": True}}
    ).encode()  # fmt: skip
    binary_body = head + struct.pack(f"<{N}d", *ROW)
    for body, extra in [
        (json_body, b""),
        (binary_body, b"Inference-Header-Content-Length: %d\r\n" % len(head)),
    ]:
        protocol, transport = new()
        protocol.data_received(
            b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path, len(body), extra, body)
        )
        assert len(transport.writes) == 1  # handled in place
        got_head, _, got_body = transport.writes[0].partition(b"\r\n\r\n")
        assert got_head.startswith(b"HTTP/1.1 200 OK\r\n")
        headers = [(b"inference-header-content-length", str(len(head)).encode())] if extra else []
        status, want_headers, want_body = _call(app, "POST", path.decode(), [body], headers)
        assert (status, got_body) == (200, want_body)
        if extra:
            assert b"\r\ncontent-type: application/octet-stream\r\n" in got_head
            length = want_headers[b"inference-header-content-length"]
            assert b"\r\ninference-header-content-length: " + length + b"\r\n" in got_head
        protocol.connection_lost(None)


def test_fast_path_batches_the_rows_of_one_loop_turn(
    connect: tuple[Callable[[], Connection], Any], app: asgi_msgspec.App
) -> None:
    """Single-row requests arriving on several connections in one loop turn: the first answered
    at once, one predictor call for all the others at the turn's end, and each connection
    answered with LightGBM's own prediction for its row (the golden file), missing values
    included."""
    new, loop = connect
    golden = model.load_golden(MODELS["regression"])
    rows = _rows(golden)[:12]
    assert app.batcher is not None
    batches, predicted = app.batcher.batches, app.batcher.rows
    connections = [new() for _ in rows]
    for (protocol, _), row in zip(connections, rows, strict=True):
        protocol.data_received(_request(json.dumps({"data": row}).encode()))
    assert [len(transport.writes) for _, transport in connections] == [1] + [0] * (len(rows) - 1)
    _one_turn(loop)
    # One predictor call for every row but the first (answered at once, not through the batch).
    assert (app.batcher.batches - batches, app.batcher.rows - predicted) == (1, len(rows) - 1)
    got = []
    for protocol, transport in connections:
        [(status, body)] = _responses(b"".join(transport.writes))
        assert status == 200 and not transport.closed
        got.append(json.loads(body)["prediction"])
        protocol.connection_lost(None)
    wanted = golden.predictions[: len(rows)]
    assert model.parity_errors(got, dataclasses.replace(golden, predictions=wanted)) == []


def test_batched_answers_keep_each_connections_order(
    connect: tuple[Callable[[], Connection], Any],
) -> None:
    """A request answered at once (an error, a batch route) behind one waiting in the batch on the
    same connection goes out after it; the other connections' rows stay in the batch."""
    new, loop = connect
    opener, opener_transport = new()
    opener.data_received(_request(GOOD))  # the turn's first row: answered at once
    assert len(opener_transport.writes) == 1
    other, other_transport = new()
    other.data_received(_request(GOOD))  # waits for the turn's end
    assert other_transport.writes == []
    protocol, transport = new()
    batch = json.dumps({"data": [ROW, ROW]}).encode()
    protocol.data_received(
        _request(GOOD)
        + _request(b'{"data": [1]}')  # 422, answered at once: the waiting row first
        + _request(GOOD)
        + _request(batch).replace(b"/inference ", b"/inference/batch ")
    )
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200, 422, 200, 200]
    # The other connection's row was in the batch flushed before the 422: answered with it.
    assert [s for s, _ in _responses(b"".join(other_transport.writes))] == [200]
    _one_turn(loop)  # the turn's own flush finds nothing left
    assert len(transport.writes) == 4 and len(other_transport.writes) == 1
    for p in (protocol, other, opener):
        p.connection_lost(None)


def test_a_failing_batch_answers_500_to_every_waiting_request(
    connect: tuple[Callable[[], Connection], Any],
    app: asgi_msgspec.App,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The predictor raising inside a batch (it never does on a checked row; forced here by
    replacing it, the one way to reach this path): 500 and close for each request, none left
    hanging, and the next batch served again."""
    new, loop = connect
    assert app.batcher is not None

    def broken(rows: Any) -> Any:
        raise RuntimeError("forced")

    monkeypatch.setattr(app.batcher.handler.predictor, "predict_rows", broken)
    connections = [new() for _ in range(3)]
    for protocol, _ in connections:
        protocol.data_received(_request(GOOD))
    _one_turn(loop)
    first, *waiting = connections
    assert [s for s, _ in _responses(b"".join(first[1].writes))] == [200]  # at once: no batch
    for _, transport in waiting:
        assert [s for s, _ in _responses(b"".join(transport.writes))] == [500]
        assert transport.closed
    for protocol, _ in connections:
        protocol.connection_lost(None)
    monkeypatch.undo()
    protocol, transport = new()
    protocol.data_received(_request(GOOD))
    _one_turn(loop)
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200]
    protocol.connection_lost(None)


def test_batching_off_answers_in_place(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(row_batching.BATCHING_ENV, "0")
    assert asgi_msgspec.App(handler).batcher is None
    monkeypatch.setenv(row_batching.BATCHING_ENV, "1")
    assert asgi_msgspec.App(handler).batcher is not None


@pytest.fixture
def guarded(app: asgi_msgspec.App) -> Iterator[tuple[Callable[[], Connection], Any]]:
    """Connections of the protocol ``serve`` runs: the fast path behind the limits."""
    yield from _connections(app, fast_path.GuardedFastPathProtocol)


def test_a_refusal_behind_a_waiting_row_goes_out_after_its_answer(
    guarded: tuple[Callable[[], Connection], Any],
) -> None:
    """A row waiting in the batch, then an unparsable request on the same connection: the row's
    200 first, then the 400 and the close (not the 400 alone, read as the row's answer)."""
    new, loop = guarded
    opener, _ = new()
    opener.data_received(_request(GOOD))  # opens the turn
    protocol, transport = new()
    protocol.data_received(_request(GOOD) + b"NOT HTTP AT ALL\r\n\r\n")
    _one_turn(loop)
    # One write per answer (the 400 is text/plain: not _responses' JSON framing).
    assert [int(write.split(b" ")[1]) for write in transport.writes] == [200, 400]
    assert transport.closed
    for p in (protocol, opener):
        p.connection_lost(None)


def test_a_graceful_stop_answers_a_waiting_row_and_the_request_still_arriving(
    guarded: tuple[Callable[[], Connection], Any],
) -> None:
    new, loop = guarded
    opener, _ = new()
    opener.data_received(_request(GOOD))  # opens the turn
    protocol, transport = new()
    second = _request(GOOD)
    protocol.data_received(_request(GOOD) + second[:-5])  # a row waits, the next one arrives
    protocol.shutdown()
    _one_turn(loop)
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200]
    assert not transport.closed  # the request still arriving is answered, then it closes
    protocol.data_received(second[-5:])
    _one_turn(loop)
    assert [s for s, _ in _responses(b"".join(transport.writes))] == [200, 200]
    assert transport.closed
    for p in (protocol, opener):
        p.connection_lost(None)


def test_a_reply_failing_mid_batch_leaves_no_row_waiting(
    connect: tuple[Callable[[], Connection], Any],
    app: asgi_msgspec.App,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building one row's reply raises (forced: the one way to reach it): every row of that
    batch gets its 500 and close, none is left without an answer."""
    new, loop = connect
    assert app.batcher is not None
    handler = app.batcher.handler
    real, calls = handler.single_reply, []

    def second_fails(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 3:  # the turn's first row is answered at once: its batch is 2 and 3
            raise RuntimeError("forced")
        return real(*args)

    monkeypatch.setattr(handler, "single_reply", second_fails)
    connections = [new() for _ in range(3)]
    for protocol, _ in connections:
        protocol.data_received(_request(GOOD))
    _one_turn(loop)
    statuses = [[s for s, _ in _responses(b"".join(t.writes))] for _, t in connections]
    assert statuses == [[200], [500], [500]]
    for protocol, _ in connections:
        protocol.connection_lost(None)
