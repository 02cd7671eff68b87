"""The model: training the proof of concept's LightGBM model, the seed rows, and golden fixtures.

A golden fixture is a JSON file beside its model (``golden.json`` next to ``model.txt``) holding
input rows and LightGBM's own predictions for them. Every stack is checked against it (pytest,
``go test`` and ``bench``) before anything is timed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fiber_endpoints.paths import PROJECT_ROOT

if TYPE_CHECKING:  # numpy is imported where rows are made: the fast stack's image has none
    import numpy as np

MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_MODEL = MODELS_DIR / "regression" / "model.txt"
MODEL_ENV = "FIBER_ENDPOINTS_MODEL"  # the model every stack and command uses when not given


def default_model() -> Path:
    return Path(os.environ.get(MODEL_ENV, DEFAULT_MODEL))


Objective = Literal["regression", "binary", "multiclass"]

# The proof of concept's training set and its 100 benchmark rows.
SEED_TRAIN_SAMPLES = 5_000_000
SEED_FEATURES = 20
SEED_INFORMATIVE = 15
SEED_NOISE = 0.1
SEED_RANDOM_STATE = 5
SEED_TREES = 500
SEED_ROWS = 100

# Parity tolerance: absolute below 1, relative above (the "1e-9, absolute or relative").
PARITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Golden:
    """Input rows (NaN = missing) and LightGBM's predictions for them."""

    model: str
    objective: str
    num_features: int
    num_class: int
    rows: list[list[float]]
    predictions: list[Any]  # float per row, or list[float] per row for multiclass

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "objective": self.objective,
            "num_features": self.num_features,
            "num_class": self.num_class,
            "rows": [[None if math.isnan(v) else v for v in row] for row in self.rows],
            "predictions": self.predictions,
        }


def golden_path(model_path: Path) -> Path:
    return model_path.with_name("golden.json")


def load_golden(model_path: Path) -> Golden:
    raw = json.loads(golden_path(model_path).read_text())
    rows = [[math.nan if v is None else float(v) for v in row] for row in raw["rows"]]
    return Golden(
        model=raw["model"],
        objective=raw["objective"],
        num_features=int(raw["num_features"]),
        num_class=int(raw["num_class"]),
        rows=rows,
        predictions=raw["predictions"],
    )


def seed_rows(n_features: int = SEED_FEATURES) -> np.ndarray:
    """The proof of concept's 100 benchmark rows: ``make_regression(n_samples=100, ...)``."""
    import numpy as np
    from sklearn.datasets import make_regression

    x, _ = make_regression(
        n_samples=SEED_ROWS,
        n_features=n_features,
        n_informative=min(SEED_INFORMATIVE, n_features),
        noise=SEED_NOISE,
        random_state=SEED_RANDOM_STATE,
    )
    return np.asarray(x, dtype=np.float64)


def golden_rows(n_features: int, seed: int) -> np.ndarray:
    """Seed rows plus rows that exercise missing values, zeros and large magnitudes."""
    import numpy as np

    base = seed_rows(n_features)
    rng = np.random.default_rng(seed)
    with_nan = base[:20].copy()
    for i, row in enumerate(with_nan):
        # One to all features missing, at different places, so every default-direction is used.
        k = 1 + (i * n_features) // 20
        row[rng.choice(n_features, size=min(k, n_features), replace=False)] = np.nan
    extremes = np.vstack(
        [
            np.zeros(n_features),
            np.full(n_features, 1e6),
            np.full(n_features, -1e6),
            rng.normal(scale=10.0, size=(5, n_features)),
        ]
    )
    return np.vstack([base, with_nan, extremes])


def make_training_data(
    objective: Objective, samples: int, n_features: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np
    from sklearn.datasets import make_classification, make_regression

    if objective == "regression":
        x, y = make_regression(
            n_samples=samples,
            n_features=n_features,
            n_informative=min(SEED_INFORMATIVE, n_features),
            noise=SEED_NOISE,
            random_state=seed,
        )
    else:
        x, y = make_classification(
            n_samples=samples,
            n_features=n_features,
            n_informative=min(SEED_INFORMATIVE, n_features),
            n_classes=2 if objective == "binary" else 3,
            random_state=seed,
        )
    return np.asarray(x), np.asarray(y)


def predict_reference(model_path: Path, rows: np.ndarray) -> list[Any]:
    """LightGBM's own predictions, from the model file as saved (what every stack loads)."""
    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_file=str(model_path))
    out = np.asarray(booster.predict(rows, num_threads=1))
    return [[float(v) for v in r] for r in out] if out.ndim == 2 else [float(v) for v in out]


def write_golden(model_path: Path, objective: str, seed: int) -> Golden:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(model_path))
    n_features = booster.num_feature()
    rows = golden_rows(n_features, seed)
    golden = Golden(
        model=model_path.name,
        objective=objective,
        num_features=n_features,
        num_class=max(1, booster.num_model_per_iteration()),
        rows=rows.tolist(),
        predictions=predict_reference(model_path, rows),
    )
    golden_path(model_path).write_text(json.dumps(golden.to_json(), indent=1) + "\n")
    return golden


def train(
    output: Path,
    objective: Objective = "regression",
    samples: int = SEED_TRAIN_SAMPLES,
    trees: int = SEED_TREES,
    n_features: int = SEED_FEATURES,
    seed: int = SEED_RANDOM_STATE,
    threads: int = 0,
    progress: bool = True,
) -> Golden:
    """Train the proof of concept's model (defaults) and write ``model.txt`` + ``golden.json``.

    Default LightGBM parameters as in the proof of concept; ``deterministic`` and col-wise
    histograms only make reruns byte-identical for the same thread count.
    """
    import lightgbm as lgb
    from rich.progress import Progress

    x, y = make_training_data(objective, samples, n_features, seed)
    params: dict[str, Any] = {
        "objective": objective,
        "n_estimators": trees,
        "random_state": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }
    if threads:
        params["n_jobs"] = threads
    estimator_cls = lgb.LGBMRegressor if objective == "regression" else lgb.LGBMClassifier
    estimator = estimator_cls(**params)
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task(f"training {objective}: {samples:,} rows", total=trees)

        def on_iteration(env: Any) -> None:
            bar.update(task, completed=env.iteration + 1)

        estimator.fit(x, y, callbacks=[on_iteration])
    output.parent.mkdir(parents=True, exist_ok=True)
    estimator.booster_.save_model(str(output))
    return write_golden(output, objective, seed)


def within_tolerance(got: float, want: float, tol: float = PARITY_TOLERANCE) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= tol * max(1.0, abs(want))


def parity_errors(got: Sequence[Any], golden: Golden, limit: int = 5) -> list[str]:
    """Human-readable mismatches between a stack's predictions and the golden ones (empty = ok)."""
    if len(got) != len(golden.predictions):
        return [f"expected {len(golden.predictions)} predictions, got {len(got)}"]
    errors: list[str] = []
    for i, (g, w) in enumerate(zip(got, golden.predictions, strict=True)):
        gs = g if isinstance(g, list) else [g]
        ws = w if isinstance(w, list) else [w]
        if len(gs) != len(ws) or not all(
            isinstance(a, int | float) and within_tolerance(float(a), float(b))
            for a, b in zip(gs, ws, strict=False)
        ):
            errors.append(f"row {i}: got {g!r}, LightGBM says {w!r}")
            if len(errors) >= limit:
                break
    return errors
