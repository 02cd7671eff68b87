"""A user's model and rows through ``bench``'s phases (parity, sequential, load), for each kind
of LightGBM model a user may bring: wide (200 features), categorical (string categories in the
rows file, mapped through the model's own table), multiclass and lambdarank. Models are trained
here; a stack that cannot compute a model exactly must be reported not eligible, never timed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from fiber_endpoints import api, stacks

pytestmark = pytest.mark.slow

TINY_LOAD = api.LoadConfig(
    connections=(4,),
    rate_fractions=(0.5,),
    batch_sizes=(1, 1000),
    rounds=1,
    duration_s=0.4,
    warmup_s=0.1,
    open_duration_s=0.4,
    open_warmup_s=0.1,
    batch_duration_s=0.4,
    batch_warmup_s=0.1,
    slo_ms=1000.0,
    ceiling=False,
)
RNG = np.random.default_rng(10)


def wide(folder: Path) -> tuple[Path, Path]:
    names = [f"f{i:03d}" for i in range(200)]
    x = pd.DataFrame(RNG.normal(size=(3000, 200)), columns=names)
    booster = lgb.train({"objective": "regression", "verbosity": -1},
                        lgb.Dataset(x, x["f000"] - x["f199"]), 30)  # fmt: skip
    rows = x.sample(300, random_state=1).mask(RNG.random((300, 200)) < 0.02)
    return save(folder, booster, rows)


def categorical(folder: Path) -> tuple[Path, Path]:
    city = pd.Categorical(RNG.choice(["paris", "lyon", "nice", "lille"], size=3000))
    x = pd.DataFrame({"age": RNG.normal(40, 10, 3000), "city": city})
    y = x["age"] / 10 + (x["city"] == "nice") * 3
    booster = lgb.train({"objective": "regression", "verbosity": -1, "min_data_per_group": 5},
                        lgb.Dataset(x, y), 30)  # fmt: skip
    rows = pd.DataFrame({"city": ["nice", "paris", "brest", None] * 25, "age": [30.0] * 100})
    return save(folder, booster, rows)


def multiclass(folder: Path) -> tuple[Path, Path]:
    x = pd.DataFrame(RNG.normal(size=(3000, 6)), columns=[f"x{i}" for i in range(6)])
    y = np.digitize(x["x0"] + x["x1"], [-0.5, 0.5])
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbosity": -1},
                        lgb.Dataset(x, y), 20)  # fmt: skip
    return save(folder, booster, x.head(200))


def lambdarank(folder: Path) -> tuple[Path, Path]:
    x = pd.DataFrame(RNG.normal(size=(2000, 5)), columns=[f"q{i}" for i in range(5)])
    y = np.clip((x["q0"] * 2).round(), 0, 3).astype(int)
    data = lgb.Dataset(x, y, group=[20] * 100)
    booster = lgb.train({"objective": "lambdarank", "verbosity": -1}, data, 20)
    return save(folder, booster, x.head(200))


def save(folder: Path, booster: lgb.Booster, rows: pd.DataFrame) -> tuple[Path, Path]:
    folder.mkdir()
    booster.save_model(str(folder / "model.txt"))
    rows.to_csv(folder / "rows.csv", index=False)
    return folder / "model.txt", folder / "rows.csv"


CASES: dict[str, tuple[Callable[[Path], tuple[Path, Path]], set[str]]] = {
    # name: (how to make it, stacks that must refuse it)
    "200-features": (wide, set()),
    "categorical": (categorical, {"fiber"}),  # leaves routes missing categories differently
    "multiclass": (multiclass, set()),
    "lambdarank": (lambdarank, {"fiber"}),  # the Go stack serves regression/binary/multiclass
}


@pytest.mark.parametrize("case", list(CASES))
def test_your_model_and_rows_through_every_phase(case: str, tmp_path: Path) -> None:
    make, refused = CASES[case]
    model_path, rows_path = make(tmp_path / case)
    run = api.bench(model=model_path, rows=rows_path, samples=2, calls=10, warmup_calls=10,
                    load=TINY_LOAD, out=tmp_path / "out")  # fmt: skip
    assert run.ok, run.problems
    assert run.doc["workload"]["source"].startswith(f"rows from {rows_path.resolve()}")
    for name, record in run.doc["stacks"].items():
        if name in refused:
            assert record.get("not_eligible"), f"{name} should refuse {case}"
            assert name not in run.doc["sequential"]["stacks"]
        else:
            assert record["parity"]["ok"], record["parity"]["errors"]
            assert record["parity"]["checked_rows"] == min(256, len(pd.read_csv(rows_path)))
    timed = set(stacks.STACKS) - refused
    assert {r["stack"] for r in run.doc["load"]["runs"]} == timed
    for load_run in run.doc["load"]["runs"]:
        assert load_run["error"] is None, load_run["error"]
        for step in load_run["closed"] + load_run["open"] + load_run["batch"]:
            assert step["non2xx"] == 0 and step["errors"] == 0 and step["requests"] > 0
    if case == "200-features":
        # 1,000 rows of 200 features do not fit the 1 MiB body limit: the batch shrank.
        sizes = run.doc["load"]["config"]["batch_sizes"]
        assert sizes[0] == 1 and 100 < sizes[1] < 1000
