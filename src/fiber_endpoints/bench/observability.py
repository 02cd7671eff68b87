"""``bench --observability-cost``: what metrics and tracing cost each stack, as interleaved A/B.

For every stack ``bench`` started itself, four instances on the same CPUs: **off** (no metrics,
no tracing), **metrics** (``GET /metrics`` on, tracing off), **trace 1 %** and **trace 100 %**
(metrics off; ``parentbased_traceidratio`` at 0.01 and 1.0, spans exported by OTLP/HTTP to a
real Jaeger on the client's CPUs; requests carry no ``traceparent``, so every decision is the
server's own). Then, in one run:

- **p50**: the sequential protocol over all instances, interleaved sample by sample (one sample
  = ``calls`` back-to-back calls; the order rotates every sample), so each variant's sample *i*
  ran right beside the off instance's sample *i*. Cost = median(variant) - median(off), with a
  95 % CI from resampling whole samples, the same indices on both sides
  (:func:`stats.bootstrap_diff_of_medians_paired_blocks`).
- **req/s and p99 at 64 connections**: closed loop (wrk) in short slices, the instances of a
  stack alternating slice by slice in a rotating order for ``rounds`` rounds; each variant's
  slice is paired with the off slice of the same round. Cost = mean ratio over rounds, 95 % CI
  from resampling rounds (:func:`stats.bootstrap_mean_ratio`).

A goal is met when the CI's upper end is within it (:data:`GOALS`), not when one run happens
to be: :func:`verdicts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fiber_endpoints import metrics, stats
from fiber_endpoints.bench import schema, sequential, servers, wrk
from fiber_endpoints.bench.progress import console

if TYPE_CHECKING:
    from fiber_endpoints.bench.context import RunContext

OFF = "off"
VARIANTS = ("metrics", "trace1", "trace100")
LABELS = {OFF: "nothing on", "metrics": "metrics on", "trace1": "tracing 1 %",
          "trace100": "tracing 100 %"}  # fmt: skip
SAMPLERS = {"trace1": "0.01", "trace100": "1.0"}
CONNECTIONS = 64
# (variant, measure) -> the goal; measures: p50 µs added, req/s ratio, p99 ratio.
GOALS: dict[tuple[str, str], float] = {
    ("metrics", "p50_us"): 3.0,
    ("metrics", "rps_ratio"): 0.97,
    ("trace1", "p50_us"): 5.0,
    ("trace100", "p50_us"): 20.0,
    ("trace100", "rps_ratio"): 0.85,
    ("trace100", "p99_ratio"): 1.5,
}
GOAL_STACKS = ("fiber", "asgi-msgspec")


@dataclass(frozen=True)
class ObservabilityConfig:
    rounds: int = 6
    slice_s: float = 2.0
    connections: int = CONNECTIONS


def variant_env(variant: str, otel: Mapping[str, str]) -> dict[str, str]:
    """The environment of one instance: metrics on only for ``metrics``, tracing only for the
    ``trace*`` ones (``otel``: endpoint and service name)."""
    env = {metrics.METRICS_ENV: "1" if variant == "metrics" else "0"}
    if variant in SAMPLERS:
        env.update(otel)
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = SAMPLERS[variant]
    return env


def _name(stack: str, variant: str) -> str:
    return f"{stack}/{variant}"


def measure(ctx: RunContext, running: Mapping[str, servers.Server]) -> schema.ObservabilityCost:
    from fiber_endpoints.trace import jaeger

    config = ctx.config
    own = {n: s for n, s in running.items() if s.process is not None}
    settings = ObservabilityConfig(config.observability_rounds, config.observability_slice_s)
    out: schema.ObservabilityCost = {
        "samples": config.samples,
        "calls": config.calls,
        "rounds": settings.rounds,
        "slice_s": settings.slice_s,
        "connections": settings.connections,
        "stacks": {},
    }
    if not own:
        out["skipped"] = "no stack started by bench (targets are not restarted)"
        return out
    rows = ctx.workload.timed_rows.tolist()
    bodies = ctx.workload.single_bodies()
    with ExitStack() as stack:
        jaeger.install()
        store = jaeger.start(log_dir=ctx.log_dir, cpus=ctx.placement.client_cpus)
        stack.callback(jaeger.stop, store)
        urls: dict[str, str] = {}
        for name, server in own.items():
            otel = jaeger.otel_env(store, service_name=name)
            for variant in (OFF, *VARIANTS):
                started = servers.running(
                    name,
                    config.model_path,
                    cpus=server.cpus,
                    log_dir=ctx.log_dir,
                    env={**config.server_env, **variant_env(variant, otel)},
                )
                urls[_name(name, variant)] = stack.enter_context(started).url
        console.print("observability cost: sequential, every instance interleaved")
        raw = sequential.run(
            urls,
            rows,
            samples=config.samples,
            calls=config.calls,
            client_kind=config.client,
            warmup_calls=config.warmup_calls,
        )
        closed = _closed_slices(own, urls, bodies, settings, ctx.placement.client_cpus)
    for name in own:
        out["stacks"][name] = {
            variant: {
                "latencies_s": raw[_name(name, variant)].latencies_s,
                "closed": closed[_name(name, variant)],
            }
            for variant in (OFF, *VARIANTS)
        }
    return out


def _closed_slices(
    own: Mapping[str, servers.Server],
    urls: Mapping[str, str],
    bodies: Sequence[bytes],
    settings: ObservabilityConfig,
    client_cpus: Sequence[int],
) -> dict[str, list[schema.ObservabilitySlice]]:
    """Per instance, one wrk slice per round (the stack's instances alternate, order rotated)."""
    slices: dict[str, list[schema.ObservabilitySlice]] = {n: [] for n in urls}
    order = [OFF, *VARIANTS]
    for name in own:
        for instance in order:  # warm-up at the measured concurrency, discarded
            wrk.run(urls[_name(name, instance)], "/inference", bodies,
                    connections=settings.connections, duration_s=1.0, cpus=client_cpus)  # fmt: skip
    for r in range(settings.rounds):
        console.print(f"observability cost: closed-loop round {r + 1}/{settings.rounds}")
        for name in own:
            k = r % len(order)
            for variant in order[k:] + order[:k]:
                result = wrk.run(
                    urls[_name(name, variant)],
                    "/inference",
                    bodies,
                    connections=settings.connections,
                    duration_s=settings.slice_s,
                    cpus=client_cpus,
                )
                latency = stats.histogram_percentiles(result.histogram)
                step: schema.ObservabilitySlice = {
                    "rps": result.rps,
                    "p99_us": latency["p99"],
                    "p50_us": latency["p50"],
                    "errors": sum(result.errors.values()),
                }
                slices[_name(name, variant)].append(step)
    return slices


def summarize(cost: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """stack -> variant -> the costs against ``off``, each with its CI:
    ``p50_us`` (added µs at p50, sequential), ``rps_ratio`` and ``p99_ratio`` (closed loop)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, variants in cost.get("stacks", {}).items():
        off = variants[OFF]
        off_blocks = [[v * 1e6 for v in block] for block in off["latencies_s"]]
        rows: dict[str, dict[str, float]] = {}
        for variant in VARIANTS:
            on = variants[variant]
            blocks = [[v * 1e6 for v in block] for block in on["latencies_s"]]
            p50 = stats.bootstrap_diff_of_medians_paired_blocks(blocks, off_blocks)
            rps = stats.bootstrap_mean_ratio([s["rps"] for s in on["closed"]],
                                             [s["rps"] for s in off["closed"]])  # fmt: skip
            p99 = stats.bootstrap_mean_ratio([s["p99_us"] for s in on["closed"]],
                                             [s["p99_us"] for s in off["closed"]])  # fmt: skip
            rows[variant] = {
                "off_p50_us": stats.bootstrap_median_blocks(off_blocks)["median"],
                "p50_us": p50["diff"],
                "p50_us_low": p50["low"],
                "p50_us_high": p50["high"],
                "off_rps": sum(s["rps"] for s in off["closed"]) / max(1, len(off["closed"])),
                "rps_ratio": rps["ratio"],
                "rps_ratio_low": rps["low"],
                "rps_ratio_high": rps["high"],
                "p99_ratio": p99["ratio"],
                "p99_ratio_low": p99["low"],
                "p99_ratio_high": p99["high"],
            }
        table[name] = rows
    return table


def verdicts(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Each goal on each fast stack: met when the CI's worse end is within it; else by how much."""
    out = []
    for name in GOAL_STACKS:
        if name not in table:
            continue
        for (variant, measure), goal in GOALS.items():
            row = table[name][variant]
            if measure == "rps_ratio":  # lower is worse: the CI's low end
                worst, point = row["rps_ratio_low"], row["rps_ratio"]
                ok = worst >= goal
                text = f"req/s x{point:.3f} (CI low x{worst:.3f}), goal >= x{goal:.2f}"
            else:
                worst, point = row[f"{measure}_high"], row[measure]
                ok = worst <= goal
                unit = " µs" if measure == "p50_us" else "x"
                text = f"{measure} {point:+.1f}{unit} (CI high {worst:+.1f}{unit}), goal <= {goal}"
            out.append(f"{name} {LABELS[variant]}: {'met' if ok else 'MISSED'}: {text}")
    return out


def markdown(cost: Mapping[str, Any]) -> str:
    """The observability cost table, every cost with its 95 % CI."""
    lines = [
        "| stack | variant | p50 off µs | p50 added µs [95 % CI] "
        f"| req/s off ({cost.get('connections', CONNECTIONS)} conn.) "
        "| req/s × off [95 % CI] | p99 × off [95 % CI] |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rows in summarize(cost).items():
        for variant, r in rows.items():
            lines.append(
                f"| {name} | {LABELS[variant]} | {r['off_p50_us']:,.1f} | "
                f"{r['p50_us']:+.1f} [{r['p50_us_low']:+.1f}, {r['p50_us_high']:+.1f}] | "
                f"{r['off_rps']:,.0f} | {r['rps_ratio']:.3f} [{r['rps_ratio_low']:.3f}, "
                f"{r['rps_ratio_high']:.3f}] | {r['p99_ratio']:.2f} [{r['p99_ratio_low']:.2f}, "
                f"{r['p99_ratio_high']:.2f}] |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class ObservabilityCostPhase:
    """``bench --observability-cost``: starts its own instances, so it runs after the
    parity-checked servers stopped (they would sit idle on the same CPUs)."""

    name: str = "observability_cost"
    needs_servers: bool = False

    def run(
        self, ctx: RunContext, running: Mapping[str, servers.Server]
    ) -> schema.ObservabilityCost:
        return measure(ctx, running)
