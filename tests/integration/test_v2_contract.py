"""Open Inference Protocol V2 (docs/contract.md, "V2"), tested against every stack started for
real on loopback (the fixtures and helpers of test_contract.py), with real V2 clients:
``tritonclient[http]`` and KServe's ``InferenceRESTClient``, then raw bad requests that every
stack must answer with the same status and message (``fiber_endpoints.v2`` has the messages)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import tritonclient.http as triton
from test_contract import MODELS, N, _start, error_of

# The contract suite's fixtures, reused: every stack started once per module.
from test_contract import client as client
from test_contract import server as server

from fiber_endpoints import contract, model, stacks, v2
from fiber_endpoints.bench import servers
from fiber_endpoints.bench.client import RawClient, Response, parse_server_timing

pytestmark = pytest.mark.contract

NAME = v2.DEFAULT_MODEL_NAME
INFER = f"/v2/models/{NAME}/infer"
GOLDEN = model.load_golden(MODELS["regression"])
ROWS = np.array(GOLDEN.rows)  # NaN = missing
WANT = np.array(GOLDEN.predictions)
HAS_NAN = np.isnan(ROWS).any(axis=1)
assert HAS_NAN.any() and not HAS_NAN.all()  # the golden rows exercise missing values


def lightgbm_on(rows: np.ndarray[Any, Any], kind: str = "regression") -> np.ndarray[Any, Any]:
    """LightGBM's own predictions for rows exactly as a server receives them."""
    booster = lgb.Booster(model_file=str(MODELS[kind]))
    return np.asarray(booster.predict(rows.astype(np.float64)))


def assert_parity(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any], rel: float = 0.0) -> None:
    """Within the project's tolerance (1e-9, absolute below 1, relative above), or ``rel``."""
    assert got.shape == want.shape
    for g, w in zip(got.reshape(-1), want.reshape(-1), strict=True):
        ok = abs(g - w) <= rel * abs(w) if rel else model.within_tolerance(float(g), float(w))
        assert ok, f"got {g!r}, LightGBM says {w!r}"


