"""The V2 protocol in process: routes, the fast stack's typed decode against the shared reader
(fiber_endpoints.v2, which the control stack uses), and the same answers from both Python stacks
on plain, unusual and bad requests. The V2 contract suite runs the same against real servers."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from fiber_endpoints import contract, model, v2
from fiber_endpoints.contract import ContractError
from fiber_endpoints.stacks import asgi_msgspec
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler
from fiber_endpoints.stacks.msgspec_v2 import V2Handler

MODEL = model.MODELS_DIR / "regression" / "model.txt"
N = 20
ROW = [0.5] * N


def tensor(data: Any, shape: list[int] | None = None, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "x", "shape": shape or [1, N], "datatype": datatype, "data": data}


def body(*inputs: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def binary(
    values: np.ndarray[Any, Any], datatype: str = "FP64", **fields: Any
) -> tuple[bytes, bytes]:
    raw = values.astype(v2.DATATYPES[datatype]).tobytes()
    t = {"name": "x", "shape": list(values.shape), "datatype": datatype,
         "parameters": {"binary_data_size": len(raw)}}  # fmt: skip
    head = json.dumps({"inputs": [t], **fields}).encode()
    return head + raw, str(len(head)).encode()


@pytest.fixture(scope="module")
def fast() -> Iterator[V2Handler]:
    predictor = CapiPredictor(MODEL, threads=1)
    yield V2Handler(Handler(predictor, "asgi-msgspec"), "asgi-msgspec", v2.DEFAULT_MODEL_NAME)
    predictor.close()


@pytest.fixture(scope="module")
def control() -> Any:
    from fastapi.testclient import TestClient

    from fiber_endpoints.stacks import fastapi_control

    app = fastapi_control.create_app(MODEL)
    return TestClient(fastapi_control.ContractMiddleware(app, app.state.model_name))


def test_match_and_resolve() -> None:
    assert v2.match("/v2/models/m/versions/1/infer") == v2.Route(v2.INFER, "POST", "m", "1")
    assert v2.match("/v2/models/m/versions") is None
    assert v2.match("/v2/models//ready") is None
    with pytest.raises(ContractError, match="method GET not allowed"):
        v2.resolve("GET", "/v2/models/model/infer", "model")
    with pytest.raises(ContractError, match='model "m" not found'):
        v2.resolve("POST", "/v2/models/m/infer", "model")
    with pytest.raises(ContractError, match='no version "2"'):
        v2.resolve("GET", "/v2/models/model/versions/2/ready", "model")
    assert v2.infer_paths("m") == ["/v2/models/m/infer", "/v2/models/m/versions/1/infer"]
    for bad in ("", "-a", "a/b", "a b", "é"):
        with pytest.raises(ValueError):
            v2.check_model_name(bad)
    assert v2.check_model_name("iris.v1_2-x") == "iris.v1_2-x"


def test_depth_limit_counts_every_container() -> None:
    assert not v2._too_deep(json.loads("[" * 64 + "]" * 64))
    assert v2._too_deep(json.loads("[" * 65 + "]" * 65))
    assert v2._too_deep({"a": [{"b": json.loads("[" * 62 + "]" * 62)}]})  # 3 + 62
    assert not v2._too_deep({"a": [{"b": json.loads("[" * 61 + "]" * 61)}]})
    with pytest.raises(ContractError, match="malformed JSON body"):
        v2.decode_json(b"[" * 5000 + b"]" * 5000)  # past Python's recursion limit too


def test_values_per_datatype() -> None:
    parsed = v2.parse_infer(body(tensor([0.1, None, *[1] * 18], datatype="FP32")), None, N)
    assert parsed.values[0] == float(np.float32(0.1)) and math.isnan(parsed.values[1])
    parsed = v2.parse_infer(body(tensor([[1e2] * 10, [[-3]] * 10], datatype="INT8")), None, N)
    assert parsed.values.tolist() == [100.0] * 10 + [-3.0] * 10
    # Integers compared as float64: 2**63 rounds onto INT64's maximum, as in Go.
    big = v2.parse_infer(body(tensor([2**63, *[0] * 19], datatype="INT64")), None, N)
    assert big.values[0] == 2.0**63
    with pytest.raises(ContractError, match="row 0, feature 0: number out of range for INT64"):
        v2.parse_infer(body(tensor([2**64, *[0] * 19], datatype="INT64")), None, N)
    with pytest.raises(ContractError, match="row 0, feature 0: number out of range for FP64"):
        v2.parse_infer(body(tensor([10**400, *[0] * 19])), None, N)


# Values at and past each datatype's edges, in JSON (float or integer literals) and binary.
_EDGES = [
    0, 1, -1, 0.5, -0.5, 127, 128, -128, -129, 255, 256, 32767, 32768, -32769, 65535, 65536,
    2**31 - 1, 2**31, -(2**31) - 1, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63),
    2**64 - 1, 2**64, 1e300, -1e300, 3.4028235e38, 3.4028236e38, 3.5e38, 1e-46, 0.1, 1e6,
]  # fmt: skip


@pytest.mark.parametrize("datatype", list(v2.DATATYPES))
def test_decode_without_numpy_equals_numpys(datatype: str) -> None:
    """v2.py decodes with the array module (the fast stack's image has no NumPy). NumPy, as the
    decode was written before, is the reference: each value alone, in JSON and in binary, is
    taken with the same float64 or refused with the same message."""
    layout = np.dtype(v2.DATATYPES[datatype])
    for value in _EDGES:
        row = [value, *[0] * (N - 1)]
        reference: str | float
        ref = np.array([float(value)], dtype=np.float64)  # JSON: compared as float64
        if datatype == "FP32":
            with np.errstate(over="ignore"):
                ref = ref.astype(np.float32).astype(np.float64)
        x = float(ref[0])
        if math.isinf(x):
            reference = "out of range"
        elif datatype not in v2.FLOAT_DATATYPES:
            info = np.iinfo(layout)
            whole = x == math.floor(x)
            ok = whole and float(info.min) <= x <= float(info.max)
            reference = x if ok else ("out of range" if whole else "not a")
        else:
            reference = x
        try:
            got: str | float = v2.parse_infer(body(tensor(row, datatype=datatype)), None, N).values[
                0
            ]
        except ContractError as err:
            got = "out of range" if "out of range" in err.message else "not a"
            assert "row 0, feature 0" in err.message
        assert got == reference, (datatype, value)
        if isinstance(reference, float):  # binary: the same value in the datatype's own layout
            try:
                first = np.array([value if layout.kind == "f" else int(x)], dtype=layout)
            except OverflowError:  # 2**63 for INT64: taken in JSON, not a binary INT64
                continue
            raw = first.tobytes() + np.zeros(N - 1, dtype=layout).tobytes()
            parsed = v2.binary_values(raw, 0, N, "x", N, datatype)
            assert parsed.tolist() == np.frombuffer(raw, layout).astype(np.float64).tolist()
    if datatype in v2.FLOAT_DATATYPES:  # binary infinities refused, NaN (missing) kept
        raw = np.array([np.nan, np.inf], dtype=layout).tobytes()
        with pytest.raises(ContractError, match="row 0, feature 1: number out of range"):
            v2.binary_values(raw, 0, 2, "x", N, datatype)
        assert math.isnan(v2.binary_values(raw, 0, 1, "x", N, datatype)[0])


def _answer(status: int, content: bytes, header: bytes | str | None) -> tuple[int, Any, bytes]:
    """Status, the JSON part, and the binary part of a V2 answer."""
    n = len(content) if header is None else int(header)
    return status, json.loads(content[:n]), content[n:]


GOLDEN = model.load_golden(MODEL)
NAN_ROW = next(r for r in GOLDEN.rows if any(map(math.isnan, r)))
NULL_ROW = [None if math.isnan(v) else v for v in NAN_ROW]
PLAIN = [
    ("plain", body(tensor(ROW))),
    (
        "id-and-binary-output",
        body(tensor(ROW), id="a\u00e9", parameters={"binary_data_output": True}),
    ),
    (
        "output-json-wins",
        body(
            tensor(ROW * 2, [2, N]),
            parameters={"binary_data_output": True},
            outputs=[{"name": "predict", "parameters": {"binary_data": False}}],
        ),
    ),
    ("kserve-model-name", body(tensor(ROW), model_name="model", id="k")),
    ("null-is-missing", body(tensor(NULL_ROW))),
    ("batch-with-null", body(tensor(NULL_ROW + ROW, [2, N]))),
]
GENERIC = [  # not the typed decode's case, or refused by it
    ("nested", body(tensor([ROW, NULL_ROW], [2, N]))),
    ("fp32", body(tensor(ROW, datatype="FP32"))),
    ("int16", body(tensor([3] * N, datatype="INT16"))),
    ("unknown-field", body(tensor(ROW), extra={"a": [1]})),
    ("string-in-data", body(tensor([*ROW[:3], "x", *ROW[4:]]))),
    ("out-of-range", b'{"inputs":[{"name":"x","shape":[1,20],"datatype":"FP64","data":[1e400'
     + b",1" * 19 + b"]}]}"),
    ("count", body(tensor(ROW, [2, N]))),
    ("shape", body(tensor(ROW[:19], [1, 19]))),
    ("two-inputs", body(tensor(ROW), tensor(ROW))),
    ("bool-binary-output", body(tensor(ROW), parameters={"binary_data_output": 1})),
    ("unknown-output", body(tensor(ROW), outputs=[{"name": "proba"}])),
    ("classification", body(tensor(ROW), outputs=[{"name": "predict",
                                                   "parameters": {"classification": 1}}])),
    ("deep-parameter", body(tensor(ROW), parameters={"d": json.loads("[" * 70 + "]" * 70)})),
    ("malformed", b'{"inputs": ['),
    ("nan-token", b'{"inputs": [{"data": [NaN]}]}'),
    ("not-utf8", b'{"inputs": "\xff"}'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "request_body"), PLAIN + GENERIC, ids=[c[0] for c in PLAIN + GENERIC]
)
def test_same_answers_as_the_control(
    fast: V2Handler, control: Any, name: str, request_body: bytes
) -> None:
    want = control.post("/v2/models/model/infer", content=request_body)
    got = fast.infer(request_body, None)
    expected = _answer(want.status_code, want.content, want.headers.get(v2.HEADER_LENGTH))
    assert _answer(got.status, got.body, got.header_length) == expected
    if want.status_code == 200:
        assert got.server_timing is not None


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "UINT8"])
def test_binary_same_answers_as_the_control(fast: V2Handler, control: Any, datatype: str) -> None:
    rows = np.array(GOLDEN.rows[:5]) if datatype != "UINT8" else np.full((3, N), 7.0)
    request_body, header = binary(rows, datatype, parameters={"binary_data_output": True})
    want = control.post(
        "/v2/models/model/infer", content=request_body, headers={v2.HEADER_LENGTH: header.decode()}
    )
    got = fast.infer(request_body, header)
    assert got.content_type == b"application/octet-stream"
    assert _answer(got.status, got.body, got.header_length) == _answer(
        want.status_code, want.content, want.headers[v2.HEADER_LENGTH]
    )
    if datatype == "FP64":
        head_len = int(got.header_length or 0)
        got_values = np.frombuffer(got.body[head_len:], "<f8")
        assert model.parity_errors(got_values.tolist(), _golden_head(5)) == []


def _golden_head(n: int) -> model.Golden:
    return model.Golden(**{**GOLDEN.__dict__, "predictions": GOLDEN.predictions[:n]})


def test_typed_decode_takes_the_plain_requests(
    fast: V2Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain requests never reach the shared reader; the others do (and answer as above)."""
    calls: list[bytes] = []
    real = v2.parse_infer

    def spy(request_body: bytes, header: bytes | None, n: int) -> v2.InferRequest:
        calls.append(request_body)
        return real(request_body, header, n)

    monkeypatch.setattr(v2, "parse_infer", spy)
    for _, request_body in PLAIN:
        assert fast.infer(request_body, None).status == 200
    assert calls == []
    for _, request_body in GENERIC:
        fast.infer(request_body, None)
    assert len(calls) == len(GENERIC)


def test_app_routes_v2(fast: V2Handler) -> None:
    app = asgi_msgspec.App(fast._handler, None, fast)
    assert set(app.fast_v2_routes()) == {p.encode() for p in v2.infer_paths("model")}
    assert contract.HEALTH_PATH not in v2.infer_paths("model")
