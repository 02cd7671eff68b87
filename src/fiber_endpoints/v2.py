"""Open Inference Protocol V2 (KServe / Triton REST) beside the contract, in one place: routes,
tensors, the binary tensor data extension, limits and messages (docs/contract.md, "V2").

Both Python stacks use this module: the control stack for every V2 request, the fast stack for
whatever its typed fast decode does not take (``stacks/msgspec_v2.py``), so the two answer every
request alike by construction. The Go stack mirrors it in ``fiber/v2.go``; the V2 contract suite
(``tests/integration/test_v2_contract.py``) holds all three to the same statuses and messages.

Errors are :class:`~fiber_endpoints.contract.ContractError` (status + message, the contract's
``{"error": "..."}`` body): 400 for a bad request, 404 for an unknown model or version, 413 for
a body over the contract's limit.
"""

from __future__ import annotations

import json
import math
import re
import sys
from array import array
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from fiber_endpoints import contract
from fiber_endpoints.contract import ContractError

DEFAULT_MODEL_NAME = "model"
MODEL_NAME_ENV = "FIBER_ENDPOINTS_MODEL_NAME"  # read by every stack (fiber/config.go too)
# Safe in a URL path segment without escaping, and in Fiber's router as a static segment.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MODEL_VERSION = "1"
PLATFORM = "lightgbm"
INPUT_NAME = "input-0"  # what the metadata announces; any input name is accepted
OUTPUT_NAME = "predict"  # as MLServer's LightGBM runtime names its output
OUTPUT_DATATYPE = "FP64"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"
HEADER_LENGTH_RAW = HEADER_LENGTH.encode()  # as the raw HTTP servers read and write it
BINARY_CONTENT_TYPE = "application/octet-stream"
# A V2 request needs 5 levels (body, inputs, tensor, data, rows); deeper is refused as malformed
# JSON, so no parser in any stack recurses without bound.
MAX_DEPTH = 64
MAX_INT = 2**31 - 1  # shape dimensions and binary_data_size

# Accepted input datatypes -> their little-endian layout in binary data (as a NumPy dtype string,
# for clients and tests) and the ``array`` module's typecode of that layout (for the decode: the
# fast stack's image has no NumPy). Values reach the model as float64, LightGBM's input type.
_LAYOUTS = [
    ("FP64", "<f8", "d"), ("FP32", "<f4", "f"),
    ("INT8", "i1", "b"), ("INT16", "<i2", "h"), ("INT32", "<i4", "i"), ("INT64", "<i8", "q"),
    ("UINT8", "u1", "B"), ("UINT16", "<u2", "H"), ("UINT32", "<u4", "I"), ("UINT64", "<u8", "Q"),
]  # fmt: skip
DATATYPES: dict[str, str] = {name: layout for name, layout, _ in _LAYOUTS}
_TYPECODES = {name: code for name, _, code in _LAYOUTS}
ITEM_SIZES = {name: int(layout[-1]) for name, layout, _ in _LAYOUTS}
for _name, _code in _TYPECODES.items():  # C's int and friends, on this platform
    if array(_code).itemsize != ITEM_SIZES[_name]:
        raise ImportError(f"array typecode {_code!r} is not {ITEM_SIZES[_name]} bytes here")
FLOAT_DATATYPES = ("FP64", "FP32")


def _int_range(layout: str) -> tuple[float, float]:
    bits = 8 * int(layout[-1])
    if "u" in layout:
        return 0.0, float(2**bits - 1)
    return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)


# An integer datatype's range, compared as float64 (as every stack does).
_INT_RANGE = {
    name: _int_range(layout) for name, layout, _ in _LAYOUTS if name not in FLOAT_DATATYPES
}

SERVER, LIVE, READY, MODEL, MODEL_READY, INFER = (
    "server", "live", "ready", "model", "model_ready", "infer"
)  # fmt: skip
# Route kinds left out of traces, as /health is (OpenTelemetry excluded_urls regexes, FastAPI).
UNTRACED_URLS = [r"/v2$", r"/v2/health/", r"/v2/models/[^/]+(/versions/[^/]+)?(/ready)?$"]