def v2_send(
    c: RawClient,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A raw request with exactly the given headers (V2 requires no content type)."""
    raw = c.prepare(method, path, body, headers=headers or {})
    if body is not None and "Content-Type" not in (headers or {}):
        raw = raw.replace(b"Content-Type: application/json\r\n", b"")
    return c.send(raw)


def tensor(data: Any, shape: list[int] | None = None, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "x", "shape": shape or [1, N], "datatype": datatype, "data": data}


def request(*inputs: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def binary_request(
    values: np.ndarray[Any, Any], datatype: str = "FP64", size: int | None = None, **fields: Any
) -> tuple[bytes, dict[str, str]]:
    raw = values.astype(v2.DATATYPES[datatype]).tobytes()
    t = {"name": "x", "shape": list(values.shape), "datatype": datatype,
         "parameters": {"binary_data_size": len(raw) if size is None else size}}  # fmt: skip
    head = json.dumps({"inputs": [t], **fields}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def triton_client(srv: servers.Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(srv.url.split("://", 1)[1], connection_timeout=15)


# -- metadata and health -------------------------------------------------------------------------
def test_server_and_model_metadata(server: servers.Server, client: RawClient) -> None:
    resp = v2_send(client, "GET", "/v2")
    assert resp.status == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.json() == v2.server_metadata(server.name)
    assert v2_send(client, "GET", "/v2/health/live").json() == {"live": True}
    assert v2_send(client, "GET", "/v2/health/ready").json() == {"ready": True}
    meta = v2.model_metadata(NAME, N, 1)
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    for base in (f"/v2/models/{NAME}", f"/v2/models/{NAME}/versions/1"):
        assert v2_send(client, "GET", base).json() == meta
        resp = v2_send(client, "GET", base + "/ready")
        assert (resp.status, resp.json()) == (200, {"name": NAME, "ready": True})


def test_tritonclient_health_and_metadata(server: servers.Server) -> None:
    c = triton_client(server)
    try:
        assert c.is_server_live() and c.is_server_ready()
        assert c.is_model_ready(NAME) and c.is_model_ready(NAME, "1")
        assert not c.is_model_ready("other") and not c.is_model_ready(NAME, "2")
        assert c.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        assert c.get_model_metadata(NAME) == v2.model_metadata(NAME, N, 1)
    finally:
        c.close()


# -- inference with tritonclient -----------------------------------------------------------------
def triton_infer(
    c: triton.InferenceServerClient,
    rows: np.ndarray[Any, Any],
    datatype: str,
    binary: bool,
    version: str = "",
    request_id: str = "",
) -> triton.InferResult:
    inp = triton.InferInput("input-0", list(rows.shape), datatype)
    inp.set_data_from_numpy(rows.astype(v2.DATATYPES[datatype]), binary_data=binary)
    out = triton.InferRequestedOutput("predict", binary_data=binary)
    return c.infer(NAME, [inp], model_version=version, outputs=[out], request_id=request_id)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_fp64_matches_lightgbm(server: servers.Server, binary: bool) -> None:
    """FP64 golden rows within 1e-9 of LightGBM's predictions. JSON cannot carry NaN (rapidjson
    would write a NaN token, which every stack refuses as malformed JSON): the rows with missing
    values go as binary data, and as JSON ``null`` in test_null_is_missing_in_json."""
    c = triton_client(server)
    try:
        rows, want = (ROWS, WANT) if binary else (ROWS[~HAS_NAN], WANT[~HAS_NAN])
        result = triton_infer(c, rows, "FP64", binary, request_id="golden-1")
        assert result.get_response()["id"] == "golden-1"
        assert result.get_response()["model_name"] == NAME
        got = result.as_numpy("predict")
        assert got is not None and got.dtype == np.float64
        assert_parity(got, want)
        one = triton_infer(c, ROWS[:1], "FP64", binary, version="1").as_numpy("predict")
        assert one is not None and one.shape == (1,)
        assert_parity(one, WANT[:1])
    finally:
        c.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_fp32_and_int(server: servers.Server, binary: bool) -> None:
    """FP32 inputs are rounded to float32 by the client: the stack must give LightGBM's
    prediction for the rounded rows (1e-9). Against the float64 golden predictions they agree
    within 1e-6 relative here (measured: exactly, as no rounding of these rows crosses a split
    threshold); a rounding that did cross one would move a prediction by a whole leaf value, so
    that looser check documents what FP32 transport costs on these rows, not a tolerance the
    protocol grants. Integer tensors (INT64, UINT8) reach the model as float64."""
    c = triton_client(server)
    try:
        rows = ROWS if binary else ROWS[~HAS_NAN]
        got = triton_infer(c, rows, "FP32", binary).as_numpy("predict")
        assert got is not None
        assert_parity(got, lightgbm_on(rows.astype(np.float32)))
        assert_parity(got, WANT if binary else WANT[~HAS_NAN], rel=1e-6)
        ints = np.nan_to_num(ROWS * 10).round()
        for datatype in ("INT64", "UINT8"):
            values = np.abs(ints) if datatype == "UINT8" else ints
            got = triton_infer(c, values, datatype, binary).as_numpy("predict")
            assert got is not None
            assert_parity(got, lightgbm_on(values))
    finally:
        c.close()


def test_tritonclient_error_names_the_input(server: servers.Server) -> None:
    c = triton_client(server)
    try:
        with pytest.raises(triton.InferenceServerException) as info:
            triton_infer(c, ROWS[:2, :19], "FP64", binary=True)
        assert info.value.status() == "400"
        assert info.value.message() == v2.wrong_shape("input-0", N, [2, 19]).message
    finally:
        c.close()


def test_multiclass_output_shape(tmp_path: Path) -> None:
    """Shape [rows, classes] in every stack, JSON and binary, within 1e-9 of LightGBM."""
    golden = model.load_golden(MODELS["multiclass"])
    rows, want = np.array(golden.rows), np.array(golden.predictions)
    for stack in sorted(stacks.STACKS):
        srv = _start(stack, MODELS["multiclass"], tmp_path)
        c = triton_client(srv)
        try:
            meta = c.get_model_metadata(NAME)
            assert meta["outputs"][0]["shape"] == [-1, golden.num_class]
            for binary in (True, False):
                sent = rows if binary else np.nan_to_num(rows)
                expected = want if binary else lightgbm_on(sent, "multiclass")
                result = triton_infer(c, sent, "FP64", binary)
                assert result.get_output("predict")["shape"] == [len(rows), golden.num_class]
                got = result.as_numpy("predict")
                assert got is not None
                assert_parity(got, expected)
        finally:
            c.close()
            servers.stop(srv)


# -- inference with KServe's client --------------------------------------------------------------
# kserve cannot share the project's lock (it pins protobuf, pandas and psutil a major version
# back): its client runs from the kserve peer's own pinned venv (scripts/install-peers.sh, part
# of `make setup`), here as a child process. A missing venv fails the test, it never skips.
KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
import kserve

url, name, rows = sys.argv[1], sys.argv[2], np.asarray(json.loads(sys.argv[3]), dtype=float)
async def main():
    client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=15))
    try:
        out = {"live": await client.is_server_live(url), "ready": await client.is_server_ready(url),
               "model_ready": await client.is_model_ready(url, name)}
        for binary, sent in [(False, rows[~np.isnan(rows).any(axis=1)]), (True, rows)]:
            inp = kserve.InferInput("input-0", list(sent.shape), "FP64")
            inp.set_data_from_numpy(sent, binary_data=binary)
            req = kserve.InferRequest(model_name=name, infer_inputs=[inp], request_id="k-1")
            res = await client.infer(url, req, model_name=name)
            out["binary" if binary else "json"] = {
                "id": res.id, "output": res.outputs[0].name,
                "predictions": np.asarray(res.outputs[0].as_numpy()).tolist()}
        print(json.dumps(out))
    finally:
        await client.close()
asyncio.run(main())
"""


