"""The cost of tracing: each stack timed with tracing off and on, interleaved, per call.

A ``bench`` phase: after the sequential protocol, for every stack ``bench`` started itself, a
second instance is started on the same CPUs with tracing on (every request sampled, spans sent
by OTLP/HTTP to a real Jaeger on the client's CPUs). The two instances then run the same
sequential protocol interleaved sample by sample, so drift hits both alike, and the difference
of their per-call latencies is the price of tracing. Requests carry no ``traceparent``: the
server starts (and samples) every trace itself, as behind a load balancer that does not trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiber_endpoints import stats
from fiber_endpoints.bench import sequential, servers
from fiber_endpoints.trace import jaeger

if TYPE_CHECKING:
    from fiber_endpoints.bench.context import RunContext

TRACED_SUFFIX = "+otel"


def measure(
    running: Mapping[str, servers.Server],
    model_path: Path,
    rows: Sequence[Sequence[float]],
    *,
    samples: int,
    calls: int,
    client_kind: str = "raw",
    warmup_calls: int = 200,
    client_cpus: list[int] | None = None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Raw latencies of every stack in ``running`` (tracing off) and of a traced twin."""
    own = {n: s for n, s in running.items() if s.process is not None}
    if not own:
        return {"skipped": "no stack started by bench (targets are not restarted with tracing)"}
    out: dict[str, Any] = {"samples": samples, "calls": calls, "client": client_kind}
    with ExitStack() as stack:
        jaeger.install()  # a no-op when cached
        store = jaeger.start(log_dir=log_dir, cpus=client_cpus)
        stack.callback(jaeger.stop, store)
        assert store.install is not None
        out["jaeger"] = {"kind": store.install.kind, "version": store.install.version}
        targets: dict[str, str] = {}
        for name, off in own.items():
            on = stack.enter_context(
                servers.running(
                    name,
                    model_path,
                    cpus=off.cpus,
                    log_dir=log_dir,
                    env=jaeger.otel_env(store, service_name=name),
                )
            )
            targets[name] = off.url
            targets[name + TRACED_SUFFIX] = on.url
        raw = sequential.run(
            targets,
            rows,
            samples=samples,
            calls=calls,
            client_kind=client_kind,
            warmup_calls=warmup_calls,
        )
    out["stacks"] = {
        name: {"off": raw[name].to_json(), "on": raw[name + TRACED_SUFFIX].to_json()}
        for name in own
    }
    return out


def summarize(cost: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per stack: p50/p99 per call with tracing off and on (µs), and the differences."""
    rows: dict[str, dict[str, float]] = {}
    for name, raw in cost.get("stacks", {}).items():
        off = [v * 1e6 for sample in raw["off"]["latencies_s"] for v in sample]
        on = [v * 1e6 for sample in raw["on"]["latencies_s"] for v in sample]
        p_off, p_on = stats.percentiles(off), stats.percentiles(on)
        rows[name] = {
            "off_p50_us": p_off["p50"],
            "on_p50_us": p_on["p50"],
            "diff_p50_us": p_on["p50"] - p_off["p50"],
            "ratio_p50": p_on["p50"] / p_off["p50"],
            "off_p99_us": p_off["p99"],
            "on_p99_us": p_on["p99"],
            "diff_p99_us": p_on["p99"] - p_off["p99"],
            "diff_mean_us": sum(on) / len(on) - sum(off) / len(off),
        }
    return rows


def markdown(cost: Mapping[str, Any]) -> str:
    lines = [
        "| stack | p50 off µs | p50 on µs | cost per call p50 µs | on/off | p99 off µs "
        "| p99 on µs | cost per call mean µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in summarize(cost).items():
        lines.append(
            f"| {name} | {r['off_p50_us']:,.1f} | {r['on_p50_us']:,.1f} | "
            f"{r['diff_p50_us']:+,.1f} | {r['ratio_p50']:.2f}× | {r['off_p99_us']:,.1f} | "
            f"{r['on_p99_us']:,.1f} | {r['diff_mean_us']:+,.1f} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class TracingCostPhase:
    """``bench --tracing-cost``: needs the parity-checked servers (the untraced side)."""

    name: str = "tracing_cost"
    needs_servers: bool = True

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> dict[str, Any]:
        config = ctx.config
        return measure(
            running,
            config.model_path,
            ctx.workload.timed_rows.tolist(),
            samples=config.samples,
            calls=config.calls,
            client_kind=config.client,
            warmup_calls=config.warmup_calls,
            client_cpus=ctx.placement.client_cpus,
            log_dir=ctx.log_dir,
        )
