"""A request body read into rows the slow, exact way: by feature name, and any body the fast
typed decode refused (docs/contract.md, "By feature name" and "Errors").

Both Python stacks read the positional form their own fast way (msgspec's typed decode, pydantic)
and hand this module every body that names its features, so both give the same rows and the same
first error, in the contract's order:

1. JSON syntax (400), with ``NaN``/``Infinity`` refused;
2. body an object, ``data`` present, ``data`` an array (batch) or an array or object (single);
3. in document order, the first bad item: a batch row that is neither an array nor an object, a
   row whose form is not ``data[0]``'s, a value that is not a number or ``null``, a number out of
   float64's range;
4. batch row count (at least 1, at most ``MAX_BATCH_ROWS``);
5. row by row: an array's length; an object's first duplicate name (document order), then its
   unknown names (document order) and missing names (model order), in one message.

Names are compared exactly as decoded from JSON (escapes undone, no Unicode normalisation); an
escaped lone surrogate (``"\\ud800"``) becomes U+FFFD, as Go's ``encoding/json`` decodes it, so
messages naming it agree between stacks. The Go stack's reader (``fiber/request.go``,
``fiber/names.go``) mirrors this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiber_endpoints import contract

Row = list[float | None]


@dataclass(frozen=True)
class FeatureNames:
    """The model's feature names in order, and each name's position."""

    names: tuple[str, ...]
    index: dict[str, int] = field(compare=False)

    @classmethod
    def of(cls, names: Sequence[str]) -> FeatureNames:
        return cls(tuple(names), {name: i for i, name in enumerate(names)})


def read_feature_names(model_path: Path) -> list[str]:
    """The ``feature_names=`` header line of a LightGBM text model, split as LightGBM splits it
    (on single spaces, empty parts dropped): what ``Booster.feature_name()`` returns. LightGBM
    writes ``Column_0``... for a model trained without names."""
    with open(model_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip(" \f\n\r\t\v")
            if line.startswith("feature_names="):
                return [name for name in line.split("=", 1)[1].split(" ") if name]
            if not line:  # the header ends at the first blank line
                break
    raise ValueError(f"{model_path}: no feature_names= line in the model's header")


def _name(key: str) -> str:
    if key.isascii():
        return key
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in key)


class _Object(dict[str, Any]):
    """A JSON object: a dict (the last of repeated keys wins, as ``json`` does) that keeps its
    pairs in document order, so a repeated feature name is seen."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    pairs = [(_name(k), v) for k, v in pairs]
    obj = _Object(pairs)
    obj.pairs = pairs
    return obj


def _value(field: str, value: Any) -> float | None:
    """A number or null as float64 (``None`` = missing), or the contract's 422 for it."""
    if value is None:
        return None
    if type(value) is float:
        if math.isfinite(value):
            return value
        raise contract.out_of_range(field)  # Python's json reads 1e400 as inf
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # an integer literal past float64
            raise contract.out_of_range(field) from None
    raise contract.not_a_number(field)  # str, bool, object, array


def uses_names(doc: Any, batch: bool) -> bool:
    """Whether a decoded body has a row given by name (the control's cue to read it here)."""
    if not isinstance(doc, dict):
        return False
    data = doc.get("data")
    if batch:
        return isinstance(data, list) and any(isinstance(row, dict) for row in data)
    return isinstance(data, dict)


def read(body: bytes, features: FeatureNames, batch: bool) -> list[Row]:
    """Every row in the model's order (one for a single request), or the contract's first
    error for the body, raised as :class:`ContractError`."""
    try:
        doc = contract.loads_json(body, object_pairs_hook=_object)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise contract.malformed_json() from None
    if not isinstance(doc, dict):
        raise contract.not_an_object()
    if "data" not in doc:
        raise contract.missing_data()
    data = doc["data"]
    n = len(features.names)
    if batch:
        if not isinstance(data, list):
            raise contract.not_a_batch()
        items = [(f"data[{i}]", row) for i, row in enumerate(data)]
    elif isinstance(data, list | dict):
        items = [("data", data)]
    else:
        raise contract.not_an_array("data", n)
    # 3. Items in document order.
    first_is_object = bool(data) and isinstance(data[0], dict) if batch else False
    values: list[list[tuple[str, float | None]] | Row] = []
    for name, row in items:
        if isinstance(row, _Object):
            if batch and not first_is_object:
                raise contract.mixed_rows(name, first_is_object)
            values.append([(k, _value(contract.named_field(name, k), v)) for k, v in row.pairs])
        elif isinstance(row, list):
            if batch and first_is_object:
                raise contract.mixed_rows(name, first_is_object)
            values.append([_value(f"{name}[{j}]", v) for j, v in enumerate(row)])
        else:
            raise contract.not_a_batch()
    # 4. Row count.
    if batch and not values:
        raise contract.empty_batch()
    if batch and len(values) > contract.MAX_BATCH_ROWS:
        raise contract.batch_too_large(len(values))
    # 5. Each row's length or names.
    rows: list[Row] = []
    for (name, row), got in zip(items, values, strict=True):
        if isinstance(row, _Object):
            rows.append(_by_name(name, got, features))  # type: ignore[arg-type]
        elif len(got) != n:
            raise contract.wrong_feature_count(name, n, len(got))
        else:
            rows.append(got)  # type: ignore[arg-type]
    return rows


def _by_name(field: str, pairs: list[tuple[str, float | None]], features: FeatureNames) -> Row:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise contract.duplicate_feature(field, key)
        seen.add(key)
    index = features.index
    row: Row = [None] * len(features.names)
    unknown: list[str] = []
    for key, value in pairs:
        j = index.get(key)
        if j is None:
            unknown.append(key)
        else:
            row[j] = value
    if unknown or len(pairs) - len(unknown) != len(features.names):
        missing = [name for name in features.names if name not in seen]
        raise contract.unknown_or_missing(field, unknown, missing)
    return row
