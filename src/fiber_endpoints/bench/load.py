"""The load lab: every stack under the same load, one at a time, on the same CPU, in rounds.

Modes (each a list of steps; every step stores its whole latency distribution as an HDR
histogram, plus the server's CPU and memory cost from the OS):

- ``closed``: wrk, N keep-alive connections (1, 2, 4, ... 64), each sending its next request as
  soon as the previous answer arrives; fixed duration after a discarded warm-up.
- ``open``: vegeta at constant rates; latency from each request's INTENDED send time (no
  coordinated omission). Rates are ``--rate`` if given, else fractions of that stack's closed-loop
  peak in the same round. The highest rate whose p99 stays under ``--slo-ms`` with no errors and
  ≥ 95 % of the rate achieved is the stack's throughput at SLO (at the resolution of the rates
  tried).
- ``batch``: wrk on ``/inference/batch`` with 1, 10, 100, 1,000 rows per request.

Placement: servers start pinned (from exec) to ``server_cpus`` (cpu 1), the generators run on
``client_cpus`` (cpu 0). Each round starts each stack fresh, in an order rotated every round
(interleaved), so drift on a shared machine is spread over all stacks. The generators' own
ceiling is measured against a trivial C server (``trivial_server.c``) on the server CPU and stored
with the run: a stack whose numbers approach it is measured up to the generator, not its own limit.

Results (JSON-serialisable, the ``"load"`` key of the results file)::

    {
      "schema": "fiber-endpoints.load/1",
      "generators": {"closed": "wrk ...", "open": "vegeta v12.13.0"},
      "placement": {"client_cpus": [0], "server_cpus": [1]},
      "config": {...LoadConfig...},
      "ceiling": {"server": "...", "closed": [STEP...], "open": [OPEN_STEP...]},
      "runs": [{"round": 0, "position": 0, "stack": "fastapi", "health": {...},
                "error": null | "why it did not run",
                "closed": [STEP...], "open": [OPEN_STEP...], "batch": [BATCH_STEP...],
                "slo": {"slo_ms": 5.0, "max_rate": 1800.0 | null}}],
    }
    STEP = {"connections", "duration_s", "requests", "rps", "errors", "non2xx", "error_kinds",
            "latency_us": {"count", "min", "mean", "max", "p50", "p90", "p99", "p99.9"},
            "hdr": "<HdrHistogram base64, µs>", "client_cpu_s", "client_cpu_util",
            "server": {"cpu_s", "cpu_s_per_1k", "wall_s", "cpu_util", "peak_rss_bytes",
                       "vm_hwm_bytes", "processes"}}
    OPEN_STEP = {"rate", "duration_s", "requests", "requests_total", "ok", "achieved_rps",
                 "errors", "non2xx", "latency_us" (from intended send), "hdr",
                 "service_latency_us" (from actual send), "service_hdr", "max_send_lag_us",
                 "client_cpu_s", "server": {...}}
    BATCH_STEP = STEP + {"rows", "rows_per_s"}

Statistics, ratios and plots are computed later from this, by ``fiber-endpoints report``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiber_endpoints import contract
from fiber_endpoints.bench import procstat, servers, tools, vegeta, wrk
from fiber_endpoints.cpus import pin_on_exec

SCHEMA = "fiber-endpoints.load/1"
ALL_MODES = ("closed", "open", "batch")

Progress = Callable[[str, float], None]
"""``progress(what_now, seconds_done)``: called before and after each step."""


@dataclass
class LoadConfig:
    """Every knob of the load phase. The defaults are the short run (about 20 s per stack and
    round); :meth:`full` is the full sweep."""

    modes: tuple[str, ...] = ALL_MODES
    connections: tuple[int, ...] = (1, 16, 64)
    duration_s: float = 1.5
    warmup_s: float = 0.5
    rates: tuple[float, ...] = ()  # empty: fractions of the closed-loop peak
    rate_fractions: tuple[float, ...] = (0.3, 0.6, 0.9)
    open_duration_s: float = 1.5
    open_warmup_s: float = 0.5
    slo_ms: float = 10.0
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1000)
    batch_connections: int = 4
    batch_duration_s: float = 1.0
    batch_warmup_s: float = 0.3
    rounds: int = 2
    client_cpus: tuple[int, ...] = (0,)
    server_cpus: tuple[int, ...] = (1,)
    ceiling: bool = True
    timeout_s: float = 10.0
    startup_estimate_s: float = 3.0  # for the time-left estimate only

    @classmethod
    def full(cls) -> LoadConfig:
        return cls(
            connections=(1, 2, 4, 8, 16, 32, 64),
            duration_s=5.0,
            warmup_s=2.0,
            rate_fractions=(0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9, 1.0),
            open_duration_s=5.0,
            open_warmup_s=2.0,
            batch_duration_s=3.0,
            batch_warmup_s=1.0,
            rounds=3,
        )

    def seconds_per_stack(self) -> float:
        s = self.startup_estimate_s
        if "closed" in self.modes:
            s += len(self.connections) * (self.duration_s + self.warmup_s)
        if "open" in self.modes:
            s += len(self.rates or self.rate_fractions) * (
                self.open_duration_s + self.open_warmup_s
            )
        if "batch" in self.modes:
            s += len(self.batch_sizes) * (self.batch_duration_s + self.batch_warmup_s)
        return s

    def estimate_s(self, n_stacks: int) -> float:
        return self.rounds * n_stacks * self.seconds_per_stack() + (5.0 if self.ceiling else 0)


def default_placement() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Client on the first usable CPU, servers on the second (both on one CPU if only one)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return (cpus[0],), (cpus[1],)
    return (cpus[0],), (cpus[0],)


# --- requests ------------------------------------------------------------------------------------


def encode_body(payload: Any) -> bytes:
    """The one encoding every stack receives: compact JSON, floats as ``repr`` (round-trip)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def single_bodies(rows: np.ndarray) -> list[bytes]:
    return [encode_body({"data": [float(v) for v in row]}) for row in rows]


