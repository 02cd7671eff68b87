"""LightGBM's own C API through ctypes: ``Booster.predict`` without its per-call Python overhead.

One row goes through ``LGBM_BoosterPredictForMatSingleRowFast`` with a ``FastConfig`` prepared
once (the model's own trees and code, so the result is LightGBM's, bit for bit); a batch goes
through ``LGBM_BoosterPredictForMat`` in one call, with the thread count sized to the CPUs this
process may use. ``Booster.predict`` spends ~20 µs per call in Python (argument checks, numpy
conversions, a new result array); these calls spend ~1 µs around the trees.

A ``FastConfig`` holds per-call scratch space: one predictor per thread. The stacks that use it
call it from their event-loop thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import math
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from fiber_endpoints import cpus

if TYPE_CHECKING:
    from typing_extensions import Buffer

_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for binary/multiclass, as predict()
_ALL_ITERATIONS = -1  # what Booster.predict uses for a model file (best_iteration is 0)
_NAN = math.nan

Row = Sequence[float | None]
# Rows laid out row-major in writable float64 memory (``array('d')``, a C-contiguous float64
# numpy array): what ``predict_flat`` reads in place.
FloatBuffer: TypeAlias = "Buffer"


class LightGBMError(RuntimeError):
    """A LightGBM C API call returned an error."""


def library_path() -> str:
    """lightgbm's shared library, found without importing the ``lightgbm`` package: that import
    pulls scikit-learn, pandas and scipy when they are installed (``lightgbm.compat``), measured
    here at 4.9 s of the fast stack's 5.5 s of imports (``python -X importtime``, busy machine)
    and most of its memory, none of which serving needs. Falls back to lightgbm's own lookup."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "lib"
        for name in ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll"):
            if (folder / name).exists():
                return str(folder / name)
    import lightgbm.basic

    return str(lightgbm.basic._LIB._name)  # type: ignore[attr-defined]


def _library() -> ctypes.CDLL:
    """Our own handle on lightgbm's shared library, so our argtypes never touch lightgbm's."""
    lib = ctypes.CDLL(library_path())
    vp, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    pi64, pdouble = ctypes.POINTER(i64), ctypes.POINTER(ctypes.c_double)
    signatures: dict[str, list[object]] = {
        "LGBM_BoosterCreateFromModelfile": [
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(vp),
        ],
        "LGBM_BoosterGetNumFeature": [vp, ctypes.POINTER(ctypes.c_int)],
        "LGBM_BoosterGetNumClasses": [vp, ctypes.POINTER(ctypes.c_int)],
        "LGBM_BoosterPredictForMatSingleRowFastInit": [
            vp,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            i32,
            ctypes.c_char_p,
            ctypes.POINTER(vp),
        ],
        "LGBM_BoosterPredictForMatSingleRowFast": [vp, vp, pi64, pdouble],
        "LGBM_BoosterPredictForMat": [
            vp,
            vp,
            ctypes.c_int,
            i32,
            i32,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            pi64,
            pdouble,
        ],
        "LGBM_FastConfigFree": [vp],
        "LGBM_BoosterFree": [vp],
        "LGBM_GetLastError": [],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = ctypes.c_char_p if name == "LGBM_GetLastError" else ctypes.c_int
    return lib


def _check(lib: ctypes.CDLL, ret: int) -> None:
    if ret != 0:
        raise LightGBMError(lib.LGBM_GetLastError().decode(errors="replace"))


def flatten_rows(rows: Sequence[Row]) -> array[float]:
    """Rows as one row-major float64 buffer, ``None`` (missing) as NaN. The common case, a row
    without ``None``, is one C-level ``extend``; only a row with ``None`` takes the slow path."""
    flat = array("d")
    for row in rows:
        start = len(flat)
        try:
            flat.extend(row)  # type: ignore[arg-type]
        except TypeError:  # a None in the row; drop what was appended before it
            del flat[start:]
            flat.extend([_NAN if v is None else v for v in row])
    return flat


class CapiPredictor:
    name = "lightgbm-c-api"
    """A LightGBM text model, predicted through the C API. Results match ``Booster.predict``.

    ``predict_row`` and ``predict_rows`` take rows that the caller already checked to have
    ``num_features`` entries: the C API reads exactly that many doubles from the buffer.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self._lib = lib = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _check(
            lib,
            lib.LGBM_BoosterCreateFromModelfile(
                str(path).encode(), ctypes.byref(iterations), ctypes.byref(self._handle)
            ),
        )
        n = ctypes.c_int()
        _check(lib, lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n)))
        self.num_features: int = n.value
        _check(lib, lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(n)))
        self.num_class: int = max(1, n.value)
        self.threads = threads or cpus.usable_cpus()
        # One row is one tree walk per tree: a single thread, whatever the batch path uses.
        self._fast = ctypes.c_void_p()
        _check(
            lib,
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                _PREDICT_NORMAL,
                0,
                _ALL_ITERATIONS,
                _DTYPE_FLOAT64,
                self.num_features,
                b"num_threads=1",
                ctypes.byref(self._fast),
            ),
        )
        self._batch_params = f"num_threads={self.threads}".encode()
        # Scratch buffers reused by every single-row call (one thread uses this object).
        self._row = (ctypes.c_double * self.num_features)()
        self._out = (ctypes.c_double * self.num_class)()
        self._out_len = ctypes.c_int64()
        self._row_fast = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._row_args = (
            self._fast,
            ctypes.addressof(self._row),
            ctypes.byref(self._out_len),
            self._out,
        )

    def predict_row(self, row: Row) -> float | list[float]:
        """One row (``None`` = missing): a float, or K probabilities for a multiclass model."""
        try:
            self._row[:] = row  # type: ignore[call-overload]
        except TypeError:  # a None in the row: LightGBM's missing value is NaN
            self._row[:] = [_NAN if v is None else v for v in row]
        ret = self._row_fast(*self._row_args)
        if ret != 0:
            _check(self._lib, ret)
        if self.num_class == 1:
            return self._out[0]
        return self._out[:]

    def predict_rows(self, rows: Sequence[Row]) -> list[float] | list[list[float]]:
        """Many rows in one C call (``LGBM_BoosterPredictForMat``, row-major float64)."""
        values, k = self.predict_flat(flatten_rows(rows), len(rows)), self.num_class
        if k == 1:
            return values
        return [values[i : i + k] for i in range(0, len(values), k)]

    def predict_flat(self, flat: FloatBuffer, n_rows: int) -> list[float]:
        """``n_rows`` rows from a writable row-major float64 buffer (``array('d')``, a C-contiguous
        numpy array), NaN = missing: ``n_rows * num_class`` outputs, row after row."""
        n_features, k = self.num_features, self.num_class
        data = (ctypes.c_double * (n_rows * n_features)).from_buffer(flat)
        out = (ctypes.c_double * (n_rows * k))()
        out_len = ctypes.c_int64()
        address = ctypes.addressof(data)
        _check(
            self._lib,
            self._lib.LGBM_BoosterPredictForMat(
                self._handle,
                address,
                _DTYPE_FLOAT64,
                n_rows,
                n_features,
                1,
                _PREDICT_NORMAL,
                0,
                _ALL_ITERATIONS,
                self._batch_params,
                ctypes.byref(out_len),
                out,
            ),
        )
        values: list[float] = out[:]
        return values

    def close(self) -> None:
        if self._fast:
            self._lib.LGBM_FastConfigFree(self._fast)
            self._fast = ctypes.c_void_p()
        if self._handle:
            self._lib.LGBM_BoosterFree(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the library may be gone
            self.close()
