"""lleaves against TL2cgen as the fast stack's compiled predictor: speed, parity, build cost.

Issue 14: lleaves 1.3.0 needs llvmlite < 0.45 (and so Python 3.10-3.13); TL2cgen (Treelite's
code generator, C source compiled by gcc) is the candidate to replace it. This script builds the
project's models with both, then measures in process, one thread:

- per row: one row per call, called the cheapest way each allows (lleaves: the project's
  ``LleavesPredictor.predict_row``; TL2cgen: its own ``Predictor``/``DMatrix`` API, and the
  generated ``predict(union Entry*, int, double*)`` called directly through ctypes), and batches
  of 16 and 64 rows per call (what the stack's dynamic batching sends; lleaves:
  ``predict_rows``; TL2cgen: ``Predictor.predict``, and a 20-line C loop over the generated
  ``predict``, built here, behind the same ``predict_rows`` interface);
- compile time, artefact size, start-up (``dlopen`` of the artefact and the first prediction, in
  a fresh process);
- parity against ``lightgbm.Booster.predict`` on the three golden models (NaN rows included),
  the project's own start-up check (``lleaves_predictor.check_parity``), and the rows TL2cgen
  cannot tell from a missing value (a float64 whose low 32 bits are all ones: the generated
  code's ``union Entry`` marks "missing" by writing -1 into the low half of the double).

Timed rows: the bench's (``bench.workload.load(model).timed_rows``, the golden file's first 100
rows), rotated so no branch predictor learns one row; variants interleave round by round.

Run it with a scratch environment, not the project's (TL2cgen is not a project dependency)::

    .venv/bin/uv venv /tmp/tl2cgen-venv --python 3.11
    .venv/bin/uv pip install --python /tmp/tl2cgen-venv/bin/python tl2cgen==1.0.0 treelite \\
        lightgbm numpy lleaves==1.3.0 llvmlite==0.44.0
    taskset -c 1 /tmp/tl2cgen-venv/bin/python scripts/predictor_candidates.py

It imports ``fiber_endpoints`` from ``src/`` (lleaves' artefacts come from the project's cache,
compiled there if missing); gcc must be on the PATH. Results: ``docs/fast-python.md``
("Predictor: lleaves or TL2cgen"); the raw numbers go to ``--out`` (``results.json``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from fiber_endpoints import model  # noqa: E402
from fiber_endpoints.bench import workload  # noqa: E402
from fiber_endpoints.stacks import lleaves_predictor  # noqa: E402
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor, flatten_rows  # noqa: E402

MODELS = {name: model.MODELS_DIR / name / "model.txt" for name in ("regression", "binary",
                                                                  "multiclass")}  # fmt: skip
BATCHES = (1, 16, 64)
CALLS = {1: 2000, 16: 250, 64: 80}  # calls per variant per round
FRESH_ROWS = 160_000  # > every round's rows put together: no row comes back

# A loop over the generated predict(): NaN -> missing, output zeroed (predict() adds into it).
# Model-independent: the generated function comes in as a pointer.
LOOP_C = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
union Entry { int missing; double fvalue; int qvalue; };
typedef void (*predict_fn)(union Entry*, int, double*);
void predict_rows(predict_fn predict, const double* rows, int32_t n, int32_t nf, int32_t nout,
                  double* out) {
  union Entry inst[nf];
  memset(out, 0, sizeof(double) * (size_t)n * (size_t)nout);
  for (int32_t i = 0; i < n; ++i) {
    const double* row = rows + (size_t)i * nf;
    for (int32_t j = 0; j < nf; ++j) {
      if (isnan(row[j])) inst[j].missing = -1; else inst[j].fvalue = row[j];
    }
    predict(inst, 0, out + (size_t)i * nout);
  }
}
"""

# A NaN whose low 32 bits are all ones: what the generated code reads as "missing".
MISSING = struct.unpack("<d", struct.pack("<Q", 0x7FF80000FFFFFFFF))[0]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