def batch_bodies(rows: np.ndarray, size: int, variants: int | None = None) -> list[bytes]:
    """``variants`` batches of ``size`` rows, each starting at a different seed row (rotating)."""
    n = len(rows)
    variants = variants or max(1, min(n, 20_000 // max(size, 1)))
    out = []
    for v in range(min(variants, n)):
        idx = [(v + i) % n for i in range(size)]
        out.append(encode_body({"data": [[float(x) for x in rows[i]] for i in idx]}))
    return out


# --- arguments -----------------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.replace(" ", "").split(",") if x)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.replace(" ", "").split(",") if x)


def _cpus(text: str) -> tuple[int, ...]:
    return _ints(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The load phase's flags (``bench``). Unset flags take the short or ``--full`` defaults."""
    g = parser.add_argument_group("load (wrk closed loop, vegeta open loop, batch sweep)")
    g.add_argument(
        "--load",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the load phase (default: yes)",
    )
    g.add_argument(
        "--full",
        action="store_true",
        help="full sweep: 1..64 connections, 8 rates, 5 s steps, 3 rounds",
    )
    g.add_argument(
        "--load-modes",
        type=lambda s: tuple(s.split(",")),
        default=None,
        metavar="closed,open,batch",
        help="which load modes to run (default: all)",
    )
    g.add_argument(
        "--connections",
        type=_ints,
        default=None,
        metavar="1,16,64",
        help="closed-loop connection counts",
    )
    g.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds measured per closed-loop / open-loop step",
    )
    g.add_argument(
        "--load-warmup",
        type=float,
        default=None,
        metavar="S",
        help="seconds of discarded warm-up before each step",
    )
    g.add_argument(
        "--rate",
        type=_floats,
        default=None,
        metavar="R[,R...]",
        help="open-loop rates in requests/s (default: fractions of the closed peak)",
    )
    g.add_argument(
        "--slo-ms",
        type=float,
        default=None,
        metavar="MS",
        help="p99 bound for throughput at SLO (default 10 ms)",
    )
    g.add_argument("--batch-sizes", type=_ints, default=None, metavar="1,10,100,1000")
    g.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds; each starts every stack fresh, order rotated",
    )
    g.add_argument(
        "--client-cpus",
        type=_cpus,
        default=None,
        metavar="0",
        help="CPUs of the load generators (default: first CPU)",
    )
    g.add_argument(
        "--server-cpus",
        type=_cpus,
        default=None,
        metavar="1",
        help="CPUs of every server (default: second CPU)",
    )
    g.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        default=True,
        help="skip measuring the generators' ceiling",
    )


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    base = LoadConfig.full() if getattr(args, "full", False) else LoadConfig()
    client, server = default_placement()
    overrides: dict[str, Any] = {"client_cpus": client, "server_cpus": server}
    mapping = {
        "load_modes": "modes",
        "connections": "connections",
        "duration": "duration_s",
        "load_warmup": "warmup_s",
        "rate": "rates",
        "slo_ms": "slo_ms",
        "batch_sizes": "batch_sizes",
        "rounds": "rounds",
        "client_cpus": "client_cpus",
        "server_cpus": "server_cpus",
    }
    for arg, attr in mapping.items():
        value = getattr(args, arg, None)
        if value is not None:
            overrides[attr] = value
    if getattr(args, "duration", None) is not None:
        overrides["open_duration_s"] = args.duration
    if getattr(args, "load_warmup", None) is not None:
        overrides["open_warmup_s"] = args.load_warmup
    overrides["ceiling"] = getattr(args, "ceiling", True)
    config = LoadConfig(**{**asdict(base), **overrides})
    unknown = set(config.modes) - set(ALL_MODES)
    if unknown:
        raise ValueError(f"unknown load modes {sorted(unknown)}; known: {', '.join(ALL_MODES)}")
    return config


