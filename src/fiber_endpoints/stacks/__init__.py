"""The stack registry: one entry per endpoint stack, found by name.

Every stack serves ``docs/contract.md``. A stack is started the same way for ``serve``, the
benchmark and the tests: ``fiber-endpoints serve NAME --host H --port P --model M``; the entry's
``run`` does the rest in the foreground (the Go stack execs its binary).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fiber_endpoints.v2 import DEFAULT_MODEL_NAME, check_model_name

# A stack that cannot compute a model exactly exits with this code before serving (fiber/main.go
# uses the same): it is then reported as not eligible for that model, never timed.
EXIT_UNSUPPORTED_MODEL = 65  # EX_DATAERR (sysexits.h); uvicorn itself exits 3 when it cannot bind


# Installed with the bench's extras (training, plots, the load lab), never needed to serve: the
# serving image has none of them (docker/python.Dockerfile; its test checks each is absent).
NOT_SERVING = ("matplotlib", "sklearn", "pandas", "pyarrow", "rich", "hdrh", "httpx", "psutil")
SERVING_ENV = "FIBER_ENDPOINTS_SERVING"  # set by ``serve`` for the server and its workers


def serving_imports_only() -> None:
    """In a server process (and, through the environment, its workers): the packages of
    :data:`NOT_SERVING` made unimportable, as they are in the serving image. LightGBM's Python
    package imports pandas and scikit-learn whenever they are installed, ~4 s of the control's
    start here (``python -X importtime``) and most of its memory, for nothing it uses to
    predict; a stack served from the project's environment now starts as it does in the image."""
    os.environ[SERVING_ENV] = "1"
    for name in NOT_SERVING:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # "import name" fails


if os.environ.get(SERVING_ENV) == "1":  # a uvicorn worker: its imports start here
    serving_imports_only()


def exit_zero_on_stop_signal() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal it caught:
    make that re-raise an exit 0, as a graceful stop should report."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))


def model_name_arg(text: str) -> str:
    """``--model-name`` (serve, bench): a V2 model name, or argparse's error saying why not."""
    try:
        return check_model_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class ServeOptions:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    model_name: str = DEFAULT_MODEL_NAME  # the model's name in the V2 routes


@dataclass(frozen=True)
class Stack:
    name: str
    language: str
    description: str
    default_port: int
    run: Callable[[ServeOptions], None]


def _run_fastapi(opts: ServeOptions) -> None:
    serving_imports_only()
    from fiber_endpoints.stacks import fastapi_control

    fastapi_control.serve(opts)


def _run_fiber(opts: ServeOptions) -> None:
    from fiber_endpoints.stacks import fiber_go

    fiber_go.serve(opts)


def _run_asgi_msgspec(opts: ServeOptions) -> None:
    serving_imports_only()
    from fiber_endpoints.stacks import asgi_msgspec

    asgi_msgspec.serve(opts)


STACKS: dict[str, Stack] = {
    s.name: s
    for s in [
        Stack(
            "fastapi",
            "python",
            "FastAPI + pydantic + uvicorn + Booster.predict (control)",
            8000,
            _run_fastapi,
        ),
        Stack("fiber", "go", "Go Fiber v3 + leaves", 8001, _run_fiber),
        Stack(
            "asgi-msgspec",
            "python",
            "uvicorn (uvloop, httptools) + msgspec + lleaves-compiled model (C API fallback)",
            8002,
            _run_asgi_msgspec,
        ),
    ]
}

CONTROL = "fastapi"


def get(name: str) -> Stack:
    try:
        return STACKS[name]
    except KeyError:
        raise KeyError(f"unknown stack {name!r}; known: {', '.join(STACKS)}") from None
