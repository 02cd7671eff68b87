"""A user's rows (CSV or Parquet with a header) as float rows in the model's feature order, with
categories coded exactly as LightGBM codes them.

LightGBM stores one category table per pandas ``category`` column of the training frame
(``pandas_categorical``), in the frame's column order, and at prediction time pairs the i-th
``category`` column of the frame with the i-th table; a value not in its table is missing. Other
categorical features (integer columns given by ``categorical_feature``) are sent as their numbers.

- Parquet keeps dtypes (a ``category`` of strings survives it; pyarrow reads a category of
  integers back as integers): when every table has its ``category`` column, LightGBM's own rule.
- Otherwise (CSV, or numbers that lost their dtype) the tables are matched to the model's
  categorical features in order, by value, compared as text ("01" stays "01", 10 matches 10.0):
  a column fits a table when most of its distinct values are in it (the others are unseen
  categories, sent as missing and counted). When more or less than one matching is possible
  the file is refused with what to do, never guessed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class RowsError(ValueError):
    """The rows cannot be sent to this model; the message says why and what to do."""


@dataclass
class Rows:
    values: np.ndarray  # [rows, features], NaN = missing
    unmatched: dict[str, int] = field(default_factory=dict)  # category values sent as missing


def read(
    path: Path,
    feature_names: Sequence[str],
    tables: Sequence[Sequence[Any]] | None,
    categorical: Sequence[int],
) -> Rows:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".txt"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)  # typed below, per column
    else:
        raise RowsError(f"{path}: rows must be a .csv or .parquet file with a header")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    missing = [n for n in feature_names if n not in columns]
    if missing:
        raise RowsError(
            f"{path}: the model's features {missing[:10]} are not columns of the file "
            f"(columns: {columns[:10]}{' ...' if len(columns) > 10 else ''})"
        )
    frame = frame[list(feature_names)]
    if not len(frame):
        raise RowsError(f"{path}: no rows")
    owners = _table_owners(path, frame, feature_names, tables or [], categorical)
    out = np.empty((len(frame), len(feature_names)), dtype=np.float64)
    unmatched: dict[str, int] = {}
    for j, name in enumerate(feature_names):
        column = frame[name]
        if j in owners:
            codes = {str(v): float(k) for k, v in enumerate(owners[j])}
            coded = [math.nan if _missing(v) else codes.get(_text(v), math.nan) for v in column]
            unseen = sum(1 for v, c in zip(column, coded, strict=True)
                         if not _missing(v) and math.isnan(c))  # fmt: skip
            if unseen:
                unmatched[name] = unseen
            out[:, j] = coded
            continue
        numeric = pd.to_numeric(column, errors="coerce")
        bad = column.notna() & numeric.isna()
        if bad.any():
            raise RowsError(
                f"{path}: column {name!r} has non-numeric values (e.g. {column[bad].iloc[0]!r}) "
                "and the model has no category table for it"
            )
        values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise RowsError(f"{path}: column {name!r} has an infinite value (JSON cannot send it)")
        out[:, j] = values
    return Rows(out, unmatched)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    """A value as the text its category has: 10.0 read from Parquet matches 10."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _table_owners(
    path: Path,
    frame: Any,
    names: Sequence[str],
    tables: Sequence[Sequence[Any]],
    categorical: Sequence[int],
) -> dict[int, Sequence[Any]]:
    """Which feature each category table belongs to (feature index -> table)."""
    import pandas as pd

    if not tables:
        return {}
    typed = [j for j, n in enumerate(names) if isinstance(frame[n].dtype, pd.CategoricalDtype)]
    if len(typed) == len(tables):  # Parquet kept every category dtype: LightGBM's own rule
        return dict(zip(typed, tables, strict=True))
    values = {j: {_text(v) for v in frame[names[j]] if not _missing(v)} for j in categorical}

    def fits_table(j: int, table: Sequence[Any]) -> bool:
        # Most of a column's distinct values are in its table (the rest: unseen, sent missing).
        known = {str(v) for v in table}
        return 2 * len(values[j] & known) >= len(values[j]) > 0

    fits = [
        combo
        for combo in itertools.combinations(categorical, len(tables))
        if all(fits_table(j, table) for j, table in zip(combo, tables, strict=True))
    ]
    if len(fits) == 1:
        return dict(zip(fits[0], tables, strict=True))
    cols = [names[j] for j in categorical]
    why = "none of them fits" if not fits else f"{len(fits)} ways fit"
    raise RowsError(
        f"{path}: cannot tell which of the categorical columns {cols} were pandas categories in "
        f"training ({len(tables)} category tables, {why} the file's values: an integer column "
        "given as categorical and a category of numbers look alike in a file); save the rows as "
        "Parquet from the training frame's dtypes (pandas 'category' of strings survive it)"
    )