# -- messages (fiber/v2.go has the same) ---------------------------------------------------------
def unknown_model(name: str, served: str) -> ContractError:
    return ContractError(404, f'model "{name}" not found (this server serves "{served}")')


def unknown_version(model: str, version: str) -> ContractError:
    return ContractError(
        404, f'model "{model}" has no version "{version}" (its only version is "{MODEL_VERSION}")'
    )


def bad_header_length(body_size: int) -> ContractError:
    return ContractError(
        400, f"Inference-Header-Content-Length: expected an integer from 0 to {body_size}"
    )


def bad_request(message: str) -> ContractError:
    return ContractError(400, message)


def not_an_object() -> ContractError:
    return bad_request('body must be a JSON object with an "inputs" field')


def field_required(field: str) -> ContractError:
    return bad_request(f"{field}: field required")


def expected(field: str, what: str) -> ContractError:
    return bad_request(f"{field}: expected {what}")


def wrong_input_count(got: int) -> ContractError:
    return bad_request(f"inputs: expected 1 tensor, got {got}")


def unsupported_datatype(input_name: str, datatype: str) -> ContractError:
    return bad_request(
        f'input "{input_name}": datatype "{datatype}" is not supported ({", ".join(DATATYPES)})'
    )


def _dims(shape: list[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def wrong_shape(input_name: str, n_features: int, shape: list[int]) -> ContractError:
    return bad_request(
        f'input "{input_name}": expected shape [rows, {n_features}], got {_dims(shape)}'
    )


def no_rows(input_name: str) -> ContractError:
    return bad_request(f'input "{input_name}": expected at least 1 row, got 0')


def too_many_rows(input_name: str, rows: int) -> ContractError:
    return bad_request(
        f'input "{input_name}": {rows} rows, at most {contract.MAX_BATCH_ROWS} allowed'
    )


def not_supported(where: str, parameter: str) -> ContractError:
    return bad_request(f'{where}: parameter "{parameter}" is not supported')


def data_and_binary(input_name: str) -> ContractError:
    return bad_request(
        f'input "{input_name}": give either data or parameters.binary_data_size, not both'
    )


def binary_without_header(input_name: str) -> ContractError:
    return bad_request(
        f'input "{input_name}": parameters.binary_data_size needs the '
        "Inference-Header-Content-Length header"
    )


def wrong_count(input_name: str, got: int, shape: list[int]) -> ContractError:
    return bad_request(
        f'input "{input_name}": data has {got} values, shape {_dims(shape)} needs '
        f"{shape[0] * shape[1]}"
    )


def wrong_binary_size(input_name: str, got: int, shape: list[int], datatype: str) -> ContractError:
    need = shape[0] * shape[1] * ITEM_SIZES[datatype]
    return bad_request(
        f'input "{input_name}": binary_data_size is {got} bytes, shape {_dims(shape)} of '
        f"{datatype} needs {need}"
    )


def wrong_binary_length(got: int, declared: int) -> ContractError:
    return bad_request(
        f"binary data after the JSON header is {got} bytes, binary_data_size says {declared}"
    )


def _element(input_name: str, index: int, n_features: int) -> str:
    row, feature = divmod(index, n_features)
    return f'input "{input_name}": row {row}, feature {feature}'


def not_a_value(input_name: str, index: int, n_features: int, datatype: str) -> ContractError:
    what = "a number or null" if datatype in FLOAT_DATATYPES else "an integer"
    return bad_request(f"{_element(input_name, index, n_features)}: expected {what}")


def out_of_range(input_name: str, index: int, n_features: int, datatype: str) -> ContractError:
    where = _element(input_name, index, n_features)
    return bad_request(f"{where}: number out of range for {datatype}")


def unknown_output(index: int, name: str) -> ContractError:
    return bad_request(
        f'outputs[{index}]: unknown output "{name}" (the model\'s output is "{OUTPUT_NAME}")'
    )


# -- routes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    kind: str
    method: str  # the one method the route allows
    model: str | None = None
    version: str | None = None


def match(path: str) -> Route | None:
    """The V2 route a path names (model and version not checked yet), or ``None``."""
    if path == "/v2":
        return Route(SERVER, "GET")
    if path == "/v2/health/live":
        return Route(LIVE, "GET")
    if path == "/v2/health/ready":
        return Route(READY, "GET")
    if not path.startswith("/v2/models/"):
        return None
    parts = path[len("/v2/models/") :].split("/")
    if "" in parts:
        return None
    model, rest, version = parts[0], parts[1:], None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not rest:
        return Route(MODEL, "GET", model, version)
    if rest == ["ready"]:
        return Route(MODEL_READY, "GET", model, version)
    if rest == ["infer"]:
        return Route(INFER, "POST", model, version)
    return None


def is_v2_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def resolve(method: str, path: str, model_name: str) -> Route:
    """The route, checked in the contract's order: path (404), method (405, ``Allow`` is the
    route's method), then the model (404) and its version (404)."""
    route = match(path)
    if route is None:
        raise contract.not_found(path)
    if method != route.method:
        raise contract.method_not_allowed(method, path)
    if route.model is not None and route.model != model_name:
        raise unknown_model(route.model, model_name)
    if route.version is not None and route.version != MODEL_VERSION:
        raise unknown_version(model_name, route.version)
    return route


def infer_paths(model_name: str) -> list[str]:
    """The two paths an inference request for this model is sent to."""
    base = f"/v2/models/{model_name}"
    return [f"{base}/infer", f"{base}/versions/{MODEL_VERSION}/infer"]


def check_model_name(name: str) -> str:
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"model name {name!r}: letters, digits, '_', '.' and '-', starting with a letter "
            "or digit"
        )
    return name


# -- GET bodies ----------------------------------------------------------------------------------
def server_metadata(stack: str) -> dict[str, Any]:
    return {"name": stack, "version": metadata.version("fiber-endpoints"), "extensions": EXTENSIONS}


def output_shape(rows: int, num_class: int) -> list[int]:
    return [rows] if num_class == 1 else [rows, num_class]


def model_metadata(model_name: str, n_features: int, num_class: int) -> dict[str, Any]:
    return {
        "name": model_name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, n_features]}],
        "outputs": [
            {"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE, "shape": output_shape(-1, num_class)}
        ],
    }


