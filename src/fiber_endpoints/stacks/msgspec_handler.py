"""The contract's request handling without a web framework: msgspec in, C API predictor, bytes out.

Protocol-free, so any HTTP server can drive it (the ASGI stack, and the candidate servers measured
in ``docs/fast-python.md``): the server gives method, path, content type and body; the handler
gives status, body and the extra headers. Errors are ``contract.ContractError`` (from
``contract.py``), turned into responses in one place (:meth:`Handler.error`).

The happy path is one typed msgspec decode (syntax, object shape and float/null items at once),
a length check, one predictor call and one encode. Only a request that fails the typed decode
pays for :func:`fiber_endpoints.rows.read`, which re-reads the body with Python's ``json`` in the
contract's order: it names the first bad field with the contract's message, and it reads rows
given by feature name (``{"data": {"name": value}}``), which the typed decode never accepts, so
the positional form's path is untouched by them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter, time_ns
from typing import Any, Protocol

import msgspec

from fiber_endpoints import contract, rows, tracing
from fiber_endpoints.contract import ContractError
from fiber_endpoints.stacks.lgbm_capi import FloatBuffer, Row

JSON = b"application/json"


class SingleBody(msgspec.Struct, gc=False):
    data: list[float | None]


class BatchBody(msgspec.Struct, gc=False):
    data: list[list[float | None]]


class Predictor(Protocol):
    """What the handler needs from a predictor (``lgbm_capi``, ``lleaves_predictor``)."""

    name: str  # reported in /health, so results say which predictor was timed
    num_features: int
    num_class: int

    def predict_row(self, row: Row) -> float | list[float]: ...

    def predict_rows(self, rows: Sequence[Row]) -> list[float] | list[list[float]]: ...

    def predict_flat(self, flat: FloatBuffer, n_rows: int) -> list[float]: ...


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ cost 1.9 µs against 0.3
class Reply:  # (timeit, one core), one Reply per request; nothing mutates one
    """What the server writes: status, body, ``Server-Timing`` when the handler ran, and for a V2
    response with binary data its ``Inference-Header-Content-Length`` and content type; the
    predictor's own time when it ran (for the metrics, not written)."""

    status: int
    body: bytes
    server_timing: bytes | None = None
    allow: bytes | None = None
    header_length: bytes | None = None
    content_type: bytes = JSON
    inference_s: float | None = None


def check_shape(data: list[Any], n_features: int, batch: bool) -> ContractError | None:
    """Row count and row lengths, once every item is known to be a float or null."""
    if not batch:
        if len(data) != n_features:
            return contract.wrong_feature_count("data", n_features, len(data))
        return None
    if not data:
        return contract.empty_batch()
    if len(data) > contract.MAX_BATCH_ROWS:
        return contract.batch_too_large(len(data))
    for i, row in enumerate(data):
        if len(row) != n_features:
            return contract.wrong_feature_count(f"data[{i}]", n_features, len(row))
    return None


def _timing(inference_s: float, app_s: float) -> bytes:
    return contract.server_timing_bytes(inference_s, app_s)


def _finite(prediction: float | list[float]) -> bool:
    """msgspec would write NaN as null: a silent wrong answer the contract forbids."""
    if isinstance(prediction, float):
        return math.isfinite(prediction)
    return all(map(math.isfinite, prediction))