# --- steps ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """What the load goes to: a URL, and the pid whose process tree is the server's cost."""

    name: str
    url: str
    pid: int | None


def closed_step(
    target: Target,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    config: LoadConfig,
    duration_s: float | None = None,
    warmup_s: float | None = None,
) -> dict[str, Any]:
    """One wrk run (after a discarded warm-up), with the server's cost over the measured part."""
    duration = config.duration_s if duration_s is None else duration_s
    warmup = config.warmup_s if warmup_s is None else warmup_s
    common = {"connections": connections, "cpus": config.client_cpus, "timeout_s": config.timeout_s}
    if warmup > 0:
        wrk.run(target.url, path, bodies, duration_s=warmup, **common)  # type: ignore[arg-type]
    with _monitor(target.pid) as mon:
        result = wrk.run(target.url, path, bodies, duration_s=duration, **common)  # type: ignore[arg-type]
    step = result.to_json()
    if mon is not None:
        step["server"] = mon.stop().to_json(result.requests)
    return step


def open_step(
    target: Target, path: str, bodies: Sequence[bytes], rate: float, config: LoadConfig
) -> dict[str, Any]:
    with _monitor(target.pid) as mon:
        result = vegeta.run(
            target.url,
            path,
            bodies,
            rate=rate,
            duration_s=config.open_duration_s,
            warmup_s=config.open_warmup_s,
            cpus=config.client_cpus,
            timeout_s=config.timeout_s,
        )
    step = result.to_json()
    if mon is not None:
        step["server"] = mon.stop().to_json(result.total)
    return step


@contextlib.contextmanager
def _monitor(pid: int | None) -> Iterator[procstat.TreeMonitor | None]:
    if pid is None:
        yield None
        return
    with procstat.TreeMonitor(pid) as mon:
        yield mon


def meets_slo(step: dict[str, Any], slo_ms: float) -> bool:
    lat = step["latency_us"]
    return bool(
        lat.get("count", 0) > 0
        and lat["p99"] <= slo_ms * 1000.0
        and step["errors"] == 0
        and step["non2xx"] == 0
        and step["achieved_rps"] >= 0.95 * step["rate"]
        and step.get("unsent", 0) <= 0.01 * step.get("scheduled", 0)
    )