def get_body(route: Route, stack: str, model_name: str, n_features: int, num_class: int) -> Any:
    """The body of a GET route (KServe's client reads ``live``/``ready`` from the health ones)."""
    if route.kind == SERVER:
        return server_metadata(stack)
    if route.kind == LIVE:
        return {"live": True}
    if route.kind == READY:
        return {"ready": True}
    if route.kind == MODEL:
        return model_metadata(model_name, n_features, num_class)
    return {"name": model_name, "ready": True}


# -- the inference request -----------------------------------------------------------------------
@dataclass(frozen=True)
class InferRequest:
    id: str | None
    rows: int
    values: array[float]  # float64, rows * n_features row after row, NaN = missing
    binary_output: bool


def json_length(header: bytes | None, body_size: int) -> int:
    """Where the JSON part ends: ``Inference-Header-Content-Length`` (ASCII digits, at most the
    body's size), or the whole body without that header."""
    if header is None:
        return body_size
    if not header.isdigit() or int(header) > body_size:
        raise bad_header_length(body_size)
    return int(header)


def _too_deep(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """More than ``limit`` nested arrays/objects (the body itself is level 1)."""
    stack: list[tuple[Any, int]] = [(doc, 1)] if type(doc) in (list, dict) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if type(value) is dict else value
        kinds = set(map(type, children))
        if list in kinds or dict in kinds:
            stack.extend((c, depth + 1) for c in children if type(c) in (list, dict))
    return False


def decode_json(text: bytes) -> Any:
    """Strict RFC 8259 JSON in UTF-8 (no NaN/Infinity), at most :data:`MAX_DEPTH` deep."""
    try:
        doc = json.loads(text.decode("utf-8"), parse_constant=contract.reject_json_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise contract.malformed_json() from None
    if _too_deep(doc):
        raise contract.malformed_json()
    return doc


def _is_int(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_INT


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major elements of nested arrays (any nesting: arrays only group, as in Triton)."""
    if list not in set(map(type, data)):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _as_float(value: Any) -> Any:
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer literal past float64
            return math.inf if value > 0 else -math.inf
    return value


def json_values(flat: list[Any], name: str, n_features: int, datatype: str) -> array[float]:
    """The elements as float64, or the error for the first bad one in row-major order."""
    allowed = {float, int, type(None)} if datatype in FLOAT_DATATYPES else {float, int}
    first_bad = None
    if not set(map(type, flat)) <= allowed:
        first_bad = next(i for i, v in enumerate(flat) if type(v) not in allowed)
        flat = flat[:first_bad]
    if int in set(map(type, flat)):
        flat = [_as_float(v) for v in flat]
    if None in flat:
        flat = [math.nan if v is None else v for v in flat]
    values = array("d", flat)
    if datatype == "FP32":  # rounded to float32 (past its range: infinite, refused below)
        values = array("d", array("f", values))
    bad = _first_bad(values, datatype)
    if bad is not None:
        v = values[bad]
        if not math.isinf(v) and v != math.floor(v):
            raise not_a_value(name, bad, n_features, datatype)
        raise out_of_range(name, bad, n_features, datatype)
    if first_bad is not None:
        raise not_a_value(name, first_bad, n_features, datatype)
    return values


def _first_bad(values: array[float], datatype: str) -> int | None:
    """The first value the datatype does not hold: infinite, or for an integer type not a whole
    number within its range (NaN: missing, floats only). Checked in C (min, max, ``in``); the
    index is looked for only when one is bad."""
    if datatype in FLOAT_DATATYPES:
        if math.inf not in values and -math.inf not in values:
            return None
        return next(i for i, v in enumerate(values) if math.isinf(v))
    lo, hi = _INT_RANGE[datatype]
    if not values or (
        lo <= min(values) and max(values) <= hi and all(map(float.is_integer, values))
    ):
        return None
    return next(i for i, v in enumerate(values) if not (v.is_integer() and lo <= v <= hi))


def binary_values(
    raw: bytes, offset: int, count: int, name: str, n_features: int, datatype: str
) -> array[float]:
    typed: array[Any] = array(_TYPECODES[datatype])
    typed.frombytes(memoryview(raw)[offset : offset + count * typed.itemsize])
    if sys.byteorder == "big":  # the extension's layout is little-endian
        typed.byteswap()
    values: array[float] = typed if datatype == "FP64" else array("d", typed)
    if datatype in FLOAT_DATATYPES:
        bad = _first_bad(values, datatype)
        if bad is not None:
            raise out_of_range(name, bad, n_features, datatype)
    return values


def _object(doc: dict[str, Any], key: str, field: str) -> dict[str, Any] | None:
    value = doc.get(key)
    if key in doc and type(value) is not dict:
        raise expected(field, "an object")
    return value


def _bool(params: dict[str, Any] | None, key: str, field: str) -> bool | None:
    if params is None or key not in params:
        return None
    value = params[key]
    if type(value) is not bool:
        raise expected(field, "true or false")
    return value


def _string(doc: dict[str, Any], key: str, field: str) -> str:
    if key not in doc:
        raise field_required(field)
    value = doc[key]
    if type(value) is not str:
        raise expected(field, "a string")
    return value


def parse_infer(body: bytes, header: bytes | None, n_features: int) -> InferRequest:
    """Read and check an inference request, in the order docs/contract.md gives (V2, Errors)."""
    json_end = json_length(header, len(body))
    doc = decode_json(body[:json_end])
    if type(doc) is not dict:
        raise not_an_object()
    request_id = doc.get("id")
    if "id" in doc and type(request_id) is not str:
        raise expected("id", "a string")
    params = _object(doc, "parameters", "parameters")
    binary_output = bool(_bool(params, "binary_data_output", "parameters.binary_data_output"))

    # The input tensor.
    if "inputs" not in doc:
        raise field_required("inputs")
    inputs = doc["inputs"]
    if type(inputs) is not list:
        raise expected("inputs", "an array of 1 tensor")
    if len(inputs) != 1:
        raise wrong_input_count(len(inputs))
    tensor = inputs[0]
    if type(tensor) is not dict:
        raise expected("inputs[0]", "an object")
    name = _string(tensor, "name", "inputs[0].name")
    where = f'input "{name}"'
    datatype = _string(tensor, "datatype", f"{where}: datatype")
    if datatype not in DATATYPES:
        raise unsupported_datatype(name, datatype)
    if "shape" not in tensor:
        raise field_required(f"{where}: shape")
    shape = tensor["shape"]
    if type(shape) is not list or not all(map(_is_int, shape)):
        raise expected(f"{where}: shape", f"an array of integers from 0 to {MAX_INT}")
    if len(shape) != 2 or shape[1] != n_features:
        raise wrong_shape(name, n_features, shape)
    rows = shape[0]
    if rows == 0:
        raise no_rows(name)
    if rows > contract.MAX_BATCH_ROWS:
        raise too_many_rows(name, rows)
    tparams = _object(tensor, "parameters", f"{where}: parameters")
    binary_size = None
    if tparams is not None and "binary_data_size" in tparams:
        binary_size = tparams["binary_data_size"]
        if not _is_int(binary_size):
            field = f"{where}: parameters.binary_data_size"
            raise expected(field, f"an integer from 0 to {MAX_INT}")
    if tparams is not None and "shared_memory_region" in tparams:
        raise not_supported(where, "shared_memory_region")
    if binary_size is not None and "data" in tensor:
        raise data_and_binary(name)
    if binary_size is None and "data" not in tensor:
        raise field_required(f"{where}: data")
    if binary_size is not None and header is None:
        raise binary_without_header(name)
    count = rows * n_features
    binary_length = len(body) - json_end
    if binary_size is not None:
        if binary_size != count * ITEM_SIZES[datatype]:
            raise wrong_binary_size(name, binary_size, shape, datatype)
        if binary_length != binary_size:
            raise wrong_binary_length(binary_length, binary_size)
        values = binary_values(body, json_end, count, name, n_features, datatype)
    else:
        data = tensor["data"]
        if type(data) is not list:
            raise expected(f"{where}: data", "an array")
        flat = _flatten(data)
        if len(flat) != count:
            raise wrong_count(name, len(flat), shape)
        if binary_length != 0:
            raise wrong_binary_length(binary_length, 0)
        values = json_values(flat, name, n_features, datatype)

    # The requested outputs: the model has one; only how it is sent can be chosen.
    if "outputs" in doc:
        outputs = doc["outputs"]
        if type(outputs) is not list:
            raise expected("outputs", "an array")
        for i, out in enumerate(outputs):
            if type(out) is not dict:
                raise expected(f"outputs[{i}]", "an object")
            out_name = _string(out, "name", f"outputs[{i}].name")
            if out_name != OUTPUT_NAME:
                raise unknown_output(i, out_name)
            owhere = f'output "{OUTPUT_NAME}"'
            oparams = _object(out, "parameters", f"{owhere}: parameters")
            binary = _bool(oparams, "binary_data", f"{owhere}: parameters.binary_data")
            for unsupported in ("classification", "shared_memory_region"):
                if oparams is not None and unsupported in oparams:
                    raise not_supported(owhere, unsupported)
            if binary is not None:
                binary_output = binary
    return InferRequest(request_id, rows, values, binary_output)


# -- the response --------------------------------------------------------------------------------
def response_doc(
    model_name: str,
    request_id: str | None,
    rows: int,
    num_class: int,
    flat: list[float],
    binary: bool,
) -> dict[str, Any]:
    """The response's JSON part; with ``binary`` the data follows it (:func:`binary_data`)."""
    output: dict[str, Any] = {
        "name": OUTPUT_NAME,
        "datatype": OUTPUT_DATATYPE,
        "shape": output_shape(rows, num_class),
    }
    if binary:
        output["parameters"] = {"binary_data_size": 8 * len(flat)}
    else:
        output["data"] = flat
    doc: dict[str, Any] = {"model_name": model_name, "model_version": MODEL_VERSION}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = [output]
    return doc


def binary_data(flat: list[float]) -> bytes:
    """FP64 little-endian, row-major, as the binary tensor data extension sends tensors."""
    data = array("d", flat)
    if sys.byteorder != "little":
        data.byteswap()
    return data.tobytes()
