"""The workload: the one body encoding, the rows of a golden file, of a user's file (categories
through the model's own table), and rows generated from a model; batch sizes under the body
limit. Models are trained here, small, in a second or less."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from fiber_endpoints import contract, model
from fiber_endpoints.bench import workload
from fiber_endpoints.bench.workload import WorkloadError, encode_body


def train(tmp_path: Path, n_features: int, names: list[str] | None = None) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, n_features))
    y = x[:, 0] * 3 + np.sin(x[:, 1 % n_features]) + rng.normal(scale=0.1, size=500)
    data = lgb.Dataset(x, y, feature_name=names or "auto")
    params = {"objective": "regression", "verbosity": -1, "num_threads": 1}
    booster = lgb.train(params, data, num_boost_round=20)
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    return path


def test_encode_body_is_compact_json_with_null_for_missing() -> None:
    assert encode_body([1.5, math.nan, -0.0]) == b'{"data":[1.5,null,-0.0]}'
    assert encode_body(np.array([[1.0, np.nan], [2.0, 3.0]])) == b'{"data":[[1.0,null],[2.0,3.0]]}'
    x = 0.1 + 0.2  # not the shortest decimal of anything simple: must round-trip exactly
    assert json.loads(encode_body([x]))["data"][0] == x
    with pytest.raises(ValueError):
        encode_body([math.inf])  # JSON cannot carry it, and null would lie


def test_the_golden_file_gives_the_seed_rows_timed_and_every_row_checked() -> None:
    wl = workload.load(model.DEFAULT_MODEL)
    golden = model.load_golden(model.DEFAULT_MODEL)
    assert wl.source.startswith("golden file")
    assert wl.num_features == 20
    assert len(wl.timed_rows) == 100 and not np.isnan(wl.timed_rows).any()
    assert len(wl.parity_rows) == len(golden.rows) and np.isnan(wl.parity_rows).any()
    assert wl.parity_expected == golden.predictions


def test_rows_generated_from_a_model_walk_its_trees(tmp_path: Path) -> None:
    path = train(tmp_path, 8)
    wl = workload.load(path)  # no golden file beside it
    assert "generated" in wl.source and wl.num_features == 8
    assert np.isnan(wl.timed_rows).any(), "some missing values, so default directions are taken"
    booster = lgb.Booster(model_file=str(path))
    leaves = booster.predict(wl.timed_rows, pred_leaf=True)
    random_rows = np.random.default_rng(1).uniform(-100, 100, size=wl.timed_rows.shape)
    random_leaves = booster.predict(random_rows, pred_leaf=True)
    # Values at the model's own thresholds reach many more leaves than values that ignore them.
    reached = np.mean([len(set(leaves[:, t])) for t in range(20)])
    assert reached > 2 * np.mean([len(set(random_leaves[:, t])) for t in range(20)])
    assert len(wl.parity_expected) == len(wl.parity_rows)


def test_a_users_csv_is_matched_by_feature_name_not_position(tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(4)]
    path = train(tmp_path, 4, names)
    frame = pd.DataFrame({"f3": [0.5, None], "extra": ["x", "y"], "f1": [1.0, 2.0],
                          "f0": [3.0, -1.0], "f2": [0.0, 7.0]})  # fmt: skip
    rows_file = tmp_path / "rows.csv"
    frame.to_csv(rows_file, index=False)
    wl = workload.load(path, rows_file)
    assert wl.timed_rows.shape == (2, 4)
    assert wl.timed_rows[0].tolist() == [3.0, 1.0, 0.0, 0.5]
    assert math.isnan(wl.timed_rows[1, 3]), "a missing value stays missing"
    want = lgb.Booster(model_file=str(path)).predict(frame[names])
    assert wl.parity_expected == pytest.approx(want.tolist(), abs=0)


def test_parquet_rows_and_string_categories_through_the_models_own_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    colours = pd.Categorical(rng.choice(["red", "green", "blue"], size=400))
    frame = pd.DataFrame({"size": rng.normal(size=400), "colour": colours})
    y = frame["size"] + (frame["colour"] == "green") * 5.0
    booster = lgb.train({"objective": "regression", "verbosity": -1, "min_data_per_group": 5},
                        lgb.Dataset(frame, y), num_boost_round=10)  # fmt: skip
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    users = pd.DataFrame({"colour": ["green", "red", "purple"], "size": [0.1, 0.1, 0.1]})
    rows_file = tmp_path / "rows.parquet"
    users.to_parquet(rows_file)
    wl = workload.load(path, rows_file)
    # LightGBM's own pandas path on the same rows (as a category column) is the reference.
    known = ["blue", "green", "red"]  # LightGBM's table; an unseen category is missing there too
    colour = pd.Categorical(users["colour"].where(users["colour"].isin(known)), categories=known)
    typed = users.assign(colour=colour)[["size", "colour"]]
    want = lgb.Booster(model_file=str(path)).predict(typed)
    assert wl.parity_expected == pytest.approx(want.tolist(), abs=0)
    assert math.isnan(wl.timed_rows[2, 1]), "an unseen category is missing, as in LightGBM"
    assert wl.parity_expected[0] > wl.parity_expected[1] + 3  # green really went to green


def test_rows_that_cannot_feed_the_model_are_refused_by_name(tmp_path: Path) -> None:
    path = train(tmp_path, 3, ["a", "b", "c"])
    missing = tmp_path / "missing.csv"
    pd.DataFrame({"a": [1.0], "c": [2.0]}).to_csv(missing, index=False)
    with pytest.raises(WorkloadError, match=r"\['b'\]"):
        workload.load(path, missing)
    text = tmp_path / "text.csv"
    pd.DataFrame({"a": [1.0], "b": ["seven"], "c": [2.0]}).to_csv(text, index=False)
    with pytest.raises(WorkloadError, match="'b' has non-numeric values"):
        workload.load(path, text)
    with pytest.raises(WorkloadError, match=r"\.csv or \.parquet"):
        workload.load(path, tmp_path / "rows.json")


def test_batches_of_wide_rows_shrink_to_the_body_limit(tmp_path: Path) -> None:
    wl = workload.load(train(tmp_path, 200))
    limit = wl.max_batch_rows()
    assert 10 < limit < 1000, limit
    assert wl.batch_sizes([1, 10, 100, 1000]) == [1, 10, 100, limit]
    bodies = wl.batch_bodies(limit, variants=3)
    assert all(len(b) <= contract.MAX_BODY_BYTES for b in bodies)
    assert len(json.loads(bodies[0])["data"]) == limit
    with pytest.raises(WorkloadError, match="body limit"):
        wl.batch_bodies(limit * 3, variants=1)
