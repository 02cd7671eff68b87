"""Start to first correct answer, per stack: a ``bench`` phase.

For every stack ``bench`` started itself, ``runs`` fresh starts (after the parity-checked
servers stopped, pinned to the same CPUs, the compiled model already present): the clock starts
just before ``exec`` and stops at the first ``POST /inference`` whose answer equals LightGBM's
prediction for a golden row (within the parity tolerance), polled every millisecond on a new
connection until it answers. A start that gives a wrong answer first is a failure, not a time.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fiber_endpoints import model
from fiber_endpoints.bench import schema, servers
from fiber_endpoints.bench.workload import encode_body

if TYPE_CHECKING:
    from fiber_endpoints.bench.context import RunContext

RUNS = 3
TIMEOUT_S = 120.0
GOAL_S = 2.0


class StartupError(RuntimeError):
    """A stack answered a start's first request wrongly, or not within the timeout."""


def _ask(host: str, port: int, request: bytes) -> bytes | None:
    """One request on a new connection: the response, or None when nothing listens yet."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return None


def _length(data: bytes) -> int:
    head = data.partition(b"\r\n\r\n")[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def time_one_start(
    ctx: RunContext, name: str, cpus: list[int] | None, row: list[float | None], want: Any
) -> schema.StartupRun:
    host = "127.0.0.1"
    port = servers.free_port(host)
    body = encode_body(row)
    request = (
        b"POST /inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    ctx.log_dir.mkdir(parents=True, exist_ok=True)
    command = servers.serve_command(name, ctx.config.model_path, host, port, ())
    started = time.perf_counter()
    proc = servers.launch(command, cpus=cpus, env=ctx.config.server_env,
                          log_path=ctx.log_dir / f"startup-{name}-{port}.log")  # fmt: skip
    try:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed > TIMEOUT_S:
                raise StartupError(f"{name}: no answer {TIMEOUT_S:.0f} s after exec")
            if proc.poll() is not None:
                raise StartupError(f"{name}: exited with code {proc.returncode} before answering")
            answer = _ask(host, port, request)
            if answer is None or not answer.startswith(b"HTTP/1.1 200"):
                time.sleep(0.001)
                continue
            elapsed = time.perf_counter() - started
            got = json.loads(answer.partition(b"\r\n\r\n")[2])["prediction"]
            gots, wants = (got, want) if isinstance(want, list) else ([got], [want])
            if not all(model.within_tolerance(g, w) for g, w in zip(gots, wants, strict=True)):
                raise StartupError(f"{name}: first answer {got!r}, LightGBM says {want!r}")
            health = servers.Server(name, f"http://{host}:{port}", proc)
            servers.wait_healthy(health, timeout=10)
            return {"seconds": elapsed, "predictor": str(health.health.get("predictor", "?"))}
    finally:
        servers.stop_process(proc)


def measure(ctx: RunContext, running: Mapping[str, servers.Server]) -> schema.Startup:
    golden = ctx.workload.golden
    row = [None if v != v else float(v) for v in golden.rows[0]]
    want = golden.predictions[0]
    out: schema.Startup = {"runs": RUNS, "stacks": {}}
    for name, server in running.items():
        if server.process is None:
            continue  # a --target: not ours to restart
        out["stacks"][name] = [
            time_one_start(ctx, name, server.cpus, row, want) for _ in range(RUNS)
        ]
    return out


def markdown(startup: Mapping[str, object]) -> str:
    lines = [
        "| stack | predictor | start to first correct answer, s (each run) | median s "
        "| goal ≤ 2 s |",
        "| --- | --- | --- | ---: | --- |",
    ]
    stacks = startup.get("stacks", {})
    assert isinstance(stacks, dict)
    for name, runs in stacks.items():
        seconds = sorted(r["seconds"] for r in runs)
        median = seconds[len(seconds) // 2]
        each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        verdict = "met" if median <= GOAL_S else f"missed by {median - GOAL_S:.2f} s"
        lines.append(f"| {name} | {runs[0]['predictor']} | {each} | {median:.2f} | {verdict} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class StartupPhase:
    """Runs after the parity-checked servers stopped (their CPUs free, their artefacts made)."""

    name: str = "startup"
    needs_servers: bool = False

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> schema.Startup:
        return measure(ctx, running)