def test_kserve_rest_client(server: servers.Server) -> None:
    """KServe's own V2 REST client (kserve.InferenceRESTClient): health, JSON and binary."""
    import subprocess

    from fiber_endpoints import peers

    python = peers.python(peers.get("kserve"))
    assert python.exists(), f"{python} missing: run `make peers` (scripts/install-peers.sh)"
    rows = json.dumps(ROWS.tolist())  # NaN as Python's json writes and reads it
    proc = subprocess.run(
        [str(python), "-c", KSERVE_CLIENT, server.url, NAME, rows],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["live"] and out["ready"] and out["model_ready"]
    for kind, want in (("json", WANT[~HAS_NAN]), ("binary", WANT)):
        assert out[kind]["id"] == "k-1" and out[kind]["output"] == "predict"
        assert_parity(np.asarray(out[kind]["predictions"]), want)


# -- raw requests: missing values, nesting, Server-Timing ----------------------------------------
def test_null_is_missing_in_json(client: RawClient) -> None:
    i = int(np.argmax(HAS_NAN))
    data = [None if math.isnan(v) else v for v in GOLDEN.rows[i]]
    resp = v2_send(client, "POST", INFER, request(tensor(data), id="n-1"))
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["id"] == "n-1" and body["model_version"] == "1"
    assert body["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [1], "data": body["outputs"][0]["data"]}
    ]
    assert model.within_tolerance(body["outputs"][0]["data"][0], GOLDEN.predictions[i])


def test_nan_through_binary_data(client: RawClient) -> None:
    rows = ROWS[HAS_NAN][:5]
    body, headers = binary_request(rows, parameters={"binary_data_output": True})
    resp = v2_send(client, "POST", INFER, body, headers)
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"] == "application/octet-stream"
    head_len = int(resp.headers["inference-header-content-length"])
    head = json.loads(resp.body[:head_len])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 8 * len(rows)}
    got = np.frombuffer(resp.body[head_len:], "<f8")
    assert_parity(got, WANT[HAS_NAN][:5])


