"""Check KServe objects (YAML files) against the kserve SDK's generated models, strictly.

Run with the Python of a venv that has `kserve` (its own venv: kserve pins protobuf, pandas and
psutil below the project's lock, see pyproject.toml's dev extra):

    python deploy/kservecheck/kserve_check.py deploy/kserve/*.yaml

Every mapping must be a model the SDK generates (V1alpha1ClusterServingRuntime, and the
kubernetes client's V1Container etc. inside it), and every key one of that model's fields
(`attribute_map`), with a value of the field's declared type (`openapi_types`); the first error of
each object is printed and the exit code is 1. Prints "KIND NAME" per good object.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import kserve
import kubernetes.client
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


def model_class(name: str) -> Any:
    for module in (kserve, kserve.models, kubernetes.client, kubernetes.client.models):
        cls = getattr(module, name, None)
        if cls is not None and hasattr(cls, "openapi_types"):
            return cls
    raise LookupError(f"no generated model {name}")


def check(value: Any, type_name: str, path: str) -> list[str]:
    if type_name == "object":
        return []
    if type_name in SCALARS:
        ok = isinstance(value, SCALARS[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: {value!r} is not {type_name}"]
    if m := re.fullmatch(r"[Ll]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [e for i, v in enumerate(value) for e in check(v, m[1], f"{path}[{i}]")]
    if m := re.fullmatch(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]", type_name):
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a mapping"]
        inner = m[2] or m[4]
        return [e for k, v in value.items() for e in check(v, inner, f"{path}.{k}")]
    cls = model_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is not a {type_name} mapping"]
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    errors = []
    for key, v in value.items():
        if key not in by_key:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
        elif v is not None:
            errors += check(v, cls.openapi_types[by_key[key]], f"{path}.{key}")
    return errors


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            kind = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
            name = (doc.get("metadata") or {}).get("name")
            if kind is None:
                print(f"{path}: {doc.get('apiVersion')} {doc.get('kind')} is not a KServe kind")
                bad += 1
                continue
            errors = check(doc, kind, doc["kind"])
            if errors:
                print(f"{path}: {doc['kind']} {name}: " + "; ".join(errors))
                bad += 1
            else:
                print(f"{doc['kind']} {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
