"""The workload: the one definition of the rows every phase sends and what LightGBM says of them.

Parity, the sequential protocol, the load lab and ``trace`` all take their rows and request bodies
from one :class:`Workload`, made once per run from the model:

- the model's golden file (``golden.json`` beside it), when there is one: its first 100 rows (the
  proof of concept's) are timed, all of them are checked;
- else the user's rows (``bench --rows FILE``, CSV or Parquet with a header): columns matched to
  the model's feature names, string categories mapped through the model's own
  ``pandas_categorical`` table, missing values kept as missing;
- else rows generated from the model itself: values around its own split thresholds, with
  missing values, so every branch direction is taken.

Without a golden file the expected predictions come from LightGBM itself, in-process, from the
model file as saved, before any stack is timed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fiber_endpoints import contract, model
from fiber_endpoints.bench import user_rows

if TYPE_CHECKING:
    from fiber_endpoints.bench.protocols import WireProtocol

TIMED_ROWS_FROM_GOLDEN = model.SEED_ROWS  # the proof of concept's 100 rows
MAX_TIMED_ROWS = 10_000
PARITY_ROWS = 256  # rows checked one by one (and as one batch) before timing
GENERATED_ROWS = 200
GENERATED_SEED = 7


class WorkloadError(ValueError):
    """The rows cannot be sent to this model (names, types, size): said before anything runs."""


def encode_body(data: Any) -> bytes:
    """The one request-body encoding of the contract: ``{"data": row}`` or ``{"data": rows}``,
    compact JSON, floats as their shortest round-trip text, a missing value (NaN) as ``null``."""
    return compact_json({"data": json_values(data)})


def compact_json(payload: Any) -> bytes:
    """JSON as every protocol's body is sent: compact, and never a NaN/Infinity token."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def json_values(data: Any) -> Any:
    """Numbers (nested lists or arrays) as JSON values: floats, and ``None`` for a missing one."""
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if isinstance(data, list | tuple):
        return [json_values(v) for v in data]
    if data is None:
        return None
    value = float(data)
    return None if math.isnan(value) else value


def _contract() -> WireProtocol:
    from fiber_endpoints.bench.protocols import Contract

    return Contract()


