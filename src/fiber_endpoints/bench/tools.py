"""Where the load generators are: wrk (Debian), oha (crates.io), vegeta (Go module) and the
trivial server.

All are installed by ``scripts/install-load-tools.sh`` (``make load-tools``) into
``~/.cache/fiber-endpoints/load-tools`` (wrk from Debian into ``/usr/bin``). A missing tool
is an error that names that command: the load lab never silently falls back to a weaker generator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from fiber_endpoints.cpus import pin_on_exec
from fiber_endpoints.paths import CACHE_DIR

TOOLS_HOME = Path(os.environ.get("LOAD_TOOLS_HOME", CACHE_DIR / "load-tools"))
INSTALL_HINT = "run scripts/install-load-tools.sh (make load-tools)"


class ToolMissing(RuntimeError):
    """A load tool is not installed."""


def _find(name: str) -> Path:
    cached = TOOLS_HOME / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolMissing(f"{name} not found in {TOOLS_HOME / 'bin'} or PATH: {INSTALL_HINT}")


def wrk() -> Path:
    return _find("wrk")


def vegeta() -> Path:
    return _find("vegeta")


def oha() -> Path:
    return _find("oha")


def trivial_server() -> Path:
    return _find("trivial-server")


def children_cpu_since(before: os.times_result) -> float:
    """CPU seconds of the children this process reaped since ``before``: a load tool's own CPU
    over its run, read as the generators' CPU per step."""
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def run_pinned(
    cmd: list[str], cpus: Sequence[int] | None, timeout_s: float
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Run a load tool to its end, pinned to ``cpus`` from exec, its output captured: the
    finished process and the CPU seconds it used. Its exit code is the caller's to judge."""
    before = os.times()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        preexec_fn=pin_on_exec(set(cpus) if cpus else None),
        timeout=timeout_s,
        check=False,
    )
    return proc, children_cpu_since(before)


def version(tool: Path) -> str:
    """The tool's own version line (wrk prints it with its usage, vegeta with ``-version``)."""
    args = [str(tool), "-version"] if tool.name == "vegeta" else [str(tool), "--version"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    text = (proc.stdout + proc.stderr).strip()
    if tool.name == "vegeta":
        m = re.search(r"Version:[ \t]*(\S+)", text)
        if m:
            return f"vegeta {m.group(1)}"
        pinned = tool.parent.parent / "VEGETA_VERSION"  # `go install` leaves Version empty
        return "vegeta " + (pinned.read_text().strip() if pinned.exists() else "(unknown)")
    first = text.splitlines()[0] if text else tool.name
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." -> "wrk 4.1.0 (debian/4.1.0-3+b2, epoll)"
    m = re.match(r"wrk (?:\S+/)?(\d+\.\d+\.\d+)(\S*) \[(\w+)\]", first)
    if m:
        return f"wrk {m.group(1)} ({first.split()[1]}, {m.group(3)})"
    return first