class Handler:
    """The contract's routes over one predictor. Not thread-safe (one per event loop)."""

    def __init__(
        self,
        predictor: Predictor,
        stack_name: str,
        tracer: Any = None,
        record: bool = False,
        features: rows.FeatureNames | None = None,
    ) -> None:
        self.predictor = predictor
        self.num_features = n = predictor.num_features
        # The names requests may give rows by (rows.py); LightGBM's own for a model trained
        # without names when not given.
        self.features = features or rows.FeatureNames.of([f"Column_{i}" for i in range(n)])
        self._predict_row: Callable[[Row], Any] = predictor.predict_row
        self._predict_rows: Callable[[Sequence[Row]], Any] = predictor.predict_rows
        self._predict_flat: Callable[[FloatBuffer, int], list[float]] = predictor.predict_flat
        self._tracer = tracer
        self._traced_s = 0.0  # with tracing: the predictor call alone, inside its span
        # Server-Timing's inference is then _traced_s: never longer than the span's duration.
        self._timed_inside = tracer is not None or record
        if tracer is not None:  # decided once: without a tracer, no OpenTelemetry code runs

            def predict_row(row: Row) -> Any:
                with tracing.inference_span(tracer, 1, n):
                    t0 = perf_counter()
                    out = predictor.predict_row(row)
                    self._traced_s = perf_counter() - t0
                return out

            def predict_rows(rows: Sequence[Row]) -> Any:
                with tracing.inference_span(tracer, len(rows), n):
                    t0 = perf_counter()
                    out = predictor.predict_rows(rows)
                    self._traced_s = perf_counter() - t0
                return out

            def predict_flat(flat: FloatBuffer, rows: int) -> list[float]:
                with tracing.inference_span(tracer, rows, n):
                    t0 = perf_counter()
                    out = predictor.predict_flat(flat, rows)
                    self._traced_s = perf_counter() - t0
                return out

            self._predict_row, self._predict_rows = predict_row, predict_rows
            self._predict_flat = predict_flat
        # record: the fast path's sampled requests (deferred_tracing.py): the predictor call's
        # wall-clock start and end and its rows, read back for the model-inference span.
        self.inference_ns: tuple[int, int, int] | None = None
        if record:

            def record_row(row: Row) -> Any:
                t0 = time_ns()
                out = predictor.predict_row(row)
                t1 = time_ns()
                self.inference_ns, self._traced_s = (t0, t1, 1), (t1 - t0) * 1e-9
                return out

            def record_rows(rows: Sequence[Row]) -> Any:
                t0 = time_ns()
                out = predictor.predict_rows(rows)
                t1 = time_ns()
                self.inference_ns, self._traced_s = (t0, t1, len(rows)), (t1 - t0) * 1e-9
                return out

            def record_flat(flat: FloatBuffer, rows: int) -> list[float]:
                t0 = time_ns()
                out = predictor.predict_flat(flat, rows)
                t1 = time_ns()
                self.inference_ns, self._traced_s = (t0, t1, rows), (t1 - t0) * 1e-9
                return out

            self._predict_row, self._predict_rows = record_row, record_rows
            self._predict_flat = record_flat
        self._single = msgspec.json.Decoder(SingleBody).decode
        self._batch = msgspec.json.Decoder(BatchBody).decode
        self._encode: Callable[[Any], bytes] = msgspec.json.Encoder().encode
        self.health_body = self._encode(
            {
                "status": "ok",
                "stack": stack_name,
                "num_features": predictor.num_features,
                "num_class": predictor.num_class,
                "predictor": predictor.name,
            }
        )

    # -- routing: path, then method ---------------------------------------------------------
    @staticmethod
    def route_error(method: str, path: str) -> Reply | None:
        """404/405 for anything but the contract's routes; ``None`` when the route is served."""
        allowed = contract.ROUTES.get(path)
        if allowed is None:
            return Handler.error(contract.not_found(path))
        if method != allowed:  # HEAD included, as in the control stack
            reply = Handler.error(contract.method_not_allowed(method, path))
            return Reply(reply.status, reply.body, allow=allowed.encode())
        return None

    @staticmethod
    def error(err: ContractError, timing: bytes | None = None) -> Reply:
        return Reply(err.status, msgspec.json.encode(err.body()), timing)

    # -- the inference routes ---------------------------------------------------------------
    def single(self, body: bytes) -> Reply:
        started = perf_counter()
        row = self.parse_single(body, started)
        if isinstance(row, Reply):
            return row
        return self.answer_row(row, started)

    def answer_row(self, row: Row, started: float) -> Reply:
        """Predict one checked row (with this handler's tracing or recording) and answer it."""
        t0 = perf_counter()
        prediction = self._predict_row(row)
        t1 = perf_counter()
        inference_s = self._traced_s if self._timed_inside else t1 - t0
        return self.single_reply(prediction, started, inference_s)

    def parse_single(self, body: bytes, started: float) -> list[float | None] | Reply:
        """The row of a single-row request, or the error's reply (``started``: its start, for
        the reply's ``Server-Timing``)."""
        try:
            data = self._single(body).data
        except msgspec.ValidationError:  # by name, or a bad request: the slow, exact reading
            try:
                data = rows.read(body, self.features, False)[0]
            except ContractError as refused:
                return self._invalid(refused, started)
        except msgspec.DecodeError:
            return self.error(contract.malformed_json())
        if len(data) != self.num_features:
            err = contract.wrong_feature_count("data", self.num_features, len(data))
            return self._invalid(err, started)
        return data

    def single_reply(
        self, prediction: float | list[float], started: float, inference_s: float
    ) -> Reply:
        """The answer to a single-row request, once its row is predicted."""
        if not _finite(prediction):
            return self.error(contract.non_finite_output())
        out = b'{"prediction":' + self._encode(prediction) + b"}"
        timing = _timing(inference_s, perf_counter() - started)
        return Reply(200, out, timing, inference_s=inference_s)

    def batch(self, body: bytes) -> Reply:
        started = perf_counter()
        try:
            data = self._batch(body).data
        except msgspec.ValidationError:  # by name, or a bad request: the slow, exact reading
            try:
                data = rows.read(body, self.features, True)
            except ContractError as refused:
                return self._invalid(refused, started)
        except msgspec.DecodeError:
            return self.error(contract.malformed_json())
        error = check_shape(data, self.num_features, True)
        if error is not None:
            return self._invalid(error, started)
        t0 = perf_counter()
        predictions = self._predict_rows(data)
        t1 = perf_counter()
        if not all(map(_finite, predictions)):
            return self.error(contract.non_finite_output())
        out = b'{"predictions":' + self._encode(predictions) + b"}"
        inference_s = self._traced_s if self._timed_inside else t1 - t0
        timing = _timing(inference_s, perf_counter() - started)
        return Reply(200, out, timing, inference_s=inference_s)

    def _invalid(self, err: ContractError, started: float) -> Reply:
        timing = _timing(0.0, perf_counter() - started) if err.status == 422 else None
        return self.error(err, timing)
