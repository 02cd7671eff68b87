"""The wire protocols bench speaks: the same rows as the contract's body and as a V2 tensor, and
predictions read back from each answer shape."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fiber_endpoints.bench import protocols
from fiber_endpoints.bench.workload import encode_body

ROWS = np.array([[1.5, math.nan, 3.0], [0.1 + 0.2, -2.0, 0.0]])


def test_the_contract_body_is_the_one_encoder() -> None:
    proto = protocols.get("contract")
    assert proto.body(ROWS, batch=True) == encode_body(ROWS)
    assert proto.body(ROWS, batch=False) == encode_body(ROWS[0]) == b'{"data":[1.5,null,3.0]}'
    assert (proto.path(False), proto.path(True)) == ("/inference", "/inference/batch")
    assert proto.predictions({"prediction": 0.5}, False) == [0.5]
    assert proto.predictions({"predictions": [0.5, 0.7]}, True) == [0.5, 0.7]


def test_v2_sends_one_fp64_tensor_row_major_with_null_for_missing() -> None:
    proto = protocols.get("v2", model_name="churn")
    assert proto.path(False) == proto.path(True) == "/v2/models/churn/infer"
    assert proto.health_path == "/v2/health/ready"
    (tensor,) = json.loads(proto.body(ROWS, batch=True))["inputs"]
    assert tensor["shape"] == [2, 3] and tensor["datatype"] == "FP64"
    assert tensor["data"] == [1.5, None, 3.0, 0.1 + 0.2, -2.0, 0.0]  # exact round trip
    (single,) = json.loads(proto.body(ROWS, batch=False))["inputs"]
    assert single["shape"] == [1, 3] and single["data"] == [1.5, None, 3.0]


def test_v2_predictions_follow_the_output_shape() -> None:
    proto = protocols.get("v2")
    flat = {"outputs": [{"name": "predict", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}
    assert proto.predictions(flat, True) == [1.0, 2.0]
    probs = {"outputs": [{"shape": [2, 3], "data": [0.1, 0.2, 0.7, 0.3, 0.3, 0.4]}]}
    assert proto.predictions(probs, True) == [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]
    with pytest.raises(ValueError):
        proto.predictions({"outputs": [{"shape": [3], "data": [1, 2]}]}, True)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="contract, v2"):
        protocols.get("grpc")


def test_bentoml_sends_rows_as_data_and_reads_the_json_array_back() -> None:
    proto = protocols.get("bentoml")
    assert proto.path(False) == proto.path(True) == "/predict"
    assert proto.health_path == "/readyz"
    assert json.loads(proto.body(ROWS, batch=True)) == {
        "data": [[1.5, None, 3.0], [0.1 + 0.2, -2.0, 0.0]]
    }
    assert json.loads(proto.body(ROWS, batch=False)) == {"data": [[1.5, None, 3.0]]}
    assert proto.predictions([0.25, 1], True) == [0.25, 1.0]
    assert proto.predictions([[0.1, 0.9]], False) == [[0.1, 0.9]]
