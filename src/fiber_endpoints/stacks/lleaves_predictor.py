"""The model compiled to native code by lleaves (LLVM), called through its raw entry point.

lleaves turns each tree into branches of machine code: one row of the project's 500-tree model
takes ~10 µs here against ~29 µs in LightGBM's own ``SingleRowFast`` and ~50 µs in
``Booster.predict``. It agrees with LightGBM to ~1e-12 (summation order), inside the project's
1e-9 tolerance; :func:`check_parity` proves it against LightGBM's C API.

Compiling this model takes 20-60 s on one core, so it is done once (``fiber-endpoints
compile``, or the first ``serve``) into an artefact keyed by the model file's SHA-256, the
lleaves and llvmlite versions and the CPU target, which is portable (:func:`target`:
``x86-64-v2`` on x86, not the build machine's CPU, so an image built on one machine runs on
another). The parity check runs at compile time and its result is written beside the object
(``<key>.parity.json``, naming the model's hash); a worker loads the object without LightGBM
only when that certificate is there for the exact model file it serves, so a model mounted over
the shipped one never runs a stale artefact: its hash finds no artefact, and it is compiled and
checked again (or served by the C API when the check fails).

An image ships the certified, linked artefact of its model (:func:`ship`, ``fiber-endpoints
compile --ship DIR`` at build time) in a read-only directory named by ``$FIBER_ENDPOINTS_COMPILED``,
as ``<model sha256>.so`` beside its certificate (which also names the ``.so``'s own SHA-256).
:func:`shipped` finds it by the served model file's hash alone, so a worker loads it with
``ctypes`` and needs neither lleaves nor llvmlite installed: the asgi-msgspec image has neither.
Any other model finds nothing there, and is compiled as above where lleaves is installed, or
served by the C API where it is not.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import random
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


TARGET_ENV = "FIBER_ENDPOINTS_LLEAVES_TARGET"  # "native": the host CPU (not portable)


def target() -> tuple[str, str]:
    """The CPU the code is compiled for, and its extra features: portable by default
    (``x86-64-v2``: SSE4.2/POPCNT, every x86 server since ~2009; ``generic`` elsewhere)."""
    if os.environ.get(TARGET_ENV) == "native":
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    if platform.machine().lower() in ("x86_64", "amd64"):
        return "x86-64-v2", ""
    return "generic", ""


def model_sha256(model_path: Path) -> str:
    return hashlib.sha256(model_path.read_bytes()).hexdigest()


SHIPPED_ENV = "FIBER_ENDPOINTS_COMPILED"  # a read-only directory of shipped artefacts (images)


def ship(model_path: Path, into: Path, directory: Path | None = None) -> Path:
    """Copy this model's certified, linked artefact (compiled and checked first if needed) into
    ``into`` as ``<model sha256>.so`` + ``.parity.json``, for :func:`shipped` to find. Refuses
    (``ValueError``) an artefact that is not certified or not linked: only a ``.so`` whose own
    parity check passed is shipped."""
    directory = directory or cache_dir()
    ensure_compiled(model_path, directory)
    doc = _certificate(model_path, directory)
    so = shared_object_path(model_path, directory)
    if doc is None or not doc.get("shared_object") or not so.exists():
        raise ValueError(f"{model_path}: no certified shared object to ship (is a linker there?)")
    digest = model_sha256(model_path)
    into.mkdir(parents=True, exist_ok=True)
    data = so.read_bytes()
    # A new file renamed over the old one, never the old one rewritten: a process that has the
    # old one loaded (a server, a test) keeps its mapping; rewriting it in place crashes it.
    partial = into / f"{digest}.so.{os.getpid()}.tmp"
    partial.write_bytes(data)
    os.replace(partial, into / f"{digest}.so")
    doc = {**doc, "shared_object_sha256": hashlib.sha256(data).hexdigest(),
           "machine": platform.machine()}  # fmt: skip
    (into / f"{digest}.parity.json").write_text(json.dumps(doc, indent=1))
    return into / f"{digest}.so"


def shipped(model_path: Path, into: Path | None = None) -> Path | None:
    """The shipped shared object for exactly this model file (its SHA-256 names it, its
    certificate must say so and name the ``.so``'s bytes), built for this machine and for the
    target :func:`target` asks for; None otherwise. Needs neither lleaves nor llvmlite."""
    folder = into or (Path(os.environ[SHIPPED_ENV]) if os.environ.get(SHIPPED_ENV) else None)
    if folder is None:
        return None
    try:
        digest = model_sha256(model_path)
        doc = json.loads((folder / f"{digest}.parity.json").read_text())
        so = folder / f"{digest}.so"
        ok = (
            isinstance(doc, dict)
            and doc.get("ok") is True
            and doc.get("shared_object") is True
            and doc.get("model_sha256") == digest
            and doc.get("machine") == platform.machine()
            and doc.get("target_cpu") == target()[0]
            and doc.get("shared_object_sha256") == hashlib.sha256(so.read_bytes()).hexdigest()
        )
    except (OSError, ValueError):
        return None
    return so if ok else None


def cache_path(model_path: Path, directory: Path | None = None) -> Path:
    """Where the compiled object for this model file, compiler and CPU target lives."""
    digest = model_sha256(model_path)
    key = hashlib.sha256(digest.encode())
    for part in (metadata.version("lleaves"), metadata.version("llvmlite"), *target()):
        key.update(b"\0" + part.encode())
    return (directory or cache_dir()) / f"{digest[:16]}-{key.hexdigest()[:16]}.o"


def certificate_path(model_path: Path, directory: Path | None = None) -> Path:
    return cache_path(model_path, directory).with_suffix(".parity.json")


def _certificate(model_path: Path, directory: Path | None = None) -> dict[str, Any] | None:
    """The parity certificate of exactly this model file's artefact, if it passed."""
    try:
        doc = json.loads(certificate_path(model_path, directory).read_text())
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(doc, dict)
        and doc.get("ok") is True
        and doc.get("model_sha256") == model_sha256(model_path)
        and {"num_features", "num_class"} <= doc.keys()
        and cache_path(model_path, directory).exists()
    )
    return doc if ok else None