def max_rate_under_slo(open_steps: Sequence[dict[str, Any]], slo_ms: float) -> float | None:
    """The highest rate tried whose p99 (from intended send) met the SLO."""
    ok = [s["rate"] for s in open_steps if meets_slo(s, slo_ms)]
    return max(ok) if ok else None


def plan_rates(config: LoadConfig, closed: Sequence[dict[str, Any]]) -> list[float]:
    if config.rates:
        return list(config.rates)
    peak = max((s["rps"] for s in closed), default=0.0)
    if peak <= 0:
        raise RuntimeError("no closed-loop peak to derive open-loop rates from: give --rate")
    return [float(max(1, round(f * peak))) for f in config.rate_fractions]


def measure(
    target: Target,
    config: LoadConfig,
    bodies: Sequence[bytes],
    batches: dict[int, list[bytes]],
    tick: Callable[[str, float], None],
) -> dict[str, Any]:
    """Every mode of ``config`` against one running target."""
    out: dict[str, Any] = {"closed": [], "open": [], "batch": []}
    if "closed" in config.modes:
        for c in config.connections:
            tick(f"closed c={c}", 0)
            out["closed"].append(closed_step(target, contract.INFERENCE_PATH, bodies, c, config))
            tick(f"closed c={c}", config.duration_s + config.warmup_s)
    if "open" in config.modes:
        closed = out["closed"]
        if not closed and not config.rates:
            # No closed sweep to derive rates from: one short probe at 16 connections.
            closed = [
                closed_step(
                    target,
                    contract.INFERENCE_PATH,
                    bodies,
                    16,
                    config,
                    duration_s=1.0,
                    warmup_s=0.3,
                )
            ]
        for rate in plan_rates(config, closed):
            tick(f"open {rate:g}/s", 0)
            out["open"].append(open_step(target, contract.INFERENCE_PATH, bodies, rate, config))
            tick(f"open {rate:g}/s", config.open_duration_s + config.open_warmup_s)
        out["slo"] = {
            "slo_ms": config.slo_ms,
            "max_rate": max_rate_under_slo(out["open"], config.slo_ms),
        }
    if "batch" in config.modes:
        for size in config.batch_sizes:
            tick(f"batch {size} rows", 0)
            step = closed_step(
                target,
                contract.BATCH_PATH,
                batches[size],
                config.batch_connections,
                config,
                duration_s=config.batch_duration_s,
                warmup_s=config.batch_warmup_s,
            )
            step["rows"] = size
            step["rows_per_s"] = round(step["rps"] * size, 2)
            out["batch"].append(step)
            tick(f"batch {size} rows", config.batch_duration_s + config.batch_warmup_s)
    return out


# --- the generators' ceiling ---------------------------------------------------------------------


