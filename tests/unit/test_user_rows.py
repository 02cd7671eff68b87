"""A user's rows with categories, coded as LightGBM codes them: the reference is always LightGBM's
own prediction on the typed pandas frame, never this code's answer."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from fiber_endpoints.bench import workload
from fiber_endpoints.bench.workload import WorkloadError

RNG = np.random.default_rng(4)
N = 2000


def mixed_model(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """An integer column given as categorical by name, a pandas category of numbers, a pandas
    category of strings that look like numbers, and one of words."""
    frame = pd.DataFrame({
        "size": RNG.normal(size=N),
        "store": RNG.integers(0, 5, N),
        "region": pd.Categorical(RNG.choice([10, 20, 30], N)),
        "zone": pd.Categorical(RNG.choice(["01", "02", "10"], N)),
        "colour": pd.Categorical(RNG.choice(["red", "green"], N)),
    })  # fmt: skip
    y = (frame["size"] + frame["store"] * 0.7 + (frame["region"] == 20) * 2
         + (frame["zone"] == "02") * 3 + (frame["colour"] == "green") * 1.5)  # fmt: skip
    data = lgb.Dataset(frame, y, categorical_feature=["store", "region", "zone", "colour"])
    booster = lgb.train({"objective": "regression", "verbosity": -1, "min_data_per_group": 5,
                         "cat_smooth": 1}, data, 30)  # fmt: skip
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    return path, frame


def users_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame.sample(60, random_state=2).reset_index(drop=True)
    rows.loc[0, "colour"] = None  # missing
    return rows


def reference(path: Path, rows: pd.DataFrame) -> list[float]:
    return list(lgb.Booster(model_file=str(path)).predict(rows))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_mixed_categories_predict_as_lightgbm_predicts_the_typed_frame(
    tmp_path: Path, suffix: str
) -> None:
    path, frame = mixed_model(tmp_path)
    rows = users_rows(frame)
    rows_file = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        rows[list(reversed(rows.columns))].to_csv(rows_file, index=False)  # order must not matter
    else:
        rows.to_parquet(rows_file)
    wl = workload.load(path, rows_file)
    assert wl.parity_expected == pytest.approx(reference(path, rows), abs=1e-12)
    assert np.isnan(wl.timed_rows[0, 4])  # the missing colour
    assert set(wl.timed_rows[:, 1]) <= {0.0, 1.0, 2.0, 3.0, 4.0}  # store sent as its numbers


def test_an_unseen_category_is_missing_and_counted(tmp_path: Path) -> None:
    path, frame = mixed_model(tmp_path)
    rows = users_rows(frame)
    rows["colour"] = rows["colour"].astype(object)
    rows.loc[1, "colour"] = "purple"
    rows_file = tmp_path / "rows.csv"
    rows.to_csv(rows_file, index=False)
    wl = workload.load(path, rows_file)
    typed = rows.astype({"colour": object}).replace({"colour": {"purple": None}})
    typed["colour"] = pd.Categorical(typed["colour"], categories=["green", "red"])
    assert wl.parity_expected == pytest.approx(reference(path, typed), abs=1e-12)
    assert "colour: 1" in wl.source


def test_a_file_that_cannot_be_matched_unambiguously_is_refused(tmp_path: Path) -> None:
    """An integer column given as categorical and a category of numbers with the same values:
    a file cannot say which was the pandas category, so nothing is guessed."""
    frame = pd.DataFrame(
        {"a": RNG.integers(0, 3, N), "b": pd.Categorical(RNG.choice([0, 1, 2], N))}
    )
    data = lgb.Dataset(frame, frame["a"] + frame["b"].astype(int), categorical_feature=["a", "b"])
    path = tmp_path / "model.txt"
    lgb.train({"objective": "regression", "verbosity": -1}, data, 5).save_model(str(path))
    for name in ("rows.csv", "rows.parquet"):  # pyarrow reads a category of ints back as ints
        rows_file = tmp_path / name
        if name.endswith(".csv"):
            frame.head(20).to_csv(rows_file, index=False)
        else:
            frame.head(20).to_parquet(rows_file)
        with pytest.raises(WorkloadError, match=r"\['a', 'b'\] were pandas categories"):
            workload.load(path, rows_file)


def test_an_infinite_value_is_refused_by_name(tmp_path: Path) -> None:
    x = pd.DataFrame({"a": RNG.normal(size=300), "b": RNG.normal(size=300)})
    path = tmp_path / "model.txt"
    lgb.train({"objective": "regression", "verbosity": -1}, lgb.Dataset(x, x["a"]), 3).save_model(
        str(path)
    )
    rows_file = tmp_path / "rows.csv"
    rows_file.write_text("a,b\n1,inf\n")
    with pytest.raises(WorkloadError, match="'b' has an infinite value"):
        workload.load(path, rows_file)
