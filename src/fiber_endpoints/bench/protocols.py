"""The wire protocols ``bench`` speaks to an endpoint: the project's contract and the Open
Inference Protocol V2 (what MLServer, KServe and Triton serve). One definition each of the
paths, the request body for N rows, and the predictions read back from an answer, so parity, the
sequential protocol and the load lab send the same rows the same way over either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fiber_endpoints import contract, v2
from fiber_endpoints.bench.workload import compact_json, encode_body, json_values


@dataclass(frozen=True)
class WireProtocol:
    """How one protocol asks for predictions and answers them."""

    name: str
    health_path: str
    single_path: str
    batch_path: str

    def body(self, rows: np.ndarray, batch: bool) -> bytes:
        """The request for ``rows`` (2-D, NaN = missing); ``batch=False`` sends one row."""
        raise NotImplementedError

    def predictions(self, answer: Any, batch: bool) -> list[Any]:
        """Predictions from a decoded JSON answer: float per row, list per row (multiclass)."""
        raise NotImplementedError

    def path(self, batch: bool) -> str:
        return self.batch_path if batch else self.single_path


@dataclass(frozen=True)
class Contract(WireProtocol):
    """``docs/contract.md``: ``{"data": row}`` on /inference, ``{"data": rows}`` on the batch
    route; a missing value is ``null``."""

    name: str = "contract"
    health_path: str = contract.HEALTH_PATH
    single_path: str = contract.INFERENCE_PATH
    batch_path: str = contract.BATCH_PATH

    def body(self, rows: np.ndarray, batch: bool) -> bytes:
        return encode_body(rows if batch else rows[0])

    def predictions(self, answer: Any, batch: bool) -> list[Any]:
        return list(answer["predictions"]) if batch else [answer["prediction"]]


@dataclass(frozen=True)
class V2(WireProtocol):
    """Open Inference Protocol V2 (REST, JSON): one FP64 tensor ``[rows, features]``, row-major
    and flat, a missing value as ``null`` (as every stack here and the V2 section of
    docs/contract.md take it); the first output tensor, ``[rows]`` or ``[rows, classes]``."""

    name: str = "v2"
    health_path: str = "/v2/health/ready"
    single_path: str = f"/v2/models/{v2.DEFAULT_MODEL_NAME}/infer"
    batch_path: str = f"/v2/models/{v2.DEFAULT_MODEL_NAME}/infer"

    @classmethod
    def for_model(cls, model_name: str) -> V2:
        path = f"/v2/models/{model_name}/infer"
        return cls(single_path=path, batch_path=path)

    def body(self, rows: np.ndarray, batch: bool) -> bytes:
        sent = rows if batch else rows[:1]
        tensor = {
            "name": v2.INPUT_NAME,
            "shape": list(sent.shape),
            "datatype": "FP64",
            "data": json_values(sent.ravel().tolist()),
        }
        return compact_json({"inputs": [tensor]})

    def predictions(self, answer: Any, batch: bool) -> list[Any]:
        out = answer["outputs"][0]
        data = np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])
        return [list(map(float, r)) if data.ndim == 2 else float(r) for r in data]


@dataclass(frozen=True)
class BentoJSON(WireProtocol):
    """BentoML's own JSON API for a service whose ``predict`` takes and returns a NumPy array
    (``peers/bentoml/service.py``): ``{"data": rows}`` on ``/predict``, one row as a batch of
    one, a missing value as ``null`` (the float64 validator reads it as NaN); the answer is the
    JSON array of predictions (a list per row for multiclass). Health: ``/readyz``."""

    name: str = "bentoml"
    health_path: str = "/readyz"
    single_path: str = "/predict"
    batch_path: str = "/predict"

    def body(self, rows: np.ndarray, batch: bool) -> bytes:
        sent = rows if batch else rows[:1]
        return compact_json({"data": [json_values(r) for r in sent.tolist()]})

    def predictions(self, answer: Any, batch: bool) -> list[Any]:
        data = np.asarray(answer, dtype=np.float64)
        return [list(map(float, r)) if data.ndim == 2 else float(r) for r in data]


PROTOCOLS = ("contract", "v2")  # what --protocol takes; "bentoml" is a peer's own


def get(name: str, model_name: str = v2.DEFAULT_MODEL_NAME) -> WireProtocol:
    if name == "contract":
        return Contract()
    if name == "v2":
        return V2.for_model(model_name)
    if name == "bentoml":
        return BentoJSON()
    raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
