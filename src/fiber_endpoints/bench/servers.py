"""Starting stacks as real processes on loopback, placed on CPUs from the start, and stopping them.

Placement is applied in the child before ``exec`` (``sched_setaffinity``), so a server's thread
pools are sized for the CPUs it will run on; moving a running server (``taskset -p``) is what
made LightGBM's OpenMP pool 30x slower here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiber_endpoints import stacks
from fiber_endpoints.cpus import pin_on_exec


class ServerError(RuntimeError):
    """A stack did not start, did not become healthy, or died."""


@dataclass
class Server:
    """A stack reachable at ``url``: started by us (``process``) or given with ``--target``."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    cpus: list[int] | None = None
    health: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.url.split("://", 1)[1].rstrip("/")
        host, _, port = rest.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_command(
    name: str, model: Path, host: str, port: int, extra: Sequence[str] = ()
) -> list[str]:
    stacks.get(name)  # fail early on an unknown name
    return [
        sys.executable,
        "-m",
        "fiber_endpoints",
        "serve",
        name,
        "--model",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        *extra,
    ]


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def wait_healthy(server: Server, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise ServerError(
                f"{server.name} exited with code {server.process.returncode} before it was "
                f"healthy; log: {server.log_path}\n{tail(server.log_path)}"
            )
        try:
            server.health = get_json(server.url + "/health")
            return server.health
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise ServerError(f"{server.name} not healthy at {server.url} after {timeout:.0f}s: {last}")


def tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(
    name: str,
    model: Path,
    *,
    cpus: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
    timeout: float = 300.0,  # a first start may compile the model (lleaves: 20-60 s)
) -> Server:
    """Start stack ``name`` as its own process group, pinned to ``cpus`` from exec, and wait
    for ``/health``."""
    port = port or free_port(host)
    cmd = serve_command(name, model, host, port, extra_args)
    child_env = {**os.environ, **(env or {})}
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    pin = set(cpus) if cpus else None

    log = log_path.open("wb")
    proc = subprocess.Popen(
        cmd,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=pin_on_exec(pin),
        start_new_session=True,
    )
    log.close()
    server = Server(
        name, f"http://{host}:{port}", proc, sorted(pin) if pin else None, log_path=log_path
    )
    try:
        wait_healthy(server, timeout)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server, timeout: float = 10.0) -> int | None:
    """SIGTERM the server's process group and wait; SIGKILL if it does not exit in time."""
    proc = server.process
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@contextmanager
def running(name: str, model: Path, **kwargs: Any) -> Iterator[Server]:
    server = start(name, model, **kwargs)
    try:
        yield server
    finally:
        stop(server)