class Tl2cgenDirect:
    """The generated library called without TL2cgen's runtime: ``predict`` through ctypes for
    one row, :data:`LOOP_C` for a batch. Same interface as ``LleavesPredictor``."""

    def __init__(self, lib: Path, loop: ctypes.CDLL) -> None:
        self._lib = ctypes.CDLL(str(lib))
        self.num_features = self._lib.get_num_feature()
        classes = ctypes.c_int32()
        self._lib.get_num_class(ctypes.byref(classes))
        self.num_class = classes.value
        self._predict = self._lib.predict
        self._predict.restype = None
        self._predict.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self._ptr = ctypes.cast(self._predict, ctypes.c_void_p)
        self._loop = loop.predict_rows
        self._loop.restype = None
        self._row = (ctypes.c_double * self.num_features)()
        self._out = (ctypes.c_double * self.num_class)()
        self._zero = [0.0] * self.num_class

    def predict_row(self, row: Sequence[float | None]) -> float | list[float]:
        # Rows come as the stack's decoder gives them: floats, None for missing (a NaN token is
        # refused before this). A NaN float here would be read as a value, not as missing.
        try:
            self._row[:] = row  # type: ignore[call-overload]
        except TypeError:  # a None in the row: the generated code's "missing"
            self._row[:] = [MISSING if v is None else v for v in row]
        self._out[:] = self._zero
        self._predict(self._row, 0, self._out)
        return self._out[0] if self.num_class == 1 else self._out[:]

    def predict_rows(self, rows: Sequence[Sequence[float | None]]) -> list[Any]:
        n, k = len(rows), self.num_class
        flat = flatten_rows(rows)
        data = (ctypes.c_double * len(flat)).from_buffer(flat)
        out = (ctypes.c_double * (n * k))()
        self._loop(self._ptr, data, ctypes.c_int32(n), ctypes.c_int32(self.num_features),
                   ctypes.c_int32(k), out)  # fmt: skip
        values: list[float] = out[:]
        return values if k == 1 else [values[i : i + k] for i in range(0, n * k, k)]


class Tl2cgenApi:
    """TL2cgen's own runtime: ``tl2cgen.Predictor`` over a ``DMatrix`` (numpy, NaN missing)."""

    def __init__(self, lib: Path) -> None:
        import tl2cgen

        self._tl2cgen = tl2cgen
        self._predictor = tl2cgen.Predictor(str(lib), nthread=1)
        self.num_class = int(np.prod(self._predictor.num_class))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = self._predictor.predict(self._tl2cgen.DMatrix(x, missing=np.nan))
        return np.asarray(out).reshape(len(x), self.num_class)

    def predict_row(self, row: Sequence[float | None]) -> float | list[float]:
        out = self._predict(np.array([row], dtype=np.float64))[0]
        return float(out[0]) if self.num_class == 1 else out.tolist()

    def predict_rows(self, rows: Sequence[Sequence[float | None]]) -> list[Any]:
        out = self._predict(np.array(rows, dtype=np.float64))
        return out[:, 0].tolist() if self.num_class == 1 else out.tolist()


