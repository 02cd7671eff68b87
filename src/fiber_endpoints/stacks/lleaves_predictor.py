"""The model compiled to native code by lleaves (LLVM), called through its raw entry point.

lleaves turns each tree into branches of machine code: one row of the project's 500-tree model
takes ~10 µs here against ~29 µs in LightGBM's own ``SingleRowFast`` and ~50 µs in
``Booster.predict``. It agrees with LightGBM to ~1e-12 (summation order), inside the project's
1e-9 tolerance; :func:`check_parity` proves that on every start before the predictor is used.

Compiling this model takes 20-60 s on one core, so the object file is cached by content: the
model's bytes, the lleaves and llvmlite versions and the host CPU (the code is built for its
instruction set). ``serve`` compiles once before the workers start; each worker then loads
the cached file in well under a second.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from fiber_endpoints import cpus, model, paths
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor, FloatBuffer, Row, flatten_rows

_NAN = math.nan
_MIN_ROWS_PER_THREAD = 64


def cache_dir() -> Path:
    return paths.cache_dir() / "lleaves"


def cache_path(model_path: Path, directory: Path | None = None) -> Path:
    """Where the compiled object for this model, compiler and CPU lives."""
    import llvmlite.binding as llvm

    key = hashlib.sha256(model_path.read_bytes())
    for part in (
        metadata.version("lleaves"),
        metadata.version("llvmlite"),
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    ):
        key.update(b"\0" + part.encode())
    return (directory or cache_dir()) / f"{key.hexdigest()[:32]}.o"


def _compiled_model(model_path: Path, directory: Path | None = None) -> Any:
    """A compiled ``lleaves.Model``: from the cache, or compiled now and written to it."""
    import lleaves

    compiled = lleaves.Model(model_file=str(model_path))
    cache = cache_path(model_path, directory)
    if cache.exists():
        compiled.compile(cache=str(cache))
        return compiled
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # lleaves writes it as it goes
    try:
        compiled.compile(cache=str(partial))
        os.replace(partial, cache)  # atomic: concurrent starts never load half a file
    finally:
        partial.unlink(missing_ok=True)
    return compiled


def ensure_compiled(model_path: Path, directory: Path | None = None) -> Path:
    """Compile into the cache if needed (before starting workers); returns the cache file."""
    _compiled_model(model_path, directory)
    return cache_path(model_path, directory)


class LleavesPredictor:
    name = "lleaves"
    """Same interface as :class:`CapiPredictor`: rows already checked to ``num_features``."""

    def __init__(
        self, path: Path, threads: int | None = None, directory: Path | None = None
    ) -> None:
        self._model = _compiled_model(path, directory)  # owns the code: keep it alive
        self.num_features: int = int(self._model.num_feature())
        self.num_class: int = max(1, int(self._model.num_model_per_iteration()))
        self.threads = threads or cpus.usable_cpus()
        self._entry = self._model._c_entry_func  # (double* rows, double* out, start, end)
        self._row = (ctypes.c_double * self.num_features)()
        self._out = (ctypes.c_double * self.num_class)()
        self._pool: ThreadPoolExecutor | None = None

    def predict_row(self, row: Row) -> float | list[float]:
        try:
            self._row[:] = row  # type: ignore[call-overload]
        except TypeError:  # a None in the row: missing is NaN
            self._row[:] = [_NAN if v is None else v for v in row]
        self._entry(self._row, self._out, 0, 1)
        if self.num_class == 1:
            return self._out[0]
        return self._out[:]

    def predict_rows(self, rows: Sequence[Row]) -> list[float] | list[list[float]]:
        values, k = self.predict_flat(flatten_rows(rows), len(rows)), self.num_class
        if k == 1:
            return values
        return [values[i : i + k] for i in range(0, len(values), k)]

    def predict_flat(self, flat: FloatBuffer, n_rows: int) -> list[float]:
        """As :meth:`CapiPredictor.predict_flat`: ``n_rows * num_class`` outputs, row-major."""
        k = self.num_class
        data = (ctypes.c_double * (n_rows * self.num_features)).from_buffer(flat)
        out = (ctypes.c_double * (n_rows * k))()
        parts = min(self.threads, n_rows // _MIN_ROWS_PER_THREAD)
        if parts <= 1:
            self._entry(data, out, 0, n_rows)
        else:  # the entry point releases the GIL: row ranges run in parallel
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lleaves")
            step = math.ceil(n_rows / parts)
            ranges = [(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]
            list(self._pool.map(lambda r: self._entry(data, out, r[0], r[1]), ranges))
        values: list[float] = out[:]
        return values

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def check_parity(
    candidate: LleavesPredictor | CapiPredictor,
    reference: CapiPredictor,
    rows: int = 256,
    seed: int = 0,
) -> list[str]:
    """Mismatches (empty = none) between a predictor and LightGBM's own C API on random rows
    with missing values, one by one and batched, within the project's parity tolerance."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=(rows, reference.num_features))
    x[rng.random(x.shape) < 0.1] = np.nan
    data: list[list[float | None]] = [[None if math.isnan(v) else v for v in r] for r in x]
    want = reference.predict_rows(data)
    errors = []
    for label, got in (
        ("batch", candidate.predict_rows(data)),
        ("single", [candidate.predict_row(r) for r in data]),
    ):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            gs, ws = (g if isinstance(g, list) else [g]), (w if isinstance(w, list) else [w])
            if not all(model.within_tolerance(a, b) for a, b in zip(gs, ws, strict=True)):
                errors.append(f"{label} row {i}: got {g!r}, LightGBM says {w!r}")
                break
    return errors
