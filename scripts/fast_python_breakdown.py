"""Where one single-row call's time goes inside each Python stack, measured in process.

Each piece is timed on its own (``perf_counter_ns`` around it, rotating through the 100 seed rows
of the golden file so branch predictors do not learn one row), then the stack's whole ASGI app is
called in process with a fake ``receive``/``send``: what remains of the end-to-end p50 is the
HTTP server, the loopback and the client. Run pinned: ``taskset -c 1 .venv/bin/python
scripts/fast_python_breakdown.py``. Results: ``docs/fast-python.md``.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from fiber_endpoints import model

MODEL = model.DEFAULT_MODEL
ROWS = 100


def median_us(fn: Callable[[int], object], calls: int) -> float:
    for i in range(min(calls, 500)):  # warm-up
        fn(i)
    samples = []
    for i in range(calls):
        t = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1e3


def asgi_caller(app: Any, bodies: list[bytes]) -> Callable[[int], object]:
    loop = asyncio.new_event_loop()
    headers = [(b"content-type", b"application/json"), (b"host", b"x")]

    def call(i: int) -> object:
        body = bodies[i % len(bodies)]
        sent: list[MutableMapping[str, Any]] = []
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:
                await asyncio.sleep(3600)
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/inference",
            "raw_path": b"/inference",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        loop.run_until_complete(app(scope, receive, send))
        assert sent[0]["status"] == 200, sent
        return sent

    return call


async def constant_app(scope: Any, receive: Any, send: Any) -> None:
    """The measuring harness's own cost: an ASGI app that reads the body and answers 200."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def fast_stack(rows: list[list[float | None]], bodies: list[bytes]) -> dict[str, float]:
    from fiber_endpoints import contract
    from fiber_endpoints.stacks import asgi_msgspec
    from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
    from fiber_endpoints.stacks.lleaves_predictor import LleavesPredictor
    from fiber_endpoints.stacks.msgspec_handler import Handler

    capi = CapiPredictor(MODEL, threads=1)
    predictor = LleavesPredictor(MODEL, threads=1)
    handler = Handler(predictor, "asgi-msgspec")
    decode, encode = handler._single, handler._encode
    parsed = [decode(b).data for b in bodies]
    preds = [predictor.predict_row(r) for r in parsed]
    n = predictor.num_features
    calls = 20_000
    return {
        "parse + validate (msgspec typed decode)": median_us(
            lambda i: decode(bodies[i % ROWS]), calls
        ),
        "validate (row length)": median_us(lambda i: len(parsed[i % ROWS]) != n, calls),
        "predict (lleaves compiled, raw entry)": median_us(
            lambda i: predictor.predict_row(parsed[i % ROWS]), calls
        ),
        "(predict with the C API SingleRowFast instead)": median_us(
            lambda i: capi.predict_row(parsed[i % ROWS]), calls
        ),
        "serialise (msgspec + Server-Timing)": median_us(
            lambda i: (
                b'{"prediction":' + encode(preds[i % ROWS]) + b"}",
                contract.server_timing(3e-5, 4e-5).encode(),
            ),
            calls,
        ),
        "handler (all of the above)": median_us(lambda i: handler.single(bodies[i % ROWS]), calls),
        "ASGI app in process (handler + routing, headers, body)": median_us(
            asgi_caller(asgi_msgspec.App(handler), bodies), calls
        ),
    }


def control_stack(rows: list[list[float | None]], bodies: list[bytes]) -> dict[str, float]:
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    from fiber_endpoints.stacks import fastapi_control as fc

    app = fc.ContractMiddleware(fc.create_app(MODEL))
    m = fc.Model(MODEL)
    docs = [json.loads(b) for b in bodies]
    reqs = [fc.InferenceRequest.model_validate(d) for d in docs]
    preds = [m.predict([r.data])[0] for r in reqs]
    calls = 5_000
    return {
        "parse (json.loads)": median_us(lambda i: json.loads(bodies[i % ROWS]), calls),
        "validate (pydantic model_validate)": median_us(
            lambda i: fc.InferenceRequest.model_validate(docs[i % ROWS]), calls
        ),
        "predict (numpy + Booster.predict + tolist)": median_us(
            lambda i: m.predict([reqs[i % ROWS].data]), calls
        ),
        "serialise (jsonable_encoder + JSONResponse)": median_us(
            lambda i: JSONResponse(jsonable_encoder({"prediction": preds[i % ROWS]})).body, calls
        ),
        "ASGI app in process (FastAPI + middleware + all of the above)": median_us(
            asgi_caller(app, bodies), calls
        ),
    }


def main() -> None:
    golden = model.load_golden(MODEL)
    rows = [[None if math.isnan(v) else v for v in r] for r in golden.rows[:ROWS]]
    bodies = [json.dumps({"data": r}).encode() for r in rows]
    harness = median_us(asgi_caller(constant_app, bodies), 20_000)
    print(f"harness (constant ASGI app through the same fake receive/send): {harness:.1f} µs")
    for name, pieces in (
        ("asgi-msgspec", fast_stack(rows, bodies)),
        ("fastapi (control)", control_stack(rows, bodies)),
    ):
        print(f"\n{name}: median µs per call")
        for piece, us in pieces.items():
            print(f"  {us:8.1f}  {piece}")


if __name__ == "__main__":
    main()
