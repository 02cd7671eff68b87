"""One OpenAPI 3.1 document for the contract and the V2 routes, built from the same constants.

``docs/openapi.json`` is this document for the seed model (20 features, regression, model name
``model``); ``python -m fiber_endpoints.openapi --features N --classes K --model-name NAME``
prints it for another model. Each operation lists every status it may answer and, per status,
what kind of request gets it, in the contract's check order; the schemas are JSON Schema 2020-12,
so the fuzzer (``tests/integration/test_fuzz.py``) validates every answer with them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fiber_endpoints import contract, limits, v2

REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def schemas(n_features: int, num_class: int) -> dict[str, Any]:
    number = {"type": "number"}
    feature = {"type": ["number", "null"], "description": "null = missing (LightGBM's NaN)"}
    row = {"type": "array", "items": feature, "minItems": n_features, "maxItems": n_features}
    one = (
        number
        if num_class == 1
        else {"type": "array", "items": number, "minItems": num_class, "maxItems": num_class}
    )
    tensor_in = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": v2.MAX_INT},
                "prefixItems": [
                    {"type": "integer", "minimum": 1, "maximum": contract.MAX_BATCH_ROWS},
                    {"const": n_features},
                ],
                "minItems": 2,
                "maxItems": 2,
            },
            "datatype": {"enum": list(v2.DATATYPES)},
            "data": {"type": "array", "description": "row-major, flat or nested"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            },
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "minLength": 1}},
            "additionalProperties": False,
        },
        "InferenceRequest": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": row},
            "description": "other top-level keys are ignored",
        },
        "BatchRequest": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "array",
                    "items": row,
                    "minItems": 1,
                    "maxItems": contract.MAX_BATCH_ROWS,
                }
            },
        },
        "Prediction": {
            "type": "object",
            "required": ["prediction"],
            "properties": {"prediction": one},
            "additionalProperties": False,
        },
        "Predictions": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array", "items": one, "minItems": 1}},
            "additionalProperties": False,
        },
        "Health": {
            "type": "object",
            "required": ["status", "stack", "num_features", "num_class", "predictor"],
            "properties": {
                "status": {"const": "ok"},
                "stack": {"type": "string"},
                "num_features": {"const": n_features},
                "num_class": {"const": num_class},
                "predictor": {"enum": ["lightgbm-booster", "leaves", "lleaves", "lightgbm-c-api"]},
            },
            "additionalProperties": False,
        },
        "V2ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "V2Live": {"type": "object", "required": ["live"], "properties": {"live": {"const": True}}},
        "V2Ready": {
            "type": "object",
            "required": ["ready"],
            "properties": {"ready": {"const": True}, "name": {"type": "string"}},
        },
        "V2ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"const": [v2.MODEL_VERSION]},
                "platform": {"const": v2.PLATFORM},
                "inputs": {"type": "array", "minItems": 1, "maxItems": 1},
                "outputs": {"type": "array", "minItems": 1, "maxItems": 1},
            },
        },
        "V2InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data_output": {"type": "boolean"}},
                },
                "inputs": {"type": "array", "items": tensor_in, "minItems": 1, "maxItems": 1},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"const": v2.OUTPUT_NAME}},
                    },
                },
            },
        },
        "V2InferenceResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"const": v2.MODEL_VERSION},
                "id": {"type": "string"},
                "outputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "datatype", "shape"],
                        "properties": {
                            "name": {"const": v2.OUTPUT_NAME},
                            "datatype": {"const": v2.OUTPUT_DATATYPE},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "data": {"type": "array", "items": number},
                        },
                    },
                },
            },
        },
    }


# Answers every operation may give, whatever its body: the connection limits (docs/contract.md,
# "Limits") and the wrong method on a known path.
_COMMON = {
    "405": _error("known path, wrong method (with `Allow`)"),
    "408": _error(f"request not whole within {limits.READ_TIMEOUT_S:g} s of its first byte"),
    "431": _error(f"request line and headers over {limits.MAX_HEADER_BYTES} bytes"),
    "503": _error(f"over {limits.MAX_CONNECTIONS} open connections (`Retry-After`)"),
}
_INFERENCE_ERRORS = {
    "400": _error("malformed JSON (incl. empty body, NaN/Infinity) or Content-Type not JSON"),
    "413": _error(f"body over {contract.MAX_BODY_BYTES} bytes (chunked included)"),
    "422": _error(
        "JSON but not the shape: not an object, data missing or not an array (of rows), wrong "
        "feature count, a value not a number or null, a number out of float64 range, 0 rows "
        f"or more than {contract.MAX_BATCH_ROWS}"
    ),
    "500": _error("the model produced a non-finite value (never a silent wrong answer)"),
}
_V2_INFER_ERRORS = {
    "400": _error(
        "any bad request, in the check order of docs/contract.md (V2, Errors): header length, "
        "JSON, inputs, datatype, shape, parameters, data, outputs"
    ),
    "404": _error("unknown model or version"),
    "413": _error(f"body over {contract.MAX_BODY_BYTES} bytes"),
    "500": _error("the model produced a non-finite value"),
}


def _post(summary: str, request: str, ok: str, errors: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(request)}},
            },
            "responses": {"200": _json(_ref(ok), "the prediction(s)")} | errors | _COMMON,
        }
    }


def _get(summary: str, ok: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {"200": _json(_ref(ok), summary)} | (errors or {}) | _COMMON
    return {"get": {"summary": summary, "responses": responses}}


def document(
    n_features: int = 20, num_class: int = 1, model_name: str = v2.DEFAULT_MODEL_NAME
) -> dict[str, Any]:
    """The OpenAPI document for a model of ``n_features`` features and ``num_class`` classes."""
    unknown = {"404": _error("unknown model or version")}
    paths: dict[str, Any] = {
        contract.INFERENCE_PATH: _post(
            "one row", "InferenceRequest", "Prediction", _INFERENCE_ERRORS
        ),
        contract.BATCH_PATH: _post(
            "1 to 10,000 rows", "BatchRequest", "Predictions", _INFERENCE_ERRORS
        ),
        contract.HEALTH_PATH: _get("the model is loaded", "Health"),
        "/v2": _get("server metadata", "V2ServerMetadata"),
        "/v2/health/live": _get("live", "V2Live"),
        "/v2/health/ready": _get("ready", "V2Ready"),
    }
    name = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": v2.MODEL_NAME_PATTERN.pattern},
        "description": f"the served model's name ({model_name!r}); any other: 404",
    }
    version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": f"{v2.MODEL_VERSION!r}; any other: 404",
    }
    for base, params in (
        ("/v2/models/{model_name}", [name]),
        ("/v2/models/{model_name}/versions/{model_version}", [name, version]),
    ):
        paths[base] = _get("model metadata", "V2ModelMetadata", unknown)
        paths[base + "/ready"] = _get("model ready", "V2Ready", unknown)
        paths[base + "/infer"] = _post(
            "V2 inference (JSON; binary tensor data per docs/contract.md)",
            "V2InferenceRequest",
            "V2InferenceResponse",
            _V2_INFER_ERRORS,
        )
        for suffix in ("", "/ready", "/infer"):
            paths[base + suffix]["parameters"] = params
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fiber Endpoints: the contract and Open Inference Protocol V2",
            "version": v2.server_metadata("any")["version"],
            "description": (
                "Every stack serves this (docs/contract.md). Any other path answers 404 with "
                "the Error schema. Checks run in this order: path, method, body size, content "
                "type, JSON syntax, shape."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas(n_features, num_class),
            "responses": {"NotFound": _error("unknown path")},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fiber_endpoints.openapi")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--model-name", default=v2.DEFAULT_MODEL_NAME)
    args = parser.parse_args(argv)
    json.dump(document(args.features, args.classes, args.model_name), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
