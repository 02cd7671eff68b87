"""The proof of concept's protocol: S samples × C sequential keep-alive calls per stack,
interleaved across stacks, on the workload's rows; every single call's latency is kept.

Interleaving: in each sample every stack runs its C calls in turn, and the order of the stacks
rotates from sample to sample, so slow drifts of this shared machine hit every stack alike.
The loopback floor (the trivial C server, same client, same placement) runs as one more row: a
diagnostic of what the machine and the client cost, never a headline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fiber_endpoints.bench import keep_awake, progress, servers
from fiber_endpoints.bench.client import Client, make_client, parse_server_timing
from fiber_endpoints.bench.protocols import Contract, WireProtocol
from fiber_endpoints.bench.schema import SequentialResult, SequentialStack

if TYPE_CHECKING:
    from fiber_endpoints.bench.context import RunContext


class ProtocolError(RuntimeError):
    """A stack answered a timed call with something other than 200."""


@dataclass
class StackCalls:
    """Raw results of one stack: latencies[sample][call] in seconds, and per call the
    server's own ``Server-Timing`` (inference ms, app ms; None when absent)."""

    latencies_s: list[list[float]] = field(default_factory=list)
    server_timing_ms: list[tuple[float | None, float | None]] = field(default_factory=list)
    client_cpu_s: float = 0.0  # the client thread's CPU time over all timed calls

    def to_json(self) -> SequentialStack:
        calls = sum(len(s) for s in self.latencies_s)
        return {
            "latencies_s": self.latencies_s,
            "server_timing_ms": [list(t) for t in self.server_timing_ms],
            "client_cpu_per_call_s": self.client_cpu_s / calls if calls else None,
        }


Progress = Callable[[int, int], None]  # (done samples, total samples)


def run(
    targets: Mapping[str, str],
    rows: Sequence[Sequence[float]],
    samples: int = 50,
    calls: int = 100,
    client_kind: str = "raw",
    warmup_calls: int = 200,
    progress: Progress | None = None,
    protocol: WireProtocol | None = None,
    headers: Mapping[str, str] | None = None,
    protocols: Mapping[str, WireProtocol] | None = None,
) -> dict[str, StackCalls]:
    """``protocols``: a target's own protocol where it is not ``protocol`` (a peer's)."""
    proto = protocol or Contract()
    names = list(targets)
    clients: dict[str, Client] = {n: make_client(client_kind, targets[n]) for n in names}
    array = np.asarray(rows, dtype=np.float64)

    def requests(name: str, client: Client) -> list[Any]:
        own = (protocols or {}).get(name, proto)
        bodies = [own.body(array[i : i + 1], False) for i in range(len(array))]
        return [client.prepare("POST", own.path(False), b, dict(headers or {})) for b in bodies]

    prepared = {n: requests(n, c) for n, c in clients.items()}
    results = {n: StackCalls() for n in names}
    try:
        for n in names:  # warm-up: connections, caches, JITs, lazy imports
            for i in range(warmup_calls):
                _call(n, clients[n], prepared[n][i % len(rows)])
        for s in range(samples):
            k = s % len(names)
            for n in names[k:] + names[:k]:
                _sample(n, clients[n], prepared[n], calls, results[n])
            if progress:
                progress(s + 1, samples)
    finally:
        for c in clients.values():
            c.close()
    return results


def _call(name: str, client: Client, request: Any) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    resp = client.send(request)
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise ProtocolError(f"{name}: HTTP {resp.status}: {resp.body[:200]!r}")
    return elapsed, parse_server_timing(resp.headers.get("server-timing"))


def _sample(
    name: str, client: Client, requests: Sequence[Any], calls: int, out: StackCalls
) -> None:
    latencies: list[float] = []
    cpu0 = time.thread_time()
    for i in range(calls):
        elapsed, timing = _call(name, client, requests[i % len(requests)])
        latencies.append(elapsed)
        out.server_timing_ms.append((timing.get("inference"), timing.get("app")))
    out.client_cpu_s += time.thread_time() - cpu0
    out.latencies_s.append(latencies)


@dataclass(frozen=True)
class SequentialPhase:
    """The protocol on every parity-checked stack, plus the floor; with ``keep_awake`` the same
    again with the CPUs kept out of idle (stored beside the default, never instead of it)."""

    name: str = "sequential"
    needs_servers: bool = True
    keep_awake: bool = False

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> SequentialResult:
        config = ctx.config
        rows = ctx.workload.timed_rows.tolist()
        targets = {n: s.url for n, s in running.items()}
        diagnostic = []
        with ExitStack() as stack:
            if config.floor:
                floor = stack.enter_context(servers.floor_server(ctx.placement.server_cpus))
                targets[servers.FLOOR] = floor.url
                diagnostic.append(servers.FLOOR)
            if self.keep_awake:
                everywhere = sorted({*ctx.placement.client_cpus, *ctx.placement.server_cpus})
                stack.enter_context(keep_awake.spinners(everywhere))
            label = "sequential" + (" (keep-awake)" if self.keep_awake else "")
            with progress.bar(label, config.samples, " samples") as update:
                raw = run(
                    targets,
                    rows,
                    samples=config.samples,
                    calls=config.calls,
                    client_kind=config.client,
                    warmup_calls=config.warmup_calls,
                    progress=lambda done, _total: update(done, f"{config.client} client"),
                    protocol=ctx.protocol,
                    headers=config.headers,
                    protocols={n: ctx.protocol_of(s) for n, s in running.items()},
                )
        return {
            "client": config.client,
            "samples": config.samples,
            "calls": config.calls,
            "rows": len(rows),
            "keep_awake": self.keep_awake,
            "stacks": {n: r.to_json() for n, r in raw.items()},
            "diagnostic": diagnostic,
        }
