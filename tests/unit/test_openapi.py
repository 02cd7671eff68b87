"""The shipped OpenAPI document is the one the code builds, and its schemas are valid."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from fiber_endpoints import contract, openapi

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_shipped_document_is_current() -> None:
    # Regenerate: python -m fiber_endpoints.openapi > docs/openapi.json
    assert json.loads(DOC.read_text()) == openapi.document()


def test_schemas_are_json_schema_2020_12() -> None:
    for schema in openapi.document(8, 3)["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_operation_documents_the_limits_and_405() -> None:
    doc = openapi.document()
    for path, item in doc["paths"].items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            assert {"200", "405", "408", "431", "503"} <= set(op["responses"]), path
    inference = doc["paths"][contract.INFERENCE_PATH]["post"]["responses"]
    assert {"400", "413", "422", "500"} <= set(inference)


def test_multiclass_prediction_is_an_array_of_k() -> None:
    schema = openapi.document(8, 3)["components"]["schemas"]["Prediction"]
    jsonschema.validate({"prediction": [0.1, 0.2, 0.7]}, schema)
    try:
        jsonschema.validate({"prediction": 0.5}, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("a number passed as a 3-class prediction")
