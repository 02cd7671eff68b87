"""Profile one stack at its closed-loop peak: where each µs of server CPU goes (issue 14).

Starts the stack pinned to the server CPU (as ``bench`` places it), drives it with wrk on the
client CPU (the seed's rows rotating, ``--connections`` keep-alive connections) and, over the
measured part, records the server with a sampling profiler:

- ``--profiler py-spy``: Python and native frames (``py-spy record --native``), run through
  ``uvx`` so that the project does not depend on it; writes a speedscope JSON and a
  top-frames table (self and total share of samples).
- ``--profiler perf``: ``perf record -g`` on the server's process (kernel and user space).
  For the Go stack ``perf`` is the profiler: Go binaries keep frame pointers and symbols, so
  ``perf report`` names Go functions as pprof would, and kernel time is in the same profile.

Also printed: req/s, server CPU µs per request (``/proc``), syscalls per request (``strace -c
-f`` over a short second run, when ``--syscalls``), and with ``--steps N`` the tail of N short
runs that each open their connections afresh, as a ``bench`` load step does (p99, p99.9, max).

    .venv/bin/python scripts/profile_under_load.py asgi-msgspec --profiler py-spy
    .venv/bin/python scripts/profile_under_load.py fiber --profiler perf
    .venv/bin/python scripts/profile_under_load.py asgi-msgspec --duration 1 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fiber_endpoints import model
from fiber_endpoints.bench import placement, procstat, servers, workload, wrk
from fiber_endpoints.stacks import ServeOptions, fiber_go

PY_SPY = "py-spy==0.4.1"


def _wrk(
    server: servers.Server, bodies: list[bytes], args: argparse.Namespace, seconds: float
) -> wrk.WrkResult:
    return wrk.run(
        server.url,
        "/inference",
        bodies,
        connections=args.connections,
        duration_s=seconds,
        cpus=args.client_cpus,
    )


def _speedscope_top(path: Path, n: int) -> list[tuple[str, float, float]]:
    """(frame, self %, total %) of the ``n`` frames with the most self samples."""
    doc = json.loads(path.read_text())
    frames = [
        f["name"] + (f" ({Path(f['file']).name})" if f.get("file") else "")
        for f in doc["shared"]["frames"]
    ]
    self_count: Counter[int] = Counter()
    total_count: Counter[int] = Counter()
    samples = 0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            samples += weight
            if stack:
                self_count[stack[-1]] += weight
            for frame in set(stack):
                total_count[frame] += weight
    return [
        (frames[i], 100 * c / samples, 100 * total_count[i] / samples)
        for i, c in self_count.most_common(n)
    ]


# Where a sample's symbol belongs (first match wins): (part, dso or symbol substring).
PARTS = [
    ("predictor: lleaves' compiled model", "forest_root"),
    ("predictor: leaves (Go)", "dmitryikh/leaves"),
    ("kernel (TCP over loopback, syscalls, scheduling, interrupts)", "[kernel"),
    ("Python interpreter (our code, uvicorn's protocol, objects, GC)", "libpython"),
    ("uvloop (event loop, transports, timers)", "loop.cpython"),
    ("httptools (llhttp parser)", "parser.cpython"),
    ("msgspec (JSON decode/encode)", "_core.cpython"),
    ("ctypes and array (predictor call)", "_ctypes"),
    ("ctypes and array (predictor call)", "array.cpython"),
    ("fasthttp and Fiber (HTTP server, routing)", "valyala/fasthttp"),
    ("fasthttp and Fiber (HTTP server, routing)", "gofiber"),
    ("JSON and number parsing (Go)", "main.(*decoder)"),
    ("JSON and number parsing (Go)", "strconv"),
    ("Go runtime (scheduler, GC, allocation, netpoll)", "runtime."),
    ("libc (malloc, memcpy, syscall wrappers)", "libc"),
]


def _perf_parts(data: Path) -> dict[str, float]:
    """Share of samples (%) per part of the server, from ``perf report`` by DSO and symbol."""
    report = subprocess.run(
        ["perf", "report", "--no-children", "--stdio", "-g", "none", "--sort", "dso,sym",
         "-i", str(data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    parts: dict[str, float] = {}
    for line in report.stdout.splitlines():
        fields = line.split()
        if not fields or not fields[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        share, rest = float(fields[0].rstrip("%")), line.split("%", 1)[1]
        part = next((name for name, key in PARTS if key in rest), "other")
        if part == "other" and "main." in rest:
            part = "our Go handler (main.*)"
        parts[part] = parts.get(part, 0.0) + share
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


@contextmanager
def _go_with_symbols(path: Path, cpus: list[int], out: Path) -> Iterator[servers.Server]:
    """The Go stack built like ``make`` builds it but keeping its symbol table (``-s -w`` strip
    it), so that ``perf report`` names Go functions; started as ``serve fiber`` starts it."""
    binary = out / "fiber-endpoint-with-symbols"
    build = [a for a in fiber_go.BUILD_COMMAND if a not in ("-ldflags", "-s -w")]
    build[build.index("bin/fiber-endpoint")] = str(binary)
    subprocess.run(build, cwd=fiber_go.GO_DIR, check=True, env={**os.environ, "CGO_ENABLED": "0"})
    port = servers.free_port()
    cmd = fiber_go.command(ServeOptions(model=path, host="127.0.0.1", port=port))
    cmd[0] = str(binary)
    log = out / "fiber-with-symbols.log"
    proc = servers.launch(cmd, cpus=cpus, log_path=log)
    server = servers.Server("fiber", f"http://127.0.0.1:{port}", proc, cpus, log_path=log)
    try:
        servers.wait_healthy(server)
        yield server
    finally:
        servers.stop(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--profiler", choices=("py-spy", "perf", "none"), default="none")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fiber-endpoints-profile"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--syscalls", action="store_true")
    parser.add_argument("--steps", type=int, default=0, help="then N runs on new connections")
    parser.add_argument("--step-duration", type=float, default=1.0)
    args = parser.parse_args()
    plan = placement.plan(pin=True)
    args.client_cpus = plan.client_cpus
    args.out.mkdir(parents=True, exist_ok=True)
    path = model.DEFAULT_MODEL
    bodies = workload.load(path).single_bodies()
    if args.stack == "fiber" and args.profiler == "perf":
        running = _go_with_symbols(path, plan.server_cpus, args.out)
    else:
        running = servers.running(args.stack, path, cpus=plan.server_cpus, log_dir=args.out)
    with running as srv:
        assert srv.pid is not None
        _wrk(srv, bodies, args, 2.0)  # warm-up
        profiler: subprocess.Popen[bytes] | None = None
        result_file = args.out / f"{args.stack}-{args.profiler}"
        if args.profiler == "py-spy":
            target = result_file.with_suffix(".speedscope.json")
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "uvx"),
                    PY_SPY,
                    "record",
                    "--native",
                    "--rate",
                    "997",
                    "--format",
                    "speedscope",
                    "--subprocesses",
                    "--duration",
                    str(int(args.duration)),
                    "--output",
                    str(target),
                    "--pid",
                    str(srv.pid),
                ]
            )
        elif args.profiler == "perf":
            target = result_file.with_suffix(".perf.data")
            profiler = subprocess.Popen(
                [
                    "perf",
                    "record",
                    "-g",
                    "-F",
                    "999",
                    "-o",
                    str(target),
                    "-p",
                    str(srv.pid),
                    "--",
                    "sleep",
                    str(args.duration),
                ]
            )
        time.sleep(0.5 if profiler else 0)  # the profiler attaches first
        with procstat.TreeMonitor(srv.pid) as monitor:
            result = _wrk(srv, bodies, args, args.duration)
        cpu_us = monitor.stop().cpu_s / max(1, result.requests) * 1e6
        if profiler is not None:
            profiler.wait()
        print(
            f"{args.stack}: {result.rps:,.0f} req/s at {args.connections} conns, "
            f"server CPU {cpu_us:.1f} µs/request"
        )
        if args.profiler == "py-spy":
            for frame, self_pct, total_pct in _speedscope_top(target, args.top):
                print(f"{self_pct:6.2f} %  {total_pct:6.2f} %  {frame}")
        elif args.profiler == "perf":
            for part, share in _perf_parts(target).items():
                print(f"{share:6.1f} %  {share / 100 * cpu_us:6.1f} µs/request  {part}")
        for n in range(1, args.steps + 1):
            step = _wrk(srv, bodies, args, args.step_duration)
            ms = {q: step.histogram.get_value_at_percentile(q) / 1000 for q in (50, 99, 99.9)}
            print(
                f"step {n}: {step.rps:,.0f} req/s, p50 {ms[50]:.2f} ms, p99 {ms[99]:.2f} ms, "
                f"p99.9 {ms[99.9]:.2f} ms, max {step.histogram.get_max_value() / 1000:.2f} ms"
            )
        if args.syscalls:
            strace = subprocess.Popen(
                [
                    "strace",
                    "-c",
                    "-f",
                    "-o",
                    str(result_file.with_suffix(".strace")),
                    "-p",
                    str(srv.pid),
                ]
            )
            time.sleep(0.5)
            counted = _wrk(srv, bodies, args, 3.0)
            strace.terminate()
            strace.wait()
            text = result_file.with_suffix(".strace").read_text()
            print(f"syscalls over {counted.requests:,} requests (strace slows the server):")
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