def build_tl2cgen(model_path: Path, lib: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Treelite import + C generation + gcc (``export_lib``, its flags: -O3 -fPIC -std=c99),
    one compiler process at a time; wall time and sizes."""
    import tl2cgen
    import treelite

    started = time.perf_counter()
    tree_model = treelite.frontend.load_lightgbm_model(str(model_path))
    if "annotate_in" in params:  # branch frequencies from rows like the training set's
        annotated = lib.with_suffix(".annotation.json")
        rng = np.random.default_rng(1)
        x = rng.normal(size=(20_000, tree_model.num_feature))
        tl2cgen.annotate_branch(tree_model, tl2cgen.DMatrix(x), annotated, nthread=1)
        params = {**params, "annotate_in": str(annotated)}
    tl2cgen.export_lib(tree_model, toolchain="gcc", libpath=str(lib), params=params, nthread=1)
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        tl2cgen.generate_c_code(tree_model, dirpath=tmp, params=params)
        source = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {"compile_s": seconds, "so_bytes": lib.stat().st_size, "source_bytes": source,
            "params": params}  # fmt: skip


def build_lleaves(model_path: Path, directory: Path) -> dict[str, Any]:
    """lleaves from nothing, as ``fiber-endpoints compile`` does it (parse, LLVM, object,
    ``cc -shared``), without the parity check; wall time and sizes."""
    started = time.perf_counter()
    predictor = lleaves_predictor.LleavesPredictor(model_path, threads=1, directory=directory)
    seconds = time.perf_counter() - started
    predictor.close()
    obj = lleaves_predictor.cache_path(model_path, directory)
    return {"compile_s": seconds, "so_bytes": obj.with_suffix(".so").stat().st_size,
            "object_bytes": obj.stat().st_size}  # fmt: skip


STARTUP = r"""
import ctypes, json, sys, time
t0 = time.perf_counter()
lib = ctypes.CDLL(sys.argv[1])
t1 = time.perf_counter()
row = (ctypes.c_double * 20)(*[0.5] * 20)
out = (ctypes.c_double * 1)()
if sys.argv[2] == "lleaves":
    lib.forest_root(row, out, ctypes.c_int32(0), ctypes.c_int32(1))
else:
    lib.predict(row, ctypes.c_int(0), out)
t2 = time.perf_counter()
print(json.dumps({"dlopen_ms": (t1 - t0) * 1e3, "first_ms": (t2 - t1) * 1e3}))
"""


def startup(so: Path, kind: str, repeats: int = 7) -> dict[str, float]:
    """A fresh interpreter's ``dlopen`` of the artefact and its first prediction (ms), medians."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", STARTUP, str(so), kind],
                                      check=True, capture_output=True, text=True).stdout)
            for _ in range(repeats)]  # fmt: skip
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def timed(fn: Callable[[int], object], calls: int, samples: list[int], offset: int = 0) -> None:
    for i in range(offset, offset + calls):
        t = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - t)


