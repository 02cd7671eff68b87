"""Requests by feature name (``rows.py``): the reading and its order, unit by unit, then both
Python stacks in process giving the same answers (status and message) and LightGBM's numbers."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from fiber_endpoints import contract, model, rows
from fiber_endpoints.contract import ContractError
from fiber_endpoints.stacks import asgi_msgspec
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler

MODEL = model.MODELS_DIR / "regression" / "model.txt"
JSON = "application/json"
NAMES = ["a", "b", "c"]
FEATURES = rows.FeatureNames.of(NAMES)


def read(doc: Any, batch: bool = False, features: rows.FeatureNames = FEATURES) -> list[rows.Row]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return rows.read(body, features, batch)


def refusal(doc: Any, batch: bool = False) -> tuple[int, str]:
    with pytest.raises(ContractError) as info:
        read(doc, batch)
    return info.value.status, info.value.message


def test_feature_names_are_lightgbms(tmp_path: Path) -> None:
    assert rows.read_feature_names(MODEL) == lgb.Booster(model_file=str(MODEL)).feature_name()
    assert rows.read_feature_names(MODEL)[:2] == ["Column_0", "Column_1"]
    names = ["température", "größe_cm", "x.y", "Ω\\n"]
    path = _train(tmp_path, names)
    assert rows.read_feature_names(path) == lgb.Booster(model_file=str(path)).feature_name()
    assert rows.read_feature_names(path) == names


def test_any_key_order_gives_the_models_order() -> None:
    assert read({"data": {"c": 3, "a": 1.5, "b": None}}) == [[1.5, None, 3.0]]
    got = read({"data": [{"b": 2, "c": 3, "a": 1}, {"a": -1, "c": 1e-300, "b": 0}]}, batch=True)
    assert got == [[1.0, 2.0, 3.0], [-1.0, 0.0, 1e-300]]


def test_positional_bodies_read_as_before() -> None:
    assert read({"data": [1, None, 2.5]}) == [[1.0, None, 2.5]]
    assert read({"data": [[1, 2, 3]]}, batch=True) == [[1.0, 2.0, 3.0]]


NEVER = contract.ContractError(0, "")
CASES: list[tuple[str, bytes, bool, ContractError]] = [
    ("unknown", b'{"data": {"a": 1, "b": 2, "c": 3, "d": 4}}', False,
     contract.unknown_or_missing("data", ["d"], [])),
    ("missing", b'{"data": {"c": 1}}', False, contract.unknown_or_missing("data", [], ["a", "b"])),
    ("both", b'{"data": {"z": 1, "c": 2, "y": 3}}', False,
     contract.unknown_or_missing("data", ["z", "y"], ["a", "b"])),
    ("empty-object", b'{"data": {}}', False,
     contract.unknown_or_missing("data", [], ["a", "b", "c"])),
    ("duplicate", b'{"data": {"a": 1, "b": 2, "a": 1, "c": 3}}', False,
     contract.duplicate_feature("data", "a")),
    ("duplicate-before-unknown", b'{"data": {"x": 1, "x": 2}}', False,
     contract.duplicate_feature("data", "x")),
    ("duplicate-escaped", b'{"data": {"a": 1, "\\u0061": 2}}', False,
     contract.duplicate_feature("data", "a")),
    ("string", b'{"data": {"a": "1", "b": 2, "c": 3}}', False,
     contract.not_a_number('data["a"]')),
    ("bool", b'{"data": {"a": 1, "b": true, "c": 3}}', False, contract.not_a_number('data["b"]')),
    ("out-of-range", b'{"data": {"a": 1, "b": 2, "c": 1e400}}', False,
     contract.out_of_range('data["c"]')),
    ("value-before-names", b'{"data": {"zz": 1, "b": []}}', False,
     contract.not_a_number('data["b"]')),
    ("value-of-duplicate", b'{"data": {"a": "x", "a": 1}}', False,
     contract.not_a_number('data["a"]')),
    ("nan-token", b'{"data": {"a": NaN}}', False, contract.malformed_json()),
    ("syntax-after", b'{"data": {"zz": 1}, }', False, contract.malformed_json()),
    ("data-string", b'{"data": "a=1"}', False, contract.not_an_array("data", 3)),
    ("batch-object", b'{"data": {"a": 1}}', True, contract.not_a_batch()),
    ("batch-mixed", b'{"data": [{"a": 1, "b": 2, "c": 3}, [1, 2, 3]]}', True,
     contract.mixed_rows("data[1]", True)),
    ("batch-mixed-array-first", b'{"data": [[1, 2, 3], {"a": 1}]}', True,
     contract.mixed_rows("data[1]", False)),
    ("batch-value-before-mixed", b'{"data": [["x"], {"a": 1}]}', True,
     contract.not_a_number("data[0][0]")),
    ("batch-number-row", b'{"data": [{"a": 1}, 5]}', True, contract.not_a_batch()),
    ("batch-named-value", b'{"data": [{"a": 1, "b": 2, "c": 3}, {"a": null, "b": "x"}]}', True,
     contract.not_a_number('data[1]["b"]')),
    ("batch-value-before-names", b'{"data": [{"q": 1}, {"a": false}]}', True,
     contract.not_a_number('data[1]["a"]')),
    ("batch-names", b'{"data": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}]}', True,
     contract.unknown_or_missing("data[1]", [], ["c"])),
    ("batch-empty-object", b'{"data": [{}]}', True,
     contract.unknown_or_missing("data[0]", [], ["a", "b", "c"])),
    ("batch-count-before-names",
     b'{"data": [' + b", ".join([b'{"q": 1}'] * (contract.MAX_BATCH_ROWS + 1)) + b"]}", True,
     contract.batch_too_large(contract.MAX_BATCH_ROWS + 1)),
]  # fmt: skip


@pytest.mark.parametrize(("body", "batch", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_refusals_in_the_contracts_order(body: bytes, batch: bool, expected: ContractError) -> None:
    assert refusal(body, batch) == (expected.status, expected.message)


def test_messages() -> None:
    many = [f"n{i}" for i in range(8)]
    assert contract.unknown_or_missing("data[2]", many, []).message == (
        'data[2]: unknown features: "n0", "n1", "n2", "n3", "n4" and 3 more'
    )
    assert contract.unknown_or_missing("data", ["x"], ["a"]).message == (
        'data: unknown features: "x"; missing features: "a"'
    )
    assert contract.duplicate_feature("data", "a").message == 'data: duplicate feature "a"'
    assert contract.mixed_rows("data[3]", False).message == (
        "data[3]: rows must all be arrays or all be objects (data[0] is an array)"
    )


def test_top_level_data_repeated_last_wins() -> None:
    assert read(b'{"data": {"x": 1}, "data": {"a": 1, "b": 2, "c": 3}}') == [[1.0, 2.0, 3.0]]


def test_escapes_and_unicode_names() -> None:
    features = rows.FeatureNames.of(["température", "Ω", "tab\\t"])
    body = b'{"data": {"temp\\u00e9rature": 1, "\xce\xa9": 2, "tab\\\\t": 3}}'
    assert rows.read(body, features, False) == [[1.0, 2.0, 3.0]]
    # A lone surrogate is U+FFFD, as Go's encoding/json reads it; a pair is its character.
    with pytest.raises(ContractError) as info:
        rows.read(b'{"data": {"\\ud800x": 1, "\\ud83d\\ude00": 2}}', features, False)
    assert info.value.message.startswith('data: unknown features: "\ufffdx", "\U0001f600";')


def test_wide_model_by_name() -> None:
    names = [f"f{i}" for i in range(200)]
    features = rows.FeatureNames.of(names)
    values = {name: float(i) for i, name in enumerate(names)}
    shuffled = dict(random.Random(1).sample(sorted(values.items()), len(values)))
    assert rows.read(json.dumps({"data": shuffled}).encode(), features, False) == [
        [float(i) for i in range(200)]
    ]


def test_uses_names() -> None:
    assert rows.uses_names({"data": {}}, False) and not rows.uses_names({"data": []}, False)
    assert rows.uses_names({"data": [[1], {}]}, True)
    assert not rows.uses_names({"data": [[1]]}, True) and not rows.uses_names([], True)


# -- both Python stacks in process ---------------------------------------------------------------
def _named(golden: model.Golden, names: list[str], i: int, seed: int) -> dict[str, float | None]:
    pairs = [(n, None if math.isnan(v) else v) for n, v in zip(names, golden.rows[i], strict=True)]
    random.Random(seed).shuffle(pairs)
    return dict(pairs)


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    predictor = CapiPredictor(MODEL, threads=1)
    features = rows.FeatureNames.of(rows.read_feature_names(MODEL))
    yield Handler(predictor, asgi_msgspec.STACK_NAME, features=features)
    predictor.close()


@pytest.fixture(scope="module")
def control() -> Any:
    from fastapi.testclient import TestClient

    from fiber_endpoints.stacks import fastapi_control

    app = fastapi_control.create_app(MODEL)
    return TestClient(fastapi_control.ContractMiddleware(app, app.state.model_name))


def test_by_name_gives_lightgbms_predictions(handler: Handler, control: Any) -> None:
    golden = model.load_golden(MODEL)
    names = rows.read_feature_names(MODEL)
    for i in range(5):
        body = json.dumps({"data": _named(golden, names, i, seed=i)}).encode()
        fast = json.loads(handler.single(body).body)["prediction"]
        slow = control.post("/inference", content=body, headers={"content-type": JSON})
        assert slow.status_code == 200, slow.text
        assert fast == slow.json()["prediction"] == pytest.approx(golden.predictions[i], rel=1e-12)
    batch = json.dumps({"data": [_named(golden, names, i, seed=9) for i in range(7)]}).encode()
    fast_batch = json.loads(handler.batch(batch).body)["predictions"]
    slow = control.post("/inference/batch", content=batch, headers={"content-type": JSON})
    assert fast_batch == slow.json()["predictions"]
    assert np.allclose(fast_batch, golden.predictions[:7], rtol=1e-12, atol=0)


FULL = {f"Column_{i}": 0.5 for i in range(20)}
STACK_CASES: list[tuple[str, str, bytes]] = [
    ("unknown", "/inference", json.dumps({"data": {**FULL, "Column_20": 1}}).encode()),
    ("missing", "/inference", json.dumps({"data": {"Column_3": 1}}).encode()),
    ("duplicate", "/inference", b'{"data": {"Column_0": 1, "Column_0": 2}}'),
    ("not-a-number", "/inference", json.dumps({"data": {**FULL, "Column_7": "7"}}).encode()),
    ("mixed", "/inference/batch", json.dumps({"data": [FULL, [0.5] * 20]}).encode()),
    ("batch-empty-object", "/inference/batch", b'{"data": [{}]}'),
    ("malformed", "/inference", b'{"data": {"Column_0": 1,'),
    ("null-row", "/inference/batch", json.dumps({"data": [FULL, None]}).encode()),
]


@pytest.mark.parametrize(("path", "body"), [c[1:] for c in STACK_CASES],
                         ids=[c[0] for c in STACK_CASES])  # fmt: skip
def test_both_python_stacks_refuse_alike(
    handler: Handler, control: Any, path: str, body: bytes
) -> None:
    fast = handler.batch(body) if path.endswith("batch") else handler.single(body)
    slow = control.post(path, content=body, headers={"content-type": JSON})
    assert (fast.status, json.loads(fast.body)) == (slow.status_code, slow.json())
    assert fast.status in (400, 422)


def _train(tmp_path: Path, names: list[str]) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(names)))
    data = lgb.Dataset(x, label=x[:, 0] * 2, feature_name=names, free_raw_data=False)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4}, data, 3)
    path = tmp_path / "named.txt"
    booster.save_model(str(path))
    return path


def test_a_bracket_bomb_is_read_with_its_deep_values_emptied() -> None:
    """Valid JSON nested past Python's recursion limit reads as the same document with every
    value deeper than 32 levels emptied; brackets inside strings are text, not nesting."""
    from fiber_endpoints import contract

    bomb = '{"s": "[[[{{\\"]]", "data": [' + "[" * 50_000 + "]" * 50_000 + ', 1.5], "t": "]]}"}'
    doc = contract.loads_json(bomb.encode())
    assert doc["s"] == '[[[{{"]]' and doc["t"] == "]]}" and doc["data"][1] == 1.5
    depth, value = 0, doc["data"][0]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == 32 - 2  # "data"'s object and array, then arrays down to level 32, emptied
    shallow = '{"data": [[[1]]]}'
    assert contract.loads_json(shallow) == {"data": [[[1]]]}  # not deep: read as it is
    with pytest.raises(ValueError):
        contract.loads_json(b'{"data": [NaN]}')
    # Malformed bombs stay malformed (a 400), never a RecursionError, and in linear time: one
    # never closed, and one whose unterminated string is a 1 MB run of escaped quotes.
    for malformed in (
        '{"data": [' + "[" * 5_000,
        '{"data": [' + "[" * 2_000 + '"' + '\\"' * 500_000,
    ):
        with pytest.raises(ValueError):
            contract.loads_json(malformed.encode())