@dataclass(frozen=True)
class Workload:
    """Rows (NaN = missing) in the model's feature order, and LightGBM's predictions for the ones
    checked by parity."""

    source: str  # where the rows came from, for the results file
    feature_names: list[str]
    objective: str
    num_class: int
    timed_rows: np.ndarray  # what the sequential protocol, the load lab and trace send
    parity_rows: np.ndarray
    parity_expected: list[Any]  # float per row, or list[float] per row (multiclass)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @cached_property
    def golden(self) -> model.Golden:
        """The parity rows and predictions in the shape parity checks compare against."""
        return model.Golden(
            model=self.source,
            objective=self.objective,
            num_features=self.num_features,
            num_class=self.num_class,
            rows=self.parity_rows.tolist(),
            predictions=self.parity_expected,
        )

    def single_bodies(self, protocol: WireProtocol | None = None) -> list[bytes]:
        """One request per timed row, in ``protocol`` (default: the contract)."""
        proto = protocol or _contract()
        return [proto.body(self.timed_rows[i : i + 1], False) for i in range(len(self.timed_rows))]

    def max_batch_rows(self, protocol: WireProtocol | None = None) -> int:
        """The most rows one batch body can hold under the contract's body limit (and row limit),
        from the widest timed row as encoded."""
        proto = protocol or _contract()
        rows = self.timed_rows
        widest = max(len(proto.body(rows[i : i + 1], True)) for i in range(len(rows)))
        fit = (contract.MAX_BODY_BYTES - 256) // (widest + 1)
        return max(1, min(contract.MAX_BATCH_ROWS, fit))

    def batch_sizes(self, wanted: Sequence[int], protocol: WireProtocol | None = None) -> list[int]:
        """``wanted`` batch sizes, each shrunk to what fits the body limit (no duplicates)."""
        limit = self.max_batch_rows(protocol)
        return list(dict.fromkeys(min(n, limit) for n in wanted))

    def batch_bodies(
        self, size: int, variants: int | None = None, protocol: WireProtocol | None = None
    ) -> list[bytes]:
        """``variants`` batches of ``size`` rows, each starting at a different row (rotating)."""
        proto = protocol or _contract()
        rows = self.timed_rows
        n = len(rows)
        variants = min(n, variants or max(1, 20_000 // max(size, 1)))
        bodies = []
        for v in range(variants):
            body = proto.body(rows[[(v + i) % n for i in range(size)]], True)
            if len(body) > contract.MAX_BODY_BYTES:
                raise WorkloadError(
                    f"a batch of {size} rows is {len(body):,} bytes, over the contract's "
                    f"{contract.MAX_BODY_BYTES:,}-byte body limit"
                )
            bodies.append(body)
        return bodies

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "num_features": self.num_features,
            "feature_names": self.feature_names,
            "timed_rows": len(self.timed_rows),
            "parity_rows": len(self.parity_rows),
            "missing_values": int(np.isnan(self.timed_rows).sum()),
            "max_batch_rows": self.max_batch_rows(),
        }


def load(model_path: Path, rows_file: Path | None = None) -> Workload:
    """The run's workload for ``model_path`` (see the module docstring for the order)."""
    import lightgbm as lgb

    if not model_path.is_file():
        raise WorkloadError(f"{model_path}: no such model file")
    try:
        booster = lgb.Booster(model_file=str(model_path))
    except lgb.basic.LightGBMError as exc:
        raise WorkloadError(f"{model_path}: not a LightGBM text model ({exc})") from None
    names = list(booster.feature_name())
    objective = str(booster.dump_model(num_iteration=1).get("objective", "?")).split()[0]
    num_class = max(1, booster.num_model_per_iteration())
    golden_file = model.golden_path(model_path)
    if rows_file is None and golden_file.exists():
        golden = model.load_golden(model_path)
        if golden.num_features != len(names):
            raise WorkloadError(
                f"{golden_file} has {golden.num_features} features, the model {len(names)}"
            )
        rows = np.asarray(golden.rows, dtype=np.float64)
        return Workload(
            source=f"golden file {golden_file}",
            feature_names=names,
            objective=golden.objective,
            num_class=golden.num_class,
            timed_rows=rows[:TIMED_ROWS_FROM_GOLDEN],
            parity_rows=rows,
            parity_expected=golden.predictions,
        )
    if rows_file is not None:
        try:
            read = user_rows.read(
                rows_file, names, booster.pandas_categorical, categorical_features(booster)
            )
        except user_rows.RowsError as exc:
            raise WorkloadError(str(exc)) from None
        rows = read.values
        source = f"rows from {rows_file}"
        if read.unmatched:
            unseen = ", ".join(f"{n}: {k}" for n, k in read.unmatched.items())
            source += f" (values not in the model's categories, sent as missing: {unseen})"
    else:
        rows = rows_from_model(booster, GENERATED_ROWS, GENERATED_SEED)
        source = f"{GENERATED_ROWS} rows generated from the model's split thresholds"
    rows = rows[:MAX_TIMED_ROWS]
    parity_rows = rows[:PARITY_ROWS]
    return Workload(
        source=source,
        feature_names=names,
        objective=objective,
        num_class=num_class,
        timed_rows=rows,
        parity_rows=parity_rows,
        parity_expected=model.predict_reference(model_path, parity_rows),
    )


def categorical_features(booster: Any) -> list[int]:
    """Indices of the model's categorical features (``feature_infos`` lists their categories)."""
    infos = booster.dump_model(num_iteration=1).get("feature_infos", {})
    return [i for i, name in enumerate(booster.feature_name()) if infos.get(name, {}).get("values")]


def rows_from_model(booster: Any, n: int, seed: int) -> np.ndarray:
    """Rows that walk the model's own trees: each value just below or above one of that
    feature's split thresholds (a category it splits on), some missing; a feature the model
    never splits on gets a standard normal value."""
    rng = np.random.default_rng(seed)
    dump = booster.dump_model()
    n_features = booster.num_feature()
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    categories: list[set[int]] = [set() for _ in range(n_features)]

    def walk(node: dict[str, Any]) -> None:
        if "split_feature" not in node:
            return
        f = int(node["split_feature"])
        if node.get("decision_type") == "==":
            categories[f].update(int(c) for c in str(node["threshold"]).split("||") if c)
        else:
            thresholds[f].append(float(node["threshold"]))
        walk(node["left_child"])
        walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    rows = rng.standard_normal((n, n_features))
    for f in range(n_features):
        if categories[f]:
            rows[:, f] = rng.choice(sorted(categories[f]), size=n)
        elif thresholds[f]:
            t = np.asarray(thresholds[f])
            picks = rng.choice(t, size=n)
            scale = np.maximum(np.abs(picks) * 1e-3, 1e-6)
            rows[:, f] = picks + rng.choice([-1.0, 1.0], size=n) * scale
    # One row in ten has a few missing values, so default directions are taken too.
    for i in range(0, n, 10):
        rows[i, rng.choice(n_features, size=max(1, n_features // 5), replace=False)] = np.nan
    return rows