def speed(
    variants: dict[str, Any], rows: np.ndarray, rounds: int, disjoint: bool = False
) -> dict[str, dict[int, dict[str, float]]]:
    """Median µs per call and per row, per variant and batch size; variants interleaved. Call i
    takes row i mod len(rows), counting on across rounds; batch i starts at row i (as the
    bench's batch bodies rotate), or at row i * size when ``disjoint``."""
    as_lists = [[None if math.isnan(v) else float(v) for v in r] for r in rows]
    n = len(as_lists)
    batches = {
        b: [[as_lists[(s * (b if disjoint else 1) + i) % n] for i in range(b)]
            for s in range(min(n, CALLS[b] * rounds) if disjoint else n)]
        for b in BATCHES[1:]
    }  # fmt: skip
    fns: dict[tuple[str, int], Callable[[int], object]] = {}
    for name, p in variants.items():
        fns[(name, 1)] = lambda i, p=p: p.predict_row(as_lists[i % n])
        for b, bs in batches.items():
            fns[(name, b)] = lambda i, p=p, bs=bs: p.predict_rows(bs[i % len(bs)])
    for key, fn in fns.items():  # warm-up
        timed(fn, CALLS[key[1]] // 4, [])
    samples: dict[tuple[str, int], list[int]] = {k: [] for k in fns}
    round_medians: dict[tuple[str, int], list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for key in order:
            chunk: list[int] = []
            timed(fns[key], CALLS[key[1]], chunk, r * CALLS[key[1]])
            samples[key] += chunk
            round_medians[key].append(statistics.median(chunk) / 1e3)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for (name, b), s in samples.items():
        per_call = statistics.median(s) / 1e3
        out.setdefault(name, {})[b] = {
            "call_us": per_call,
            "row_us": per_call / b,
            "round_min_us": min(round_medians[(name, b)]),
            "round_max_us": max(round_medians[(name, b)]),
            "calls": len(s),
        }
    return out


def max_abs(got: Sequence[Any], want: Sequence[Any]) -> tuple[float, bool]:
    g = np.asarray(got, dtype=np.float64).ravel()
    w = np.asarray(want, dtype=np.float64).ravel()
    ok = all(model.within_tolerance(float(a), float(b)) for a, b in zip(g, w, strict=True))
    return float(np.max(np.abs(g - w))), ok


def parity(name: str, path: Path, lib: Path, loop: ctypes.CDLL) -> dict[str, Any]:
    """Each candidate, single and batched, against ``Booster.predict`` on the golden rows; and
    the project's own start-up check (256 random rows, 10 % missing, vs the C API)."""
    import lightgbm as lgb

    golden = model.load_golden(path)
    x = np.asarray(golden.rows, dtype=np.float64)
    want = np.asarray(lgb.Booster(model_file=str(path)).predict(x, num_threads=1))
    rows = [[None if math.isnan(v) else v for v in r] for r in x]
    result: dict[str, Any] = {
        "rows": len(rows),
        "rows_with_nan": int(np.isnan(x).any(axis=1).sum()),
        "golden_file_vs_booster": max_abs(golden.predictions, want)[0],
    }
    reference = CapiPredictor(path, threads=1)
    candidates = {
        "lleaves": lleaves_predictor.LleavesPredictor(path, threads=1, check=True),
        "tl2cgen Predictor API": Tl2cgenApi(lib),
        "tl2cgen direct": Tl2cgenDirect(lib, loop),
    }
    for label, p in candidates.items():
        single = max_abs([p.predict_row(r) for r in rows], want)
        batch = max_abs(p.predict_rows(rows), want)
        errors = lleaves_predictor.check_parity(p, reference)
        result[label] = {"single_max_abs": single[0], "single_ok": single[1],
                         "batch_max_abs": batch[0], "batch_ok": batch[1],
                         "startup_check_errors": errors[:2]}  # fmt: skip
    reference.close()
    print(name, json.dumps(result), flush=True)
    return result


def low_word_hazard(path: Path, lib: Path, loop: ctypes.CDLL, rows: np.ndarray) -> dict[str, Any]:
    """Every (timed row, feature) with that feature's low 32 bits set to ones (a change of
    ~1e-9 relative, a valid finite double): how many predictions then differ from LightGBM's
    beyond the tolerance, per candidate."""
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(path))
    changed = []
    for r in rows:
        for j in range(len(r)):
            x = r.copy()
            bits = struct.unpack("<Q", struct.pack("<d", float(x[j])))[0] | 0xFFFFFFFF
            x[j] = struct.unpack("<d", struct.pack("<Q", bits))[0]
            changed.append(x)
    x = np.asarray(changed)
    assert np.isfinite(x).all()
    want = booster.predict(x, num_threads=1)
    out: dict[str, Any] = {"rows": len(x)}
    candidates = {
        "lleaves": lleaves_predictor.LleavesPredictor(path, threads=1),
        "tl2cgen Predictor API": Tl2cgenApi(lib),
        "tl2cgen direct": Tl2cgenDirect(lib, loop),
    }
    for label, p in candidates.items():
        got = np.asarray(p.predict_rows(x.tolist()), dtype=np.float64)
        pairs = zip(got.tolist(), want.tolist(), strict=True)
        bad = [not model.within_tolerance(a, b) for a, b in pairs]
        out[label] = {"mismatches": int(sum(bad)), "max_abs": float(np.max(np.abs(got - want)))}
    print("low-word hazard", json.dumps(out), flush=True)
    return out


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/predictor_candidates"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep artefacts already built")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "python": platform.python_version(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "versions": {p: metadata.version(p) for p in ("tl2cgen", "treelite", "lleaves",
                                                      "llvmlite", "lightgbm", "numpy")},
        "gcc": subprocess.run(["gcc", "--version"], capture_output=True, text=True)
        .stdout.splitlines()[0],
        "loadavg_start": loadavg(),
    }  # fmt: skip
    print(json.dumps(doc), flush=True)

    loop_so = out / "tl2cgen_loop.so"
    (out / "tl2cgen_loop.c").write_text(LOOP_C)
    run(["gcc", "-O3", "-fPIC", "-shared", "-std=c99", "-o", str(loop_so),
         str(out / "tl2cgen_loop.c"), "-lm"])  # fmt: skip
    loop = ctypes.CDLL(str(loop_so))

    # Builds: the timed model three ways with TL2cgen, lleaves from nothing, the others plainly.
    reg = MODELS["regression"]
    builds: dict[str, dict[str, Any]] = {}
    tl2_variants = {
        "tl2cgen": {},
        "tl2cgen parallel_comp=8": {"parallel_comp": 8},
        "tl2cgen annotated": {"annotate_in": "x"},
    }
    libs = {label: out / f"regression-{i}.so" for i, label in enumerate(tl2_variants)}
    for label, params in tl2_variants.items():
        if not (args.reuse and libs[label].exists()):
            builds[label] = build_tl2cgen(reg, libs[label], dict(params))
            print(label, json.dumps(builds[label]), flush=True)
    model_libs = {"regression": libs["tl2cgen"]}
    for name in ("binary", "multiclass"):
        model_libs[name] = out / f"{name}.so"
        if not (args.reuse and model_libs[name].exists()):
            builds[f"tl2cgen {name}"] = build_tl2cgen(MODELS[name], model_libs[name], {})
    lleaves_dir = out / "lleaves"
    if not (args.reuse and lleaves_dir.exists()):
        with tempfile.TemporaryDirectory() as tmp:
            builds["lleaves"] = build_lleaves(reg, Path(tmp))
        lleaves_dir.mkdir(exist_ok=True)
        print("lleaves", json.dumps(builds["lleaves"]), flush=True)
    doc["builds"] = builds

    # Start-up: the artefact the stack would load, in a fresh process.
    lleaves_so = lleaves_predictor.shared_object_path(reg, None)
    lleaves_predictor.ensure_compiled(reg)
    doc["startup"] = {"lleaves": startup(lleaves_so, "lleaves"),
                      "tl2cgen": startup(libs["tl2cgen"], "tl2cgen")}  # fmt: skip
    doc["artefact_bytes"] = {"lleaves": lleaves_so.stat().st_size,
                             **{k: v.stat().st_size for k, v in libs.items()}}  # fmt: skip
    print("startup", json.dumps(doc["startup"]), flush=True)

    # Parity on the three golden models, and the missing-value hazard on the timed rows.
    doc["parity"] = {name: parity(name, MODELS[name], model_libs[name], loop) for name in MODELS}
    rows = workload.load(reg).timed_rows
    doc["low_word_hazard"] = low_word_hazard(reg, libs["tl2cgen"], loop, rows)

    # Speed, interleaved.
    variants: dict[str, Any] = {
        "lleaves (LleavesPredictor)": lleaves_predictor.LleavesPredictor(reg, threads=1),
        "LightGBM C API (CapiPredictor, the fallback)": CapiPredictor(reg, threads=1),
        "tl2cgen Predictor API": Tl2cgenApi(libs["tl2cgen"]),
        "tl2cgen direct": Tl2cgenDirect(libs["tl2cgen"], loop),
        "tl2cgen direct, parallel_comp=8": Tl2cgenDirect(libs["tl2cgen parallel_comp=8"], loop),
        "tl2cgen direct, annotated": Tl2cgenDirect(libs["tl2cgen annotated"], loop),
    }
    doc["loadavg_before_timing"] = loadavg()
    doc["speed"] = speed(variants, rows, args.rounds)
    # The 100 timed rows come back every 100 calls, which a branch predictor may partly learn:
    # the same on rows that never repeat in a run, drawn as the training set's (standard normal).
    fresh = np.random.default_rng(2).normal(size=(FRESH_ROWS, rows.shape[1]))
    doc["speed_fresh_rows"] = speed(variants, fresh, args.rounds, disjoint=True)
    doc["loadavg_end"] = loadavg()
    (out / "results.json").write_text(json.dumps(doc, indent=1))

    print(f"\nload average: start {doc['loadavg_start']}, before timing "
          f"{doc['loadavg_before_timing']}, end {doc['loadavg_end']}")  # fmt: skip
    for label, key in (("the bench's 100 timed rows", "speed"),
                       (f"{FRESH_ROWS:,} fresh rows", "speed_fresh_rows")):  # fmt: skip
        print(f"\n{label}: median µs per row (range of the round medians)")
        print("| predictor | 1 row: µs | 16 rows: µs/row | 64 rows: µs/row |")
        print("| --- | --- | --- | --- |")
        for name, by in doc[key].items():
            cells = [f"{by[b]['row_us']:.2f} ({by[b]['round_min_us'] / b:.2f}-"
                     f"{by[b]['round_max_us'] / b:.2f})" for b in BATCHES]  # fmt: skip
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