def measure_ceiling(config: LoadConfig, bodies: Sequence[bytes]) -> dict[str, Any]:
    """wrk and vegeta against the trivial C server placed like a stack: the most they can tell."""
    import subprocess

    binary = tools.trivial_server()
    port = servers.free_port()
    pin = set(config.server_cpus)
    proc = subprocess.Popen(
        [str(binary), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin_on_exec(pin),
        start_new_session=True,
    )
    target = Target("trivial-server", f"http://127.0.0.1:{port}", proc.pid)
    try:
        _wait_port(port)
        quick = LoadConfig(**{**asdict(config), "duration_s": 1.5, "warmup_s": 0.3})
        closed = [
            closed_step(target, contract.INFERENCE_PATH, bodies, c, quick)
            for c in sorted({16, max(config.connections)})
        ]
        peak = max(s["rps"] for s in closed)
        # Ask vegeta for more than wrk reached: what it achieves is its own ceiling.
        open_cfg = LoadConfig(**{**asdict(config), "open_duration_s": 1.5, "open_warmup_s": 0.3})
        opened = [open_step(target, contract.INFERENCE_PATH, bodies, round(peak), open_cfg)]
    finally:
        proc.terminate()
        proc.wait(5)
    return {
        "server": "trivial-server (C, epoll, constant answer; src/fiber_endpoints/bench/"
        "trivial_server.c)",
        "closed": closed,
        "open": opened,
        "closed_rps": round(peak, 1),
        "open_rps": opened[0]["achieved_rps"],
    }


def _wait_port(port: int, timeout: float = 5.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"trivial server did not listen on {port}")


# --- the whole phase -----------------------------------------------------------------------------


@dataclass
class _Clock:
    total: float
    done: float = 0.0
    report: Progress | None = None
    prefix: str = ""
    log: list[str] = field(default_factory=list)

    def tick(self, what: str, seconds: float) -> None:
        self.done += seconds
        if self.report:
            self.report(f"{self.prefix}{what}", self.done)


def generators() -> dict[str, str]:
    return {
        "closed": tools.version(tools.wrk()),
        "open": tools.version(tools.vegeta()),
        "batch": tools.version(tools.wrk()),
    }


def run(
    stack_names: Sequence[str],
    model: Path,
    config: LoadConfig,
    progress: Progress | None = None,
    log_dir: Path | None = None,
    targets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The load phase: ceiling, then ``rounds`` × every stack (started fresh, pinned), each
    through every mode. Returns the ``"load"`` results (see the module docstring).

    ``targets`` (name -> URL) are endpoints already running elsewhere: loaded the same way, but
    not restarted between rounds and without server CPU/RSS (no process of ours to read)."""
    from fiber_endpoints.model import seed_rows

    rows = seed_rows()
    bodies = single_bodies(rows)
    batches = {n: batch_bodies(rows, n) for n in config.batch_sizes}
    # Check every body is accepted by the contract's limits before any load.
    for n, bs in batches.items():
        if any(len(b) > contract.MAX_BODY_BYTES for b in bs):
            raise ValueError(f"batch of {n} rows is over the contract's body limit")
    clock = _Clock(total=config.estimate_s(len(stack_names)), report=progress)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "generators": generators(),
        "placement": {
            "client_cpus": list(config.client_cpus),
            "server_cpus": list(config.server_cpus),
        },
        "config": asdict(config),
        "ceiling": None,
        "runs": [],
    }
    if config.ceiling:
        clock.prefix = "generator ceiling: "
        clock.tick("trivial server", 0)
        result["ceiling"] = measure_ceiling(config, bodies)
        clock.tick("trivial server", 5.0)
    targets = targets or {}
    names = list(stack_names) + [n for n in targets if n not in stack_names]
    for r in range(config.rounds):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for position, name in enumerate(order):
            clock.prefix = f"round {r + 1}/{config.rounds} {name}: "
            clock.tick("starting", 0)
            run_record: dict[str, Any] = {
                "round": r,
                "position": position,
                "stack": name,
                "error": None,
            }
            started = time.monotonic()
            # The machine may be shared: how busy it was is part of the record.
            run_record["loadavg_before"] = list(os.getloadavg())
            try:
                if name in targets:
                    external = servers.Server(name, targets[name].rstrip("/"))
                    run_record["health"] = servers.wait_healthy(external, timeout=30)
                    run_record["external"] = True
                    target = Target(name, external.url, None)
                    run_record.update(measure(target, config, bodies, batches, clock.tick))
                    run_record["wall_s"] = round(time.monotonic() - started, 2)
                    result["runs"].append(run_record)
                    continue
                with servers.running(
                    name, model, cpus=list(config.server_cpus), log_dir=log_dir
                ) as server:
                    clock.tick("started", config.startup_estimate_s)
                    run_record["health"] = server.health
                    target = Target(name, server.url, server.pid)
                    run_record.update(measure(target, config, bodies, batches, clock.tick))
            except (servers.ServerError, OSError, RuntimeError) as exc:
                run_record["error"] = f"{type(exc).__name__}: {exc}"
            run_record["wall_s"] = round(time.monotonic() - started, 2)
            result["runs"].append(run_record)
    return result


def summary_table(load: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stack, medians over rounds: closed-loop peak, p99 at the peak, throughput at SLO."""
    by_stack: dict[str, list[dict[str, Any]]] = {}
    for run_record in load.get("runs", []):
        if not run_record.get("error"):
            by_stack.setdefault(run_record["stack"], []).append(run_record)
    table = []
    for name, runs in by_stack.items():
        peaks = [max((s["rps"] for s in r.get("closed", [])), default=float("nan")) for r in runs]
        slo = [r.get("slo", {}).get("max_rate") for r in runs]
        slo_ok = [s for s in slo if s is not None]
        table.append(
            {
                "stack": name,
                "rounds": len(runs),
                "peak_rps": float(np.median(peaks)) if peaks else None,
                "max_rate_under_slo": float(np.median(slo_ok)) if slo_ok else None,
            }
        )
    return table


def phase(args: argparse.Namespace) -> Callable[[dict[str, Any], dict[str, Any], Any], Any]:
    """The load phase for ``bench/runner.py``, as
    ``runner.Phase("load", phase(args), needs_servers=False)``.

    Only parity-checked stacks are loaded. Each is started afresh per round (the runner's own
    instance has been stopped by then); ``--target`` endpoints are loaded where they are.
    Placement comes from the results document, so it is the run's placement."""
    config = config_from_args(args)

    def run_phase(healthy: dict[str, Any], doc: dict[str, Any], bench: Any) -> dict[str, Any]:
        placement = doc.get("placement", {})
        cfg = LoadConfig(
            **{
                **asdict(config),
                "client_cpus": tuple(placement.get("client_cpus", config.client_cpus))[:1],
                "server_cpus": tuple(placement.get("server_cpus", config.server_cpus)),
            }
        )
        ours = [n for n, s in healthy.items() if getattr(s, "process", None) is not None]
        external = {n: s.url for n, s in healthy.items() if getattr(s, "process", None) is None}
        with progress_bar(cfg, len(healthy)) as report:
            return run(ours, Path(bench.model_path), cfg, report, targets=external)

    return run_phase


@contextlib.contextmanager
def progress_bar(config: LoadConfig, n_stacks: int, enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar over the phase's estimated seconds, with the time left."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    total = config.estimate_s(n_stacks)
    columns = (
        TextColumn("[bold]load[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, disable=not enabled, transient=False) as bar:
        task = bar.add_task("", total=total)

        def report(what: str, done: float) -> None:
            bar.update(task, description=what, completed=min(done, total))

        yield report
        bar.update(task, completed=total, description="done")


def summary_markdown(load: dict[str, Any]) -> str:
    """The throughput-at-SLO table printed at the end of ``bench`` (the report has more)."""
    cfg = load.get("config", {})
    ceiling = load.get("ceiling") or {}
    measured = ceiling.get("closed_rps") and ceiling.get("open_rps")
    ceiling_text = (
        f"{ceiling['closed_rps']:,.0f} / {ceiling['open_rps']:,.0f} req/s"
        if measured
        else "not measured (--no-ceiling)"
    )
    lines = [
        f"\nunder load ({load.get('generators', {}).get('closed', '?')} closed loop, "
        f"{load.get('generators', {}).get('open', '?')} open loop; generator ceiling "
        f"{ceiling_text}):",
        "",
        "| stack | rounds | closed-loop peak req/s | "
        f"max rate with p99 <= {cfg.get('slo_ms')} ms |",
        "|---|---|---|---|",
    ]
    for row in summary_table(load):
        peak = f"{row['peak_rps']:,.0f}" if row["peak_rps"] is not None else "-"
        slo = row["max_rate_under_slo"]
        lines.append(
            f"| {row['stack']} | {row['rounds']} | {peak} | "
            f"{f'{slo:,.0f}' if slo is not None else 'none of the rates tried'} |"
        )
    failed = [r for r in load.get("runs", []) if r.get("error")]
    lines += [f"round {r['round']} {r['stack']}: {r['error']}" for r in failed]
    return "\n".join(lines)
