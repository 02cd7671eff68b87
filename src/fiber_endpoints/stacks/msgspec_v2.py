"""Open Inference Protocol V2 for the fast Python stack: one typed msgspec decode for the plain
request, :mod:`fiber_endpoints.v2` for everything else.

The plain request is what ``tritonclient`` and KServe's client send for one FP64 tensor in JSON:
``{"id"?, "parameters"?, "inputs": [{"name", "shape": [rows, N], "datatype": "FP64", "data":
[flat numbers or nulls]}], "outputs"?: [{"name": "predict", "parameters"?: {"binary_data"}}]}``.
Its happy path is one typed decode, a few checks, one predictor call and one encode, as the
contract's :class:`~fiber_endpoints.stacks.msgspec_handler.Handler` does. Any request the typed
decode refuses or does not cover (nested data, another datatype, binary data, unknown fields, a
bad value) is read again by :func:`fiber_endpoints.v2.parse_infer`, which the control stack uses
for every request, so both stacks give the same answer and the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from fiber_endpoints import contract, v2
from fiber_endpoints.contract import ContractError
from fiber_endpoints.stacks.lgbm_capi import flatten_rows
from fiber_endpoints.stacks.msgspec_handler import Handler, Reply, _finite, _timing

Param = str | int | float | bool
_BINARY = v2.BINARY_CONTENT_TYPE.encode()


# Unknown fields are refused (the generic path then reads the request): so the typed decode never
# skips a value, and never accepts a body the generic path would refuse as too deep.
class _Tensor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    shape: list[int]
    datatype: str
    data: list[float | None] | UnsetType = UNSET
    parameters: dict[str, Param] | UnsetType = UNSET


class _Output(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    parameters: dict[str, Param] | UnsetType = UNSET


class _Request(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    inputs: list[_Tensor]
    id: str | UnsetType = UNSET
    parameters: dict[str, Param] | UnsetType = UNSET
    outputs: list[_Output] | UnsetType = UNSET
    model_name: str | UnsetType = UNSET  # KServe's client sends it; the path names the model


class V2Handler:
    """The V2 routes over the contract handler's predictor (and its tracing wrappers)."""

    def __init__(self, handler: Handler, stack_name: str, model_name: str) -> None:
        predictor = handler.predictor
        self.model_name = model_name
        self.num_features = n = predictor.num_features
        self.num_class = k = predictor.num_class
        self._handler = handler
        self._decode = msgspec.json.Decoder(_Request).decode
        self._encode: Callable[[Any], bytes] = msgspec.json.Encoder().encode
        self._get = {
            kind: self._encode(v2.get_body(v2.Route(kind, "GET"), stack_name, model_name, n, k))
            for kind in (v2.SERVER, v2.LIVE, v2.READY, v2.MODEL, v2.MODEL_READY)
        }
        self._head = b'{"model_name":' + self._encode(model_name) + b',"model_version":"1",'
        self._shape_tail = b"]," if k == 1 else b"," + str(k).encode() + b"],"

    def get(self, route: v2.Route) -> Reply:
        return Reply(200, self._get[route.kind])

    def infer(self, body: bytes, header: bytes | None) -> Reply:
        """``POST /v2/models/{name}[/versions/1]/infer`` (route, model and size already checked)."""
        started = perf_counter()
        if header is None:
            try:
                request = self._decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                request = None
            if request is not None:
                plain = self._plain(request)
                if plain is not None:
                    request_id, data, rows, binary = plain
                    return self._predict(started, request_id, data, rows, binary)
        try:
            parsed = v2.parse_infer(body, header, self.num_features)
        except ContractError as err:
            return Handler.error(err)
        # float64 row after row, writable (a fresh array): what predict_flat reads in place
        return self._predict(started, parsed.id, parsed.values, parsed.rows, parsed.binary_output)

    def _plain(self, req: _Request) -> tuple[str | None, list[float | None], int, bool] | None:
        """The request's id, data, rows and output form, when it is the plain case and valid."""
        if len(req.inputs) != 1:
            return None
        tensor = req.inputs[0]
        data, shape = tensor.data, tensor.shape
        if (
            tensor.datatype != "FP64"
            or tensor.parameters
            or data is UNSET
            or len(shape) != 2
            or shape[1] != self.num_features
            or not 1 <= shape[0] <= contract.MAX_BATCH_ROWS
            or len(data) != shape[0] * self.num_features
        ):
            return None
        binary: Any = False
        if req.parameters is not UNSET:
            binary = req.parameters.get("binary_data_output", False)
            if type(binary) is not bool:
                return None
        if req.outputs is not UNSET:
            for out in req.outputs:
                if out.name != v2.OUTPUT_NAME:
                    return None
                if out.parameters is not UNSET:
                    if out.parameters.keys() - {"binary_data"}:
                        return None
                    binary = out.parameters.get("binary_data", binary)
                    if type(binary) is not bool:
                        return None
        request_id = None if req.id is UNSET else req.id
        return request_id, data, shape[0], binary

    def _predict(
        self, started: float, request_id: str | None, data: Any, rows: int, binary: bool
    ) -> Reply:
        """Predict ``rows`` rows (a flat list with ``None`` or a float64 buffer) and answer."""
        handler = self._handler
        t0 = perf_counter()
        if rows == 1 and type(data) is list:
            one = handler._predict_row(data)
            flat: list[float] = one if type(one) is list else [one]
        else:
            if type(data) is list:
                data = flatten_rows([data])
            flat = handler._predict_flat(data, rows)
        t1 = perf_counter()
        if not _finite(flat):
            return Handler.error(contract.non_finite_output())
        head = self._head
        if request_id is not None:
            head += b'"id":' + self._encode(request_id) + b","
        head += b'"outputs":[{"name":"predict","datatype":"FP64","shape":['
        head += str(rows).encode() + self._shape_tail
        inference_s = handler._traced_s if handler._timed_inside else t1 - t0
        if binary:
            head += b'"parameters":{"binary_data_size":' + str(8 * len(flat)).encode() + b"}}]}"
            timing = _timing(inference_s, perf_counter() - started)
            body = head + v2.binary_data(flat)
            return Reply(200, body, timing, header_length=str(len(head)).encode(),
                         content_type=_BINARY, inference_s=inference_s)  # fmt: skip
        body = head + b'"data":' + self._encode(flat) + b"}]}"
        timing = _timing(inference_s, perf_counter() - started)
        return Reply(200, body, timing, inference_s=inference_s)
