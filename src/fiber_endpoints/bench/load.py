"""The load lab: every stack under the same load, on the same CPU, interleaved in short slices.

Modes (each a list of steps; every step stores its whole latency distribution as an HDR
histogram, plus the server's CPU and memory cost from the OS):

- ``closed``: wrk, N keep-alive connections, each sending its next request as soon as the
  previous answer arrives; fixed duration after a discarded warm-up.
- ``open``: oha at constant rates (``bench/oha.py`` says why not vegeta); latency from each
  request's INTENDED send time (no coordinated omission). Rates are ``--rate`` if given, else
  fractions of that stack's median closed-loop peak. Throughput at SLO:
  ``headline.max_rate_under_slo``.
- ``batch``: wrk on ``/inference/batch`` with the workload's batch sizes (shrunk to the body limit).

Interleaving: every stack is started once, pinned to the server CPUs from exec (an idle server
costs nothing there), and each step runs as ``rounds`` short slices per stack, the order rotated
every round: stack A, B, C at 16 connections, then B, C, A, ... A noisy shared machine that moves
by 2x within minutes then moves every stack alike, and each ratio comes with the spread of its
per-round ratios. The generators' ceiling (``bench/ceiling.py``) is measured before and after;
how far it moved is the run's drift, flagged past ``ceiling.MAX_DRIFT``.

Results: ``schema.LoadResult``, one ``LoadRun`` record per stack and round. Statistics, ratios
and plots are computed later, from these records, by ``fiber-endpoints report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fiber_endpoints import headline
from fiber_endpoints.bench import ceiling, oha, procstat, progress, servers, tools, wrk
from fiber_endpoints.bench.placement import Placement
from fiber_endpoints.bench.protocols import Contract, WireProtocol
from fiber_endpoints.bench.schema import LOAD_SCHEMA, ClosedStep, LoadResult, LoadRun, OpenStep
from fiber_endpoints.bench.workload import Workload

if TYPE_CHECKING:
    from fiber_endpoints.bench.context import RunContext

ALL_MODES = ("closed", "open", "batch")


@dataclass(frozen=True)
class LoadConfig:
    """Every knob of the load phase. The defaults are the short run; :meth:`full` the full one."""

    modes: tuple[str, ...] = ALL_MODES
    connections: tuple[int, ...] = (1, 16, 64, 256)
    duration_s: float = 1.0  # one slice of one step of one stack
    warmup_s: float = 0.3
    rates: tuple[float, ...] = ()  # empty: fractions of each stack's closed-loop peak
    # 0.5, 0.8 and 0.95 of the peak: the tail issue 14 asks for (report/fast_vs_go.py)
    rate_fractions: tuple[float, ...] = (0.3, 0.5, 0.8, 0.95)
    open_duration_s: float = 1.0
    open_warmup_s: float = 0.3
    slo_ms: float = headline.DEFAULT_SLO_MS
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1000)
    batch_connections: int = 4
    batch_duration_s: float = 0.8
    batch_warmup_s: float = 0.2
    rounds: int = 3  # slices per step and stack
    ceiling: bool = True
    timeout_s: float = 10.0

    @classmethod
    def full(cls) -> LoadConfig:
        return cls(
            connections=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            duration_s=2.0,
            warmup_s=0.5,
            rate_fractions=(0.1, 0.25, 0.4, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0),
            open_duration_s=3.0,
            open_warmup_s=1.0,
            batch_duration_s=2.0,
            batch_warmup_s=0.5,
            rounds=5,
        )

    def __post_init__(self) -> None:
        unknown = set(self.modes) - set(ALL_MODES)
        if unknown:
            raise ValueError(f"unknown load modes {sorted(unknown)}; known: {', '.join(ALL_MODES)}")
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")

    def estimate_s(self, n_stacks: int) -> float:
        """Seconds the phase will take (for the time left), ceilings included."""
        per_round = 0.0
        if "closed" in self.modes:
            per_round += len(self.connections) * (self.duration_s + self.warmup_s)
        if "open" in self.modes:
            n = len(self.rates or self.rate_fractions)
            per_round += n * (self.open_duration_s + self.open_warmup_s)
        if "batch" in self.modes:
            per_round += len(self.batch_sizes) * (self.batch_duration_s + self.batch_warmup_s)
        ceilings = 2 * 4.0 if self.ceiling else 0.0
        return self.rounds * n_stacks * per_round + ceilings


@dataclass(frozen=True)
class Target:
    """What the load goes to: a URL, the pid whose process tree is the server's cost, and the
    extra headers every request carries (``--header``)."""

    name: str
    url: str
    pid: int | None
    headers: Mapping[str, str] = field(default_factory=dict)


def closed_step(
    target: Target,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    duration_s: float,
    warmup_s: float,
    client_cpus: Sequence[int],
    timeout_s: float = 10.0,
) -> ClosedStep:
    """One wrk run (after a discarded warm-up), with the server's cost over the measured part."""
    common: dict[str, Any] = {"connections": connections, "cpus": client_cpus,
                              "timeout_s": timeout_s}  # fmt: skip
    common["headers"] = target.headers
    if warmup_s > 0:
        wrk.run(target.url, path, bodies, duration_s=warmup_s, **common)
    with _monitor(target.pid) as mon:
        result = wrk.run(target.url, path, bodies, duration_s=duration_s, **common)
    step: ClosedStep = result.to_json()  # type: ignore[assignment]
    if mon is not None:
        step["server"] = mon.stop().to_json(result.requests)  # type: ignore[typeddict-item]
    return step