def test_nested_data_and_server_timing(client: RawClient) -> None:
    rows = ROWS[~HAS_NAN][:3]
    flat = v2_send(client, "POST", INFER, request(tensor(rows.reshape(-1).tolist(), [3, N])))
    nested = v2_send(client, "POST", INFER, request(tensor(rows.tolist(), [3, N])))
    assert flat.status == nested.status == 200
    assert flat.json()["outputs"] == nested.json()["outputs"]
    assert_parity(np.array(nested.json()["outputs"][0]["data"]), WANT[~HAS_NAN][:3])
    timing = parse_server_timing(nested.headers.get("server-timing"))
    assert set(timing) == {"inference", "app"} and 0 < timing["inference"] <= timing["app"]


# -- bad requests: the same status and message from every stack ----------------------------------
ROW = [0.5] * N
NESTED_64 = {"inputs": [tensor(ROW)], "parameters": {"deep": json.loads("[" * 62 + "]" * 62)}}
NESTED_65 = {"inputs": [tensor(ROW)], "parameters": {"deep": json.loads("[" * 63 + "]" * 63)}}
TOO_BIG = request(tensor([0.5] * 250_000, [12_500, N]))
BIN, BIN_HEADERS = binary_request(np.full((1, N), 0.5))
BIN_INF, _ = binary_request(np.array([[0.5] * 7 + [math.inf] + [0.5] * 12]))
BIN_SHORT, BIN_SHORT_HEADERS = binary_request(np.full((1, N), 0.5), size=8 * N - 8)
M = f"/v2/models/{NAME}"