def certified(model_path: Path, directory: Path | None = None) -> bool:
    """The compiled artefact of exactly this model file passed the parity check."""
    return _certificate(model_path, directory) is not None


_ENTRY = ctypes.CFUNCTYPE(
    None,
    ctypes.POINTER(ctypes.c_double),
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_int32,
    ctypes.c_int32,
)


def _load_object(cache: Path) -> tuple[Any, Any]:
    """The compiled object loaded the way lleaves loads its cache (``compile(cache=...)``:
    an empty module, MCJIT with the object from the cache, the ``forest_root`` entry point),
    with llvmlite alone: importing lleaves imports pandas when it is installed (lleaves.
    data_processing), ~5 s and ~60 MiB measured here, and serving needs none of it."""
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cpu, features = target()
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
        cpu=cpu, features=features, reloc="pic", codemodel="large"
    )
    module = llvm.parse_assembly("")
    engine = llvm.create_mcjit_compiler(module, machine)
    module.data_layout = str(engine.target_data)
    data = cache.read_bytes()
    engine.set_object_cache(getbuffer_func=lambda _: data)
    engine.finalize_object()
    engine.run_static_constructors()
    return engine, _ENTRY(engine.get_function_address("forest_root"))


def _compiled_model(model_path: Path, directory: Path | None = None) -> Any:
    """A compiled ``lleaves.Model``: from the cache, or compiled now and written to it."""
    import lleaves

    compiled = lleaves.Model(model_file=str(model_path))
    cache = cache_path(model_path, directory)
    cpu, features = target()
    if cache.exists():
        compiled.compile(cache=str(cache), target_cpu=cpu, target_cpu_features=features)
        return compiled
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # lleaves writes it as it goes
    try:
        compiled.compile(cache=str(partial), target_cpu=cpu, target_cpu_features=features)
        os.replace(partial, cache)  # atomic: concurrent starts never load half a file
    finally:
        partial.unlink(missing_ok=True)
    return compiled


def shared_object_path(model_path: Path, directory: Path | None = None) -> Path:
    return cache_path(model_path, directory).with_suffix(".so")