def open_step(
    target: Target,
    path: str,
    bodies: Sequence[bytes],
    rate: float,
    config: LoadConfig,
    cpus: Sequence[int],
) -> OpenStep:
    with _monitor(target.pid) as mon:
        result = oha.run(
            target.url,
            path,
            bodies,
            rate=rate,
            duration_s=config.open_duration_s,
            warmup_s=config.open_warmup_s,
            cpus=cpus,
            timeout_s=config.timeout_s,
            headers=target.headers,
        )
    step: OpenStep = result.to_json()  # type: ignore[assignment]
    if mon is not None:
        step["server"] = mon.stop().to_json(result.total)  # type: ignore[typeddict-item]
    return step


@contextmanager
def _monitor(pid: int | None) -> Iterator[procstat.TreeMonitor | None]:
    if pid is None:
        yield None
        return
    with procstat.TreeMonitor(pid) as mon:
        yield mon


def generators() -> dict[str, str]:
    return {
        "closed": tools.version(tools.wrk()),
        "open": tools.version(tools.oha()),
        "batch": tools.version(tools.wrk()),
    }


def rotation(names: Sequence[str], round_: int) -> list[str]:
    """The order of the stacks in one round: rotated by one each round."""
    k = round_ % len(names) if names else 0
    return [*names[k:], *names[:k]]


Slice = Callable[[Target, int], Any]  # (target, round) -> the step's raw record


