"""The contract (docs/contract.md), tested once against every registered stack, each started
for real as its own process on loopback."""

from __future__ import annotations

import json
import math
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fiber_endpoints import contract, model, stacks
from fiber_endpoints.bench import parity, servers
from fiber_endpoints.bench.client import RawClient, Response, parse_server_timing
from fiber_endpoints.bench.workload import encode_body

pytestmark = pytest.mark.contract

MODELS = {
    name: model.MODELS_DIR / name / "model.txt" for name in ("regression", "binary", "multiclass")
}
N = 20
GOOD_ROW = [0.5] * N


def _start(name: str, model_path: Path, tmp: Path) -> servers.Server:
    return servers.start(name, model_path, log_dir=tmp, timeout=120)


@pytest.fixture(scope="module", params=sorted(stacks.STACKS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Server]:
    srv = _start(request.param, MODELS["regression"], tmp_path_factory.mktemp(request.param))
    yield srv
    servers.stop(srv)


@pytest.fixture()
def client(server: servers.Server) -> Iterator[RawClient]:
    c = RawClient(server.url, timeout=15)
    yield c
    c.close()


def send(
    c: RawClient,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
) -> Response:
    headers = {"Content-Type": content_type} if content_type else {}
    raw = c.prepare(method, path, body, headers=headers)
    if content_type is None and body is not None:
        raw = raw.replace(b"Content-Type: application/json\r\n", b"")
    return c.send(raw)


def error_of(resp: Response) -> str:
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = json.loads(resp.body)
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def test_health(server: servers.Server, client: RawClient) -> None:
    resp = send(client, "GET", "/health", content_type=None)
    assert resp.status == 200
    body = resp.json()
    predictor = body.pop("predictor")
    assert body == {"status": "ok", "stack": server.name, "num_features": N, "num_class": 1}
    assert predictor in {"lightgbm-booster", "leaves", "lleaves", "lightgbm-c-api"}


def test_serves_without_the_bench_only_packages(server: servers.Server) -> None:
    """A stack served from the project's environment loads none of the training and plotting
    packages (``stacks.NOT_SERVING``), as in the serving image; LightGBM would otherwise import
    pandas and scikit-learn at start (seconds, and ~100 MiB). Seen in the process's memory map:
    each of these has compiled extensions that importing it maps."""
    assert server.pid is not None
    mapped = Path(f"/proc/{server.pid}/maps").read_text()
    loaded = [
        name for name in ("sklearn", "pandas", "pyarrow", "matplotlib") if f"/{name}/" in mapped
    ]
    assert loaded == []


def test_single_prediction_matches_lightgbm(client: RawClient) -> None:
    golden = model.load_golden(MODELS["regression"])
    row = golden.rows[0]
    resp = send(client, "POST", "/inference", json.dumps({"data": row}).encode())
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["prediction"] == pytest.approx(golden.predictions[0], rel=1e-12)


def test_null_is_missing_value(client: RawClient) -> None:
    golden = model.load_golden(MODELS["regression"])
    i = next(i for i, r in enumerate(golden.rows) if any(math.isnan(v) for v in r))
    body = json.dumps({"data": [None if math.isnan(v) else v for v in golden.rows[i]]})
    resp = send(client, "POST", "/inference", body.encode())
    assert resp.status == 200
    assert model.within_tolerance(resp.json()["prediction"], golden.predictions[i])


def test_batch(client: RawClient) -> None:
    golden = model.load_golden(MODELS["regression"])
    resp = send(client, "POST", "/inference/batch", encode_body(golden.rows[:7]))
    assert resp.status == 200
    preds = resp.json()["predictions"]
    assert (
        model.parity_errors(
            preds, model.Golden(**{**golden.__dict__, "predictions": golden.predictions[:7]})
        )
        == []
    )


def test_server_timing_on_inference(client: RawClient) -> None:
    for path, body in [
        ("/inference", json.dumps({"data": GOOD_ROW})),
        ("/inference/batch", json.dumps({"data": [GOOD_ROW] * 3})),
    ]:
        resp = send(client, "POST", path, body.encode())
        assert resp.status == 200
        timing = parse_server_timing(resp.headers.get("server-timing"))
        assert set(timing) == {"inference", "app"}, resp.headers.get("server-timing")
        assert 0 < timing["inference"] <= timing["app"] < 1000


def test_server_timing_only_where_the_handler_answered(client: RawClient) -> None:
    """A 422 reached the handler (inference 0); a 400 did not: the same in every stack."""
    resp = send(client, "POST", "/inference", json.dumps({"data": [1.0, 2.0]}).encode())
    assert resp.status == 422
    timing = parse_server_timing(resp.headers.get("server-timing"))
    assert set(timing) == {"inference", "app"} and timing["inference"] == 0
    resp = send(client, "POST", "/inference", b'{"data": [1,')
    assert resp.status == 400
    assert "server-timing" not in resp.headers


NAMES = [f"Column_{i}" for i in range(N)]  # the golden models' names (trained without names)


def named(row: list[float], seed: int, names: list[str] = NAMES) -> dict[str, float | None]:
    """A golden row by feature name, its keys in a shuffled order, NaN as null."""
    pairs = [(k, None if math.isnan(v) else v) for k, v in zip(names, row, strict=True)]
    random.Random(seed).shuffle(pairs)
    return dict(pairs)


def test_by_name_matches_lightgbm(client: RawClient) -> None:
    golden = model.load_golden(MODELS["regression"])
    with_nan = next(i for i, r in enumerate(golden.rows) if any(math.isnan(v) for v in r))
    for i in (0, 1, with_nan):  # null is the missing value, as in arrays
        resp = send(client, "POST", "/inference", body(named(golden.rows[i], seed=i)))
        assert resp.status == 200, resp.body
        assert model.within_tolerance(resp.json()["prediction"], golden.predictions[i])
    rows = [named(r, seed=i) for i, r in enumerate(golden.rows[:9])]
    resp = send(client, "POST", "/inference/batch", body(rows))
    assert resp.status == 200, resp.body
    want = model.Golden(**{**golden.__dict__, "predictions": golden.predictions[:9]})
    assert model.parity_errors(resp.json()["predictions"], want) == []
    # Escaped names are their unescaped selves: every key written as \u escapes.
    escaped = (
        "{"
        + ", ".join(
            '"' + "".join(f"\\u{ord(c):04x}" for c in k) + f'": {json.dumps(v)}'
            for k, v in named(golden.rows[0], seed=5).items()
        )
        + "}"
    )
    resp = send(client, "POST", "/inference", b'{"data": ' + escaped.encode() + b"}")
    assert resp.status == 200, resp.body
    assert model.within_tolerance(resp.json()["prediction"], golden.predictions[0])


def test_parity_on_golden_set(server: servers.Server) -> None:
    result = parity.check(server.url, model.load_golden(MODELS["regression"]))
    assert result.ok, result.errors


DEEP = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
TOO_BIG = b'{"data": [' + b",".join([b"1.0"] * 300_000) + b"]}"

JSON = "application/json"
C = contract
ROW = json.dumps({"data": GOOD_ROW}).encode()


def body(data: object) -> bytes:
    return json.dumps({"data": data}).encode()


FULL = dict.fromkeys(NAMES, 0.5)


# (id, method, path, body, content type, the exact error every stack must answer)
BAD_REQUESTS: list[tuple[str, str, str, bytes | None, str | None, contract.ContractError]] = [
    ("malformed", "POST", "/inference", b'{"data": [1,', JSON, C.malformed_json()),
    ("empty-body", "POST", "/inference", b"", JSON, C.malformed_json()),
    ("nan-token", "POST", "/inference", b'{"data": [NaN]}', JSON, C.malformed_json()),
    ("infinity-token", "POST", "/inference", b'{"data": [Infinity]}', JSON, C.malformed_json()),
    ("not-utf8", "POST", "/inference", b'{"data": ["\xff"]}', JSON, C.malformed_json()),
    ("text-plain", "POST", "/inference", ROW, "text/plain", C.wrong_content_type()),
    ("no-content-type", "POST", "/inference", ROW, None, C.wrong_content_type()),
    ("not-object", "POST", "/inference", b"[1, 2]", JSON, C.not_an_object()),
    ("missing-data", "POST", "/inference", b'{"rows": []}', JSON, C.missing_data()),
    ("data-not-array", "POST", "/inference", b'{"data": 5}', JSON, C.not_an_array("data", N)),
    ("too-few", "POST", "/inference", body([1.0] * 19), JSON, C.wrong_feature_count("data", N, 19)),
    ("too-many", "POST", "/inference", body([1.0] * 21), JSON,
     C.wrong_feature_count("data", N, 21)),
    ("empty-row", "POST", "/inference", body([]), JSON, C.wrong_feature_count("data", N, 0)),
    ("string", "POST", "/inference", body([1.0] * 19 + ["x"]), JSON, C.not_a_number("data[19]")),
    ("numeric-string", "POST", "/inference", body(["1.5"] + [1.0] * 19), JSON,
     C.not_a_number("data[0]")),
    ("bool", "POST", "/inference", body([True] + [1.0] * 19), JSON, C.not_a_number("data[0]")),
    ("nested", "POST", "/inference", body([[1.0]] + [1.0] * 19), JSON, C.not_a_number("data[0]")),
    # Valid JSON nested past Python's recursion limit (a "bracket bomb", 200 kB): refused where it
    # stops fitting, as the Go stack (which reads any depth) answers, never a RecursionError 500.
    ("nested-100k-deep", "POST", "/inference", DEEP, JSON, C.not_a_number("data[0]")),
    ("nested-deep-unclosed", "POST", "/inference", b'{"data": ' + b"[" * 100_000, JSON,
     C.malformed_json()),
    ("nested-deep-unterminated-string", "POST", "/inference",
     b'{"data": ' + b"[" * 2_000 + b'"' + b'\\"' * 400_000, JSON, C.malformed_json()),
    ("batch-nested-100k-deep", "POST", "/inference/batch", b'{"data": [' + DEEP[9:-1] + b"]}",
     JSON, C.not_a_number("data[0][0]")),
    ("name-nested-100k-deep", "POST", "/inference",
     b'{"data": {"Column_0": ' + DEEP[9:-1] + b", "
     + json.dumps({k: 0.5 for k in NAMES[1:]})[1:-1].encode() + b"}}",
     JSON, C.not_a_number('data["Column_0"]')),
    ("object", "POST", "/inference", body([{}] + [1.0] * 19), JSON, C.not_a_number("data[0]")),
    ("out-of-range", "POST", "/inference", b'{"data": [1e400' + b", 1" * 19 + b"]}", JSON,
     C.out_of_range("data[0]")),
    ("huge-integer", "POST", "/inference", b'{"data": [1' + b"0" * 400 + b", 1" * 19 + b"]}",
     JSON, C.out_of_range("data[0]")),
    ("batch-empty", "POST", "/inference/batch", body([]), JSON, C.empty_batch()),
    ("batch-flat", "POST", "/inference/batch", ROW, JSON, C.not_a_batch()),
    ("batch-short-row", "POST", "/inference/batch", body([GOOD_ROW, [1.0] * 19]), JSON,
     C.wrong_feature_count("data[1]", N, 19)),
    ("batch-bad-value", "POST", "/inference/batch",
     body([GOOD_ROW, [1.0] * 5 + ["x"] + [1.0] * 14]), JSON, C.not_a_number("data[1][5]")),
    ("batch-too-many-rows", "POST", "/inference/batch",
     body([[0] * N] * (C.MAX_BATCH_ROWS + 1)), JSON, C.batch_too_large(C.MAX_BATCH_ROWS + 1)),
    ("name-unknown", "POST", "/inference", body({**FULL, "Column_20": 1, "colour": 2}), JSON,
     C.unknown_or_missing("data", ["Column_20", "colour"], [])),
    ("name-missing", "POST", "/inference", body({k: 1 for k in NAMES if k != "Column_7"}), JSON,
     C.unknown_or_missing("data", [], ["Column_7"])),
    ("name-unknown-and-missing", "POST", "/inference",
     body({**{k: 1 for k in NAMES[:-1]}, "column_19": 1}), JSON,
     C.unknown_or_missing("data", ["column_19"], ["Column_19"])),
    ("name-empty-object", "POST", "/inference", b'{"data": {}}', JSON,
     C.unknown_or_missing("data", [], NAMES)),
    ("name-duplicate", "POST", "/inference",
     b'{"data": {"Column_0": 1, ' + json.dumps(FULL)[1:-1].encode() + b"}}", JSON,
     C.duplicate_feature("data", "Column_0")),
    ("name-duplicate-escaped", "POST", "/inference",
     b'{"data": {"Column\\u005f3": 1, ' + json.dumps(FULL)[1:-1].encode() + b"}}", JSON,
     C.duplicate_feature("data", "Column_3")),
    ("name-not-a-number", "POST", "/inference", body({**FULL, "Column_4": "4"}), JSON,
     C.not_a_number('data["Column_4"]')),
    ("name-out-of-range", "POST", "/inference",
     b'{"data": {"Column_2": -1e400, ' + json.dumps(FULL)[1:-1].encode() + b"}}", JSON,
     C.out_of_range('data["Column_2"]')),
    ("name-unicode-unknown", "POST", "/inference",
     b'{"data": {"temp\\u00e9rature": 1, "\\ud800": 2, "\xce\xa9": 3}}', JSON,
     C.unknown_or_missing("data", ["temp\u00e9rature", "\ufffd", "\u03a9"], NAMES)),
    ("name-batch-mixed", "POST", "/inference/batch", body([FULL, GOOD_ROW]), JSON,
     C.mixed_rows("data[1]", True)),
    ("name-batch-missing", "POST", "/inference/batch", body([FULL, FULL, {}]), JSON,
     C.unknown_or_missing("data[2]", [], NAMES)),
    ("name-batch-value", "POST", "/inference/batch", body([FULL, {"Column_0": True}]), JSON,
     C.not_a_number('data[1]["Column_0"]')),
    ("body-too-large", "POST", "/inference", TOO_BIG, JSON, C.body_too_large()),
    ("unknown-path", "POST", "/predict", b"{}", JSON, C.not_found("/predict")),
    ("trailing-slash", "POST", "/inference/", ROW, JSON, C.not_found("/inference/")),
    ("upper-case", "POST", "/INFERENCE", ROW, JSON, C.not_found("/INFERENCE")),
    ("unknown-get", "GET", "/nope", None, None, C.not_found("/nope")),
    ("get-inference", "GET", "/inference", None, None, C.method_not_allowed("GET", "/inference")),
    ("post-health", "POST", "/health", b"{}", JSON, C.method_not_allowed("POST", "/health")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_input(
    client: RawClient,
    method: str,
    path: str,
    body: bytes | None,
    ctype: str | None,
    expected: contract.ContractError,
) -> None:
    resp = send(client, method, path, body, ctype)
    assert (resp.status, error_of(resp)) == (expected.status, expected.message)
    if expected.status == 405:
        assert resp.headers.get("allow"), "405 must say which methods are allowed"


def test_chunked_body_over_limit_is_413(server: servers.Server) -> None:
    c = RawClient(server.url, timeout=15)
    head = (
        b"POST /inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(TOO_BIG[i : i + 65536]), TOO_BIG[i : i + 65536])
        for i in range(0, len(TOO_BIG), 65536)
    )
    try:
        resp = c.send(head + chunks + b"0\r\n\r\n")
    finally:
        c.close()
    assert resp.status == 413
    error_of(resp)


def test_still_healthy_after_bad_input(server: servers.Server, client: RawClient) -> None:
    for _, method, path, data, ctype, _ in BAD_REQUESTS:
        send(client, method, path, data, ctype)
    assert server.process is not None and server.process.poll() is None
    assert send(client, "GET", "/health", content_type=None).status == 200


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_other_objectives(stack: str, kind: str, tmp_path: Path) -> None:
    golden = model.load_golden(MODELS[kind])
    srv = _start(stack, MODELS[kind], tmp_path)
    try:
        assert srv.health["num_class"] == golden.num_class
        result = parity.check(srv.url, golden)
        assert result.ok, result.errors
        c = RawClient(srv.url)
        resp = send(c, "POST", "/inference", json.dumps({"data": GOOD_ROW}).encode())
        c.close()
        pred = resp.json()["prediction"]
        if kind == "multiclass":
            assert isinstance(pred, list) and len(pred) == golden.num_class
            assert sum(pred) == pytest.approx(1.0)
        else:
            assert isinstance(pred, float) and 0.0 <= pred <= 1.0
    finally:
        servers.stop(srv)


UNICODE_NAMES = ["température", "größe_cm", "Ω", "x.y", "a\\b"]


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_unicode_feature_names(stack: str, tmp_path: Path) -> None:
    """A model whose names are not ASCII (and one holds a backslash): the same names, escaped
    or not, give LightGBM's prediction in every stack; the same message names them."""
    import lightgbm as lgb
    import numpy as np

    x = np.random.default_rng(0).normal(size=(300, len(UNICODE_NAMES)))
    data = lgb.Dataset(x, label=x[:, 0] - x[:, 4], feature_name=UNICODE_NAMES)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, data, 5)
    path = tmp_path / "unicode.txt"
    booster.save_model(str(path))
    row = [0.5, -1.0, 2.0, 0.25, -0.75]
    want = float(booster.predict(np.array([row]))[0])
    srv = servers.start(stack, path, log_dir=tmp_path, timeout=120,
                        env={"FIBER_ENDPOINTS_PREDICTOR": "capi"})  # fmt: skip
    c = RawClient(srv.url, timeout=15)
    try:
        by_name = dict(reversed(list(zip(UNICODE_NAMES, row, strict=True))))
        for raw in (json.dumps({"data": by_name}, ensure_ascii=False).encode(),
                    json.dumps({"data": by_name}, ensure_ascii=True).encode()):  # fmt: skip
            resp = send(c, "POST", "/inference", raw)
            assert resp.status == 200, resp.body
            assert resp.json()["prediction"] == pytest.approx(want, rel=1e-9)
        resp = send(c, "POST", "/inference", body({"Température": 1, "a\\b": 2}))
        expected = C.unknown_or_missing("data", ["Température"], UNICODE_NAMES[:4])
        assert (resp.status, error_of(resp)) == (expected.status, expected.message)
    finally:
        c.close()
        servers.stop(srv)


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_graceful_shutdown(stack: str, tmp_path: Path) -> None:
    srv = _start(stack, MODELS["regression"], tmp_path)
    assert srv.process is not None
    srv.process.send_signal(signal.SIGTERM)
    code = srv.process.wait(timeout=15)
    assert code == 0, servers.tail(srv.log_path)