def _link(obj: Path) -> Path | None:
    """The compiled object linked into a shared library (``$CC -shared``, the C compiler the
    project needs anyway): ``ctypes`` then loads it without LLVM, so serving does not map
    llvmlite's library (+33 MiB RSS measured here) or import lleaves. ``None`` without a
    working compiler: the object is then loaded through llvmlite."""
    import shutil
    import subprocess

    so = obj.with_suffix(".so")
    if so.exists():
        return so
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    partial = so.with_name(f"{so.name}.{os.getpid()}.tmp")
    try:
        subprocess.run([cc, "-shared", "-o", str(partial), str(obj)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        os.replace(partial, so)
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        partial.unlink(missing_ok=True)
    return so


def model_shape(model_path: Path) -> tuple[int, int]:
    """(features, classes) from the LightGBM text model's header (``max_feature_idx``,
    ``num_class``), without parsing its trees."""
    features = classes = None
    with model_path.open("rb") as f:
        for line in f:
            if line.startswith(b"max_feature_idx="):
                features = int(line.split(b"=", 1)[1]) + 1
            elif line.startswith(b"num_class="):
                classes = int(line.split(b"=", 1)[1])
            elif line.startswith(b"Tree=") or (features is not None and classes is not None):
                break
    if features is None:
        raise ValueError(f"{model_path}: no max_feature_idx in the model's header")
    return features, max(1, classes or 1)


def compile_and_check(model_path: Path, directory: Path | None = None) -> list[str]:
    """Compile (if needed) and link, check the artefact that will be served against
    LightGBM's C API, and write the certificate when it passes; returns the mismatches
    (empty: certified). ``fiber-endpoints compile``."""
    directory = directory or cache_dir()  # this compile's artefact, never a shipped one
    compiled = LleavesPredictor(model_path, threads=1, directory=directory, check=False)
    reference = CapiPredictor(model_path, threads=1)
    try:
        errors = check_parity(compiled, reference)
    finally:
        reference.close()
        compiled.close()
    cert = certificate_path(model_path, directory)
    if errors:
        cert.unlink(missing_ok=True)
        return errors
    cpu, features = target()
    doc = {
        "ok": True,
        "model_sha256": model_sha256(model_path),
        "model_file": str(model_path),
        "object": cache_path(model_path, directory).name,
        "shared_object": compiled.shared,
        "lleaves": metadata.version("lleaves"),
        "llvmlite": metadata.version("llvmlite"),
        "target_cpu": cpu,
        "target_features": features,
        "num_features": compiled.num_features,
        "num_class": compiled.num_class,
        "checked_rows": 256,
    }
    partial = cert.with_name(f"{cert.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(doc, indent=1))
    os.replace(partial, cert)
    return []


def ensure_compiled(model_path: Path, directory: Path | None = None) -> Path:
    """Compile and certify if needed (before starting workers); returns the cache file, or the
    shipped shared object when there is one for this model (then nothing is compiled)."""
    if directory is None and (so := shipped(model_path)) is not None:
        return so
    if not certified(model_path, directory):
        compile_and_check(model_path, directory)
    return cache_path(model_path, directory)


class LleavesPredictor:
    name = "lleaves"
    """Same interface as :class:`CapiPredictor`: rows already checked to ``num_features``."""

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        directory: Path | None = None,
        check: bool = False,
    ) -> None:
        # The image's artefact for exactly this model file: no lleaves, no llvmlite needed.
        so = shipped(path) if directory is None else None
        self.from_image = so is not None
        if so is None:
            if check and not certified(path, directory):
                errors = compile_and_check(path, directory)
                if errors:
                    raise ValueError(f"lleaves disagrees with LightGBM: {errors[0]}")
            obj = cache_path(path, directory)
            if not obj.exists():  # compile time (lleaves); serving loads what is already made
                _compiled_model(path, directory)
            so = _link(obj)
        self.shared = so is not None
        self._model: Any  # owns the code: keep it alive
        if so is not None:  # no LLVM in this process
            self._model = ctypes.CDLL(str(so))
            self._entry = _ENTRY(("forest_root", self._model))
        else:
            self._model = _load_object(cache_path(path, directory))
            self._entry = self._model[1]
        self.num_features, self.num_class = model_shape(path)
        self.threads = threads or cpus.usable_cpus()
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
    rng = random.Random(seed)  # not numpy: the fast stack's image has none
    n = reference.num_features
    data: list[list[float | None]] = [
        [None if rng.random() < 0.1 else rng.gauss(0.0, 3.0) for _ in range(n)] for _ in range(rows)
    ]
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
