"""The Go stack: Fiber v3 + leaves, built by ``make`` into ``fiber/bin/fiber-endpoint``.

``serve`` replaces this Python process with the Go binary (``exec``), so signals, placement and
resource accounting all apply to the Go server itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fiber_endpoints.paths import PROJECT_ROOT
from fiber_endpoints.stacks import ServeOptions

GO_DIR = PROJECT_ROOT / "fiber"
BINARY = GO_DIR / "bin" / "fiber-endpoint"
# The one build command, shared by the Makefile and the Dockerfile.
BUILD_COMMAND = [
    "go",
    "build",
    "-trimpath",
    "-ldflags",
    "-s -w",
    "-o",
    "bin/fiber-endpoint",
    ".",
]


def _stale() -> bool:
    if not BINARY.exists():
        return True
    built = BINARY.stat().st_mtime
    sources = [*GO_DIR.glob("*.go"), GO_DIR / "go.mod", GO_DIR / "go.sum"]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def binary() -> Path:
    """The Go binary, (re)built when missing or older than its sources, so a run outside
    ``make`` never times a stale server."""
    if _stale():
        if shutil.which("go") is None:
            raise FileNotFoundError(
                f"{BINARY} is missing or older than fiber/*.go, and no Go toolchain builds it"
            )
        subprocess.run(
            BUILD_COMMAND, cwd=GO_DIR, check=True, env={**os.environ, "CGO_ENABLED": "0"}
        )
    return BINARY


def command(opts: ServeOptions) -> list[str]:
    return [
        str(binary()),
        "-model", str(opts.model),
        "-host", opts.host,
        "-port", str(opts.port),
        "-model-name", opts.model_name,
    ]  # fmt: skip


def serve(opts: ServeOptions) -> None:
    if opts.workers != 1:
        raise ValueError("the Go stack uses every usable CPU in one process: --workers is 1")
    cmd = command(opts)
    os.execv(cmd[0], cmd)
