"""The results file: one JSON document per run with every raw latency and the machine's details.

Layout (``results/<UTC timestamp>/results.json``)::

    schema      "fiber-endpoints/results/1"
    created     ISO time (UTC); command: argv
    machine     CPU model, cores, memory, kernel, versions (Python, Go, LightGBM, Fiber, leaves...)
    placement   {"client_cpus": [...], "server_cpus": [...], "note": "..."}
    model       path, objective, features, classes
    stacks      {name: {"url", "started_by_bench", "health", "parity": {"ok", "errors", ...}}}
    sequential  {"client", "samples", "calls", "client_cpu_floor_s",
                 "stacks": {name: {"latencies_s": [[C floats] x S], "server_timing_ms":
                 [[inference_ms, app_ms] per call, in call order], "client_cpu_per_call_s"}}}
    load        the load lab's raw results (see ``bench/load.py``)

Statistics and plots are computed from this file by ``fiber-endpoints report``.
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
from fiber_endpoints.paths import PROJECT_ROOT

SCHEMA = "fiber-endpoints/results/1"
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
    path = base / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path.mkdir(parents=True, exist_ok=True)
    latest = base / "latest"  # the newest run, for docs and humans
    latest.unlink(missing_ok=True)
    latest.symlink_to(path.name)
    return path


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
    path = directory / "results.json"
    doc = {"schema": SCHEMA, **doc}
    path.write_text(json.dumps(_clean(doc), separators=(",", ":")) + "\n")
    return path


def load(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "results.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} results file")
    return doc