class _Slices:
    """Runs one step on every stack, ``rounds`` times, in rotated order, and files each result
    under its (round, stack) record. A stack whose server died or whose step failed keeps the
    error and sits out the rest of the phase."""

    def __init__(
        self,
        running: Mapping[str, servers.Server],
        rounds: int,
        tick: progress.Update,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.running, self.rounds, self.tick = running, rounds, tick
        self.names = list(running)
        self.targets = {n: Target(n, s.url, s.pid, dict(headers or {}))
                        for n, s in running.items()}  # fmt: skip
        self.done = 0.0  # estimated seconds so far, for the progress bar
        self.records: dict[tuple[int, str], LoadRun] = {}
        for r in range(rounds):
            for position, name in enumerate(rotation(self.names, r)):
                self.records[(r, name)] = {
                    "round": r,
                    "position": position,
                    "stack": name,
                    "error": None,
                    "closed": [],
                    "open": [],
                    "batch": [],
                }

    def of(self, name: str) -> list[LoadRun]:
        return [self.records[(r, name)] for r in range(self.rounds)]

    def each(self, what: str, mode: str, seconds: float, step: Slice) -> None:
        for r in range(self.rounds):
            for name in rotation(self.names, r):
                record = self.records[(r, name)]
                if any(rec["error"] for rec in self.of(name)):
                    continue
                self.tick(self.done, f"round {r + 1}/{self.rounds} {name}: {what}")
                try:
                    self._alive(name)
                    record[mode].append(step(self.targets[name], r))  # type: ignore[literal-required]
                except (servers.ServerError, OSError, RuntimeError, ValueError) as exc:
                    record["error"] = f"{what}: {type(exc).__name__}: {exc}"
                self.done += seconds

    def _alive(self, name: str) -> None:
        proc = self.running[name].process
        if proc is not None and proc.poll() is not None:
            raise servers.ServerError(
                f"{name} exited with code {proc.returncode}; log: {self.running[name].log_path}"
            )

    def in_order(self) -> list[LoadRun]:
        return [self.records[(r, n)] for r in range(self.rounds) for n in rotation(self.names, r)]


def run(
    running: Mapping[str, servers.Server],
    rows: Workload,
    where: Placement,
    config: LoadConfig,
    tick: progress.Update | None = None,
    protocol: WireProtocol | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Every mode of ``config`` against every server in ``running`` (ours, started pinned, and
    ``--target`` endpoints, without server CPU/RSS: no process of ours to read), over
    ``protocol`` (default: the contract), or a server's own (a peer's); ``headers`` on every
    request."""
    tick = tick or (lambda _done, _what: None)
    proto = protocol or Contract()
    speaks = {n: s.protocol or proto for n, s in running.items()}
    client = where.client_cpus[:1]  # one generator thread, on one CPU
    wires = {p.name: p for p in [proto, *speaks.values()]}  # each protocol once
    singles = {name: rows.single_bodies(p) for name, p in wires.items()}
    bodies = singles[proto.name]
    # One list of batch sizes for every server: what fits every protocol's body.
    sizes = (min((rows.batch_sizes(config.batch_sizes, p) for p in wires.values()), key=max)
             if "batch" in config.modes else [])  # fmt: skip
    result: LoadResult = {
        "schema": LOAD_SCHEMA,
        "generators": generators(),
        "placement": {"client_cpus": client, "server_cpus": where.server_cpus},
        "config": {**asdict(config), "batch_sizes": sizes},
        "ceiling": None,
        "runs": [],
    }
    if config.ceiling:
        tick(0, "generator ceiling (trivial server)")
        result["ceiling"] = ceiling.measure(where.server_cpus, client, bodies)
    slices = _Slices(running, config.rounds, tick, headers)

    def single(name: str) -> tuple[str, list[bytes]]:
        """A server's single-row path and bodies, in the protocol it speaks."""
        wire = speaks[name]
        return wire.path(False), singles[wire.name]

    def closed(connections: int) -> Slice:
        return lambda t, _r: closed_step(t, *single(t.name), connections, config.duration_s,
                                         config.warmup_s, client, config.timeout_s)  # fmt: skip

    def opened(rates: Mapping[str, list[float]], i: int) -> Slice:
        return lambda t, _r: open_step(t, *single(t.name), rates[t.name][i], config, client)

    def batch(size: int) -> Slice:
        made = {name: rows.batch_bodies(size, protocol=p) for name, p in wires.items()}
        return lambda t, _r: _batch_step(t, speaks[t.name].path(True), made[speaks[t.name].name],
                                         size, config, client)  # fmt: skip

    if "closed" in config.modes:
        for c in config.connections:
            slices.each(f"closed c={c}", "closed", config.duration_s + config.warmup_s, closed(c))
    if "open" in config.modes:
        rates: dict[str, list[float]] = {}
        for n in slices.names:
            if any(r["error"] for r in slices.of(n)):
                continue
            try:
                rates[n] = _rates(config, slices.of(n), slices.targets[n], *single(n), client)
            except (ValueError, OSError, RuntimeError) as exc:  # no peak: every closed step failed
                slices.records[(0, n)]["error"] = f"open loop: {exc}"
        planned = len(config.rates or config.rate_fractions)
        for i in range(planned):
            seconds = config.open_duration_s + config.open_warmup_s
            slices.each(f"open rate {i + 1}", "open", seconds, opened(rates, i))
        for record in slices.records.values():
            if len(record["open"]) == planned:  # a round cut short has no rate at SLO, not 0
                record["slo"] = {
                    "slo_ms": config.slo_ms,
                    "max_rate": headline.max_rate_under_slo(record["open"], config.slo_ms),
                }
    for size in sizes:
        seconds = config.batch_duration_s + config.batch_warmup_s
        slices.each(f"batch {size} rows", "batch", seconds, batch(size))
    if config.ceiling:
        tick(slices.done, "generator ceiling again (drift)")
        result["ceiling_end"] = ceiling.measure(where.server_cpus, client, bodies)
    for record in slices.in_order():
        record["health"] = running[record["stack"]].health
        record["external"] = running[record["stack"]].process is None
        result["runs"].append(record)
    return result


def _rates(
    config: LoadConfig,
    records: Sequence[LoadRun],
    target: Target,
    path: str,
    bodies: Sequence[bytes],
    client: Sequence[int],
) -> list[float]:
    """Open-loop rates of one stack: ``--rate``, else fractions of its median closed peak."""
    peak = headline.median([headline.peak_rps(r["closed"]) for r in records if r["closed"]])
    if peak is None and not config.rates:
        # No closed sweep to derive rates from: one short probe at 16 connections.
        probe = closed_step(target, path, bodies, 16, 1.0, 0.3, client,
                            config.timeout_s)  # fmt: skip
        peak = float(probe["rps"])
    return headline.plan_rates(peak, config.rate_fractions, config.rates)


def _batch_step(
    target: Target,
    path: str,
    bodies: Sequence[bytes],
    size: int,
    config: LoadConfig,
    client: Sequence[int],
) -> ClosedStep:
    step = closed_step(target, path, bodies, config.batch_connections,
                       config.batch_duration_s, config.batch_warmup_s, client,
                       config.timeout_s)  # fmt: skip
    step["rows"] = size
    step["rows_per_s"] = round(step["rps"] * size, 2)
    return step


@dataclass(frozen=True)
class LoadPhase:
    """The load lab as a ``bench`` phase. It starts every parity-checked stack of ours afresh
    (the sequential protocol's servers have stopped by then) and loads ``--target`` endpoints
    where they are."""

    config: LoadConfig
    name: str = "load"
    needs_servers: bool = False

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> LoadResult:
        with ExitStack() as stack:
            live: dict[str, servers.Server] = {}
            for name, server in running.items():
                if server.process is None:  # a --target: reached, not started
                    live[name] = server
                    continue
                progress.console.print(f"load: starting {name} on CPUs {ctx.placement.server_cpus}")
                live[name] = stack.enter_context(ctx.start(name))
            total = self.config.estimate_s(len(live))
            with progress.bar("load", total, " s") as update:
                return run(live, ctx.workload, ctx.placement, self.config, update, ctx.protocol,
                           ctx.config.headers)  # fmt: skip
