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
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiber_endpoints import stacks
from fiber_endpoints.cpus import pin_on_exec

if TYPE_CHECKING:
    from fiber_endpoints.bench.protocols import WireProtocol


class ServerError(RuntimeError):
    """A stack did not start, did not become healthy, or died."""


class UnsupportedModel(ServerError):
    """The stack refused the model before serving: it cannot compute it exactly."""


@dataclass
class Server:
    """A stack reachable at ``url``: started by us (``process``) or given with ``--target``."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    cpus: list[int] | None = None
    health: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    health_path: str = "/health"  # the contract's; a V2 server's is /v2/health/ready
    # What it speaks when that is not the run's protocol (a peer: V2 or BentoML's JSON API).
    protocol: WireProtocol | None = None

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


def get_json(
    url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A 2xx answer's JSON object ({} for an empty body, as Triton's health routes answer),
    asked with ``headers`` (``--header``: Host, Authorization); TLS verified as the raw client
    verifies it (``bench/client.py``)."""
    from fiber_endpoints.bench.client import INSECURE_TLS_ENV

    context = None
    if url.startswith("https://") and os.environ.get(INSECURE_TLS_ENV) == "1":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
        raw = resp.read()
        body = json.loads(raw) if raw.strip() else {}
        return body if isinstance(body, dict) else {"answer": body}


def wait_healthy(
    server: Server, timeout: float = 60.0, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            if server.process.returncode == stacks.EXIT_UNSUPPORTED_MODEL:
                raise UnsupportedModel(f"{server.name}: {_last_line(server.log_path)}")
            raise ServerError(
                f"{server.name} exited with code {server.process.returncode} before it was "
                f"healthy; log: {server.log_path}\n{tail(server.log_path)}"
            )
        try:
            server.health = get_json(server.url + server.health_path, headers=headers)
            return server.health
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise ServerError(f"{server.name} not healthy at {server.url} after {timeout:.0f}s: {last}")


def _last_line(path: Path | None) -> str:
    lines = tail(path, 5).strip().splitlines()
    return lines[-1] if lines else "no reason given"


def tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def launch(
    cmd: Sequence[str],
    *,
    cpus: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group, placed on ``cpus`` from exec, output to
    ``log_path`` (or nowhere): every server, peer, generator ceiling and Jaeger starts this way."""
    log = log_path.open("wb") if log_path is not None else None
    try:
        return subprocess.Popen(
            list(cmd),
            env={**os.environ, **(env or {})},
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin_on_exec(cpus),
            start_new_session=True,
            cwd=cwd,
        )
    finally:
        if log is not None:
            log.close()


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
    """SIGTERM a process group started by :func:`launch` and wait; SIGKILL it if it does not
    exit in time. Returns the exit code (None: nothing to stop)."""
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


def wait_port(
    host: str, port: int, timeout: float = 5.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something accepts connections on ``host:port`` (fails early if ``process`` died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise ServerError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


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
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    proc = launch(
        serve_command(name, model, host, port, extra_args), cpus=cpus, env=env, log_path=log_path
    )
    pinned = sorted(set(cpus)) if cpus else None
    server = Server(name, f"http://{host}:{port}", proc, pinned, log_path=log_path)
    try:
        wait_healthy(server, timeout)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server, timeout: float = 10.0) -> int | None:
    """SIGTERM the server's process group and wait; SIGKILL if it does not exit in time."""
    return stop_process(server.process, timeout)


@contextmanager
def running(name: str, model: Path, **kwargs: Any) -> Iterator[Server]:
    server = start(name, model, **kwargs)
    try:
        yield server
    finally:
        stop(server)


FLOOR = "loopback-floor"
FLOOR_DESCRIPTION = (
    "trivial C server (epoll, answers every request with {}): the loopback floor, a diagnostic"
)


@contextmanager
def floor_server(cpus: Sequence[int] | None = None, host: str = "127.0.0.1") -> Iterator[Server]:
    """The trivial C server (``bench/trivial_server.c``) placed like a stack: what the client,
    the generators and the machine cost with no server work at all."""
    from fiber_endpoints.bench import tools

    port = free_port(host)
    proc = launch([str(tools.trivial_server()), str(port)], cpus=cpus)
    server = Server(FLOOR, f"http://{host}:{port}", proc, sorted(cpus) if cpus else None)
    server.health = {"status": "ok", "stack": FLOOR, "predictor": "none"}
    try:
        wait_port(host, port, process=proc)
        yield server
    finally:
        stop(server)
