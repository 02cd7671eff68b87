"""The results file: where runs are written, the machine's details, writing and reading.

One folder per run (``results/<UTC timestamp>/``) with ``results.json`` (its schema is code:
``bench/schema.py``), the servers' logs and the report. ``results/latest`` points at the newest
run that finished: it moves only once a run's results are written.
Statistics and plots are computed from the file by ``fiber-endpoints report``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from fiber_endpoints import cpus
from fiber_endpoints.bench import schema
from fiber_endpoints.paths import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "results"
PYTHON_PACKAGES = (
    "lightgbm",
    "numpy",
    "fastapi",
    "uvicorn",
    "pydantic",
    "starlette",
    "uvloop",
    "httptools",
    "msgspec",
    "orjson",
    "granian",
    "httpx",
)
GO_MODULES = (
    "github.com/gofiber/fiber/v3",
    "github.com/dmitryikh/leaves",
    "go.opentelemetry.io/otel",
)


def run_dir(base: Path = RESULTS_DIR) -> Path:
    """A new, empty folder for one run (``latest`` does not move until :func:`write`)."""
    path = base / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = 1
    while path.exists():  # two runs in one second (tests): never share a folder
        path = base / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def mark_latest(path: Path) -> None:
    """Point ``<base>/latest`` at a finished run's folder."""
    latest = path.parent / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(path.name)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        return int(match.group(1)) * 1024 if match else None
    except OSError:
        return None


def _go_version() -> str | None:
    try:
        out = subprocess.run(["go", "version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def go_module_versions(go_mod: Path = PROJECT_ROOT / "fiber" / "go.mod") -> dict[str, str]:
    versions: dict[str, str] = {}
    try:
        text = go_mod.read_text()
    except OSError:
        return versions
    for module in GO_MODULES:
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)", text, re.M)
        if match:
            versions[module] = match.group(1)
    return versions


def machine_info() -> dict[str, Any]:
    packages = {}
    for name in PYTHON_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "affinity": cpus.affinity(),
        "cgroup_cpu_limit": cpus.cgroup_cpu_limit(),
        "memory_bytes": _memory_bytes(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "go": _go_version(),
        "python_packages": packages,
        "go_modules": go_module_versions(),
        "env": {
            k: os.environ[k]
            for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "CI")
            if k in os.environ
        },
    }


def _clean(value: Any) -> Any:
    """JSON has no NaN: write it as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(doc: dict[str, Any], directory: Path) -> Path:
    """Write a finished run's document and point ``latest`` at it."""
    path = directory / "results.json"
    clean = _clean({"schema": schema.SCHEMA, **doc})
    schema.validate(clean, str(path))  # never write what report would refuse
    path.write_text(json.dumps(clean, separators=(",", ":")) + "\n")
    mark_latest(directory)
    return path


def resolve(path: Path) -> Path:
    """A results file, or a run folder holding ``results.json``."""
    return path / "results.json" if path.is_dir() else path


def load(path: Path) -> schema.ResultsDoc:
    """A results file read back and validated (:class:`schema.SchemaError` if it is not one)."""
    path = resolve(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise schema.SchemaError(f"{path}: cannot read results: {exc}") from None
    return schema.validate(doc, str(path))