# (id, method, path, body, headers, the exact error every stack must answer)
BAD: list[tuple[str, str, str, bytes | None, dict[str, str] | None, contract.ContractError]] = [
    # MLServer 1.7.1 answers these four with 500 and a traceback.
    ("wrong-feature-count", "POST", INFER, request(tensor([0.5] * 19, [1, 19])), None,
     v2.wrong_shape("x", N, [1, 19])),
    ("shape-data-mismatch", "POST", INFER, request(tensor([0.5] * 30, [2, N])), None,
     v2.wrong_count("x", 30, [2, N])),
    ("bytes-datatype", "POST", INFER, request(tensor(["a"] * N, [1, N], "BYTES")), None,
     v2.unsupported_datatype("x", "BYTES")),
    ("string-in-data", "POST", INFER, request(tensor([0.5] * 5 + ["x"] + [0.5] * 14)), None,
     v2.not_a_value("x", 5, N, "FP64")),
    # routes
    ("unknown-model", "POST", "/v2/models/other/infer", request(tensor(ROW)), None,
     v2.unknown_model("other", NAME)),
    ("unknown-version", "POST", f"{M}/versions/2/infer", request(tensor(ROW)), None,
     v2.unknown_version(NAME, "2")),
    ("unknown-model-metadata", "GET", "/v2/models/other", None, None,
     v2.unknown_model("other", NAME)),
    ("unknown-model-ready", "GET", "/v2/models/other/ready", None, None,
     v2.unknown_model("other", NAME)),
    ("unknown-v2-path", "GET", f"{M}/stats", None, None, contract.not_found(f"{M}/stats")),
    ("empty-model-name", "POST", "/v2/models//infer", b"{}", None,
     contract.not_found("/v2/models//infer")),
    ("trailing-slash", "GET", "/v2/", None, None, contract.not_found("/v2/")),
    ("get-infer", "GET", INFER, None, None, contract.method_not_allowed("GET", INFER)),
    ("post-live", "POST", "/v2/health/live", b"{}", None,
     contract.method_not_allowed("POST", "/v2/health/live")),
    # JSON
    ("malformed", "POST", INFER, b'{"inputs": [', None, contract.malformed_json()),
    ("nan-token", "POST", INFER, b'{"inputs": [{"data": [NaN]}]}', None,
     contract.malformed_json()),
    ("too-deep", "POST", INFER, json.dumps(NESTED_65).encode(), None, contract.malformed_json()),
    ("not-an-object", "POST", INFER, b"[1]", None, v2.not_an_object()),
    ("id-not-string", "POST", INFER, request(tensor(ROW), id=5), None,
     v2.expected("id", "a string")),
    ("binary-output-not-bool", "POST", INFER,
     request(tensor(ROW), parameters={"binary_data_output": "yes"}), None,
     v2.expected("parameters.binary_data_output", "true or false")),
    # tensors
    ("no-inputs", "POST", INFER, b'{"id": "a"}', None, v2.field_required("inputs")),
    ("two-inputs", "POST", INFER, request(tensor(ROW), tensor(ROW)), None,
     v2.wrong_input_count(2)),
    ("no-name", "POST", INFER, json.dumps({"inputs": [{"shape": [1, N]}]}).encode(), None,
     v2.field_required("inputs[0].name")),
    ("fp16", "POST", INFER, request(tensor(ROW, [1, N], "FP16")), None,
     v2.unsupported_datatype("x", "FP16")),
    ("shape-negative", "POST", INFER, request(tensor(ROW, [-1, N])), None,
     v2.expected('input "x": shape', "an array of integers from 0 to 2147483647")),
    ("shape-1d", "POST", INFER, request(tensor(ROW, [N])), None, v2.wrong_shape("x", N, [N])),
    ("zero-rows", "POST", INFER, request(tensor([], [0, N])), None, v2.no_rows("x")),
    ("too-many-rows", "POST", INFER, request(tensor([], [10_001, N])), None,
     v2.too_many_rows("x", 10_001)),
    ("no-data", "POST", INFER, json.dumps({"inputs": [
        {"name": "x", "shape": [1, N], "datatype": "FP64"}]}).encode(), None,
     v2.field_required('input "x": data')),
    ("data-not-array", "POST", INFER, request(tensor("0.5")), None,
     v2.expected('input "x": data', "an array")),
    ("bool-in-data", "POST", INFER, request(tensor([True] + [0.5] * 19)), None,
     v2.not_a_value("x", 0, N, "FP64")),
    ("null-in-int", "POST", INFER, request(tensor([1] * 3 + [None] + [1] * 16, [1, N], "INT32")),
     None, v2.not_a_value("x", 3, N, "INT32")),
    ("fraction-in-int", "POST", INFER, request(tensor([1.5] + [1] * 19, [1, N], "INT64")), None,
     v2.not_a_value("x", 0, N, "INT64")),
    ("int8-range", "POST", INFER, request(tensor([1, 300] + [1] * 18, [1, N], "INT8")), None,
     v2.out_of_range("x", 1, N, "INT8")),
    ("fp64-range", "POST", INFER, b'{"inputs": [{"name": "x", "shape": [1, 20], '
     b'"datatype": "FP64", "data": [1e400' + b", 1" * 19 + b"]}]}", None,
     v2.out_of_range("x", 0, N, "FP64")),
    ("fp32-range", "POST", INFER, request(tensor([[0.5] * N, [0.5] * 19 + [1e39]], [2, N],
     "FP32")), None, v2.out_of_range("x", 39, N, "FP32")),
    # binary tensor data
    ("binary-without-header", "POST", INFER, BIN, None, contract.malformed_json()),
    ("header-not-a-number", "POST", INFER, BIN, {"Inference-Header-Content-Length": "x1"},
     v2.bad_header_length(len(BIN))),
    ("header-past-body", "POST", INFER, BIN,
     {"Inference-Header-Content-Length": str(len(BIN) + 1)}, v2.bad_header_length(len(BIN))),
    ("binary-size-not-shape", "POST", INFER, BIN_SHORT, BIN_SHORT_HEADERS,
     v2.wrong_binary_size("x", 8 * N - 8, [1, N], "FP64")),
    ("binary-and-data", "POST", INFER, request(
        {**tensor(ROW), "parameters": {"binary_data_size": 160}}), None,
     v2.data_and_binary("x")),
    ("binary-size-no-header", "POST", INFER, json.dumps({"inputs": [
        {"name": "x", "shape": [1, N], "datatype": "FP64",
         "parameters": {"binary_data_size": 8 * N}}]}).encode(), None,
     v2.binary_without_header("x")),
    ("binary-short", "POST", INFER, BIN[:-8], BIN_HEADERS,
     v2.wrong_binary_length(8 * N - 8, 8 * N)),
    ("binary-infinity", "POST", INFER, BIN_INF, {"Inference-Header-Content-Length": str(
        len(BIN_INF) - 8 * N)}, v2.out_of_range("x", 7, N, "FP64")),
    # outputs
    ("unknown-output", "POST", INFER, request(tensor(ROW), outputs=[{"name": "proba"}]), None,
     v2.unknown_output(0, "proba")),
    ("classification", "POST", INFER, request(tensor(ROW), outputs=[
        {"name": "predict", "parameters": {"classification": 2}}]), None,
     v2.not_supported('output "predict"', "classification")),
    # limits
    ("body-too-large", "POST", INFER, TOO_BIG, None, contract.body_too_large()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_v2_request(
    client: RawClient,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str] | None,
    expected: contract.ContractError,
) -> None:
    resp = v2_send(client, method, path, body, headers)
    assert (resp.status, error_of(resp)) == (expected.status, expected.message)
    if expected.status == 405:
        assert resp.headers.get("allow"), "405 must say which methods are allowed"


def test_depth_limit_is_exact(client: RawClient) -> None:
    """64 levels are JSON the protocol reads (the unknown parameter is ignored); 65 are not."""
    resp = v2_send(client, "POST", INFER, json.dumps(NESTED_64).encode())
    assert resp.status == 200, resp.body


def test_still_healthy_after_bad_v2_input(server: servers.Server, client: RawClient) -> None:
    for _, method, path, body, headers, _ in BAD:
        v2_send(client, method, path, body, headers)
    assert server.process is not None and server.process.poll() is None
    assert v2_send(client, "GET", "/v2/health/live").status == 200


@pytest.fixture()
def fast_path_off_server(tmp_path: Path) -> Iterator[servers.Server]:
    """asgi-msgspec with its fast path off: the V2 answers must not depend on it."""
    srv = servers.start("asgi-msgspec", MODELS["regression"], log_dir=tmp_path, timeout=120,
                        env={"FIBER_ENDPOINTS_FAST_PATH": "0"})  # fmt: skip
    yield srv
    servers.stop(srv)


def test_fast_path_off_answers_the_same(fast_path_off_server: servers.Server) -> None:
    c = RawClient(fast_path_off_server.url, timeout=15)
    try:
        rows = ROWS[~HAS_NAN][:2]
        resp = v2_send(c, "POST", INFER, request(tensor(rows.tolist(), [2, N])))
        assert resp.status == 200
        assert_parity(np.array(resp.json()["outputs"][0]["data"]), WANT[~HAS_NAN][:2])
        for _, method, path, body, headers, expected in BAD[:4]:
            resp = v2_send(c, method, path, body, headers)
            assert (resp.status, error_of(resp)) == (expected.status, expected.message)
    finally:
        c.close()
