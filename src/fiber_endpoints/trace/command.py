"""``fiber-endpoints trace``: every request of every selected stack traced into a real Jaeger and
broken down into inference, server outside inference, and client outside the server span."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiber_endpoints import model as model_mod
from fiber_endpoints import stacks as stack_registry
from fiber_endpoints.bench import placement, servers, workload
from fiber_endpoints.bench.results import machine_info
from fiber_endpoints.paths import PROJECT_ROOT
from fiber_endpoints.trace import client, jaeger, plots
from fiber_endpoints.trace.breakdown import (
    COMPONENTS,
    ClientCall,
    Problem,
    RequestBreakdown,
    breakdown,
    median_request,
    summarize,
)
from fiber_endpoints.trace.spans import Span

RESULTS_DIR = PROJECT_ROOT / "results" / "trace"


@dataclass
class StackRun:
    name: str
    calls: list[ClientCall]
    results: list[RequestBreakdown | Problem] = field(default_factory=list)

    @property
    def ok(self) -> list[RequestBreakdown]:
        return [r for r in self.results if isinstance(r, RequestBreakdown)]

    @property
    def problems(self) -> list[Problem]:
        return [r for r in self.results if isinstance(r, Problem)]


def fetch_all(store: jaeger.Jaeger, runs: Sequence[StackRun], wait: float = 20.0) -> None:
    """Fetch every call's trace, retrying incomplete ones until ``wait`` seconds have passed."""
    pending = {(i, j) for i, run in enumerate(runs) for j in range(len(run.calls))}
    results: dict[tuple[int, int], RequestBreakdown | Problem] = {}
    deadline = time.monotonic() + wait
    while pending:
        for key in sorted(pending):
            call = runs[key[0]].calls[key[1]]
            spans: list[Span] | None = store.fetch(call.trace_id)
            results[key] = breakdown(call, spans)
            if isinstance(results[key], RequestBreakdown):
                pending.discard(key)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for i, run in enumerate(runs):
        run.results = [results[(i, j)] for j in range(len(run.calls))]


def _table_rows(summaries: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(stack, part label, its p50/p90/p99/share) in the order both tables show them."""
    for name, s in summaries.items():
        for comp in (*COMPONENTS, "client"):
            label = "client-observed total" if comp == "client" else comp.replace("_", " ")
            yield name, label, s[comp]


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    w = max([5, *(len(n) for n in summaries)])
    head = f"{'stack':<{w}} {'part':<26} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'share':>7}"
    lines = [head, "-" * len(head)]
    for name, label, e in _table_rows(summaries):
        lines.append(
            f"{name:<{w}} {label:<26} {e['p50']:>9,.1f} {e['p90']:>9,.1f} "
            f"{e['p99']:>9,.1f} {e['share'] * 100:>6.1f}%"
        )
    return "\n".join(lines)


def markdown_table(summaries: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| stack | part | p50 µs | p90 µs | p99 µs | share of total |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, label, e in _table_rows(summaries):
        lines.append(
            f"| {name} | {label} | {e['p50']:,.1f} | {e['p90']:,.1f} | "
            f"{e['p99']:,.1f} | {e['share'] * 100:.1f} % |"
        )
    return "\n".join(lines)


def _request_row(r: RequestBreakdown | Problem, call: ClientCall) -> dict[str, Any]:
    row = call.to_json()
    if isinstance(r, RequestBreakdown):
        row.update(
            server_ns=r.server_ns,
            inference_ns=r.inference_ns,
            server_span=r.server.name,
            service=r.server.service,
        )
    else:
        row.update(problem=r.kind, detail=r.detail)
    return row


def _summarize_runs(
    runs: Sequence[StackRun],
) -> tuple[bool, dict[str, dict[str, Any]], dict[str, RequestBreakdown]]:
    """Print how many traces came back complete; (any missing, summaries, median requests)."""
    failed = False
    summaries: dict[str, dict[str, Any]] = {}
    medians: dict[str, RequestBreakdown] = {}
    for r in runs:
        found = len(r.ok)
        print(
            f"{r.name}: {found}/{len(r.calls)} traces found complete in Jaeger "
            f"({100.0 * found / max(1, len(r.calls)):.1f} %)"
        )
        for p in r.problems[:20]:
            print(f"  missing or broken: {p}")
        if len(r.problems) > 20:
            print(f"  ... and {len(r.problems) - 20} more (see results.json)")
        failed = failed or bool(r.problems) or not r.calls
        if r.ok:
            summaries[r.name] = summarize(r.ok)
            medians[r.name] = median_request(r.ok)
    if summaries:
        print()
        print(format_table(summaries))
    return failed, summaries, medians


def run(
    stacks: Sequence[str],
    requests: int,
    out: Path,
    model: Path,
    *,
    warmup: int = 200,
    server_cpus: list[int] | None = None,
    client_cpus: list[int] | None = None,
    otlp_endpoint: str | None = None,
    query_url: str | None = None,
    rows_file: Path | None = None,
) -> int:
    """The whole ``trace`` command; returns the exit code (1 when any trace is missing)."""
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    rows = workload.load(model, rows_file).timed_rows.tolist()
    if otlp_endpoint and query_url:
        store = jaeger.Jaeger(otlp_endpoint, query_url)
        print(f"using Jaeger at {query_url} (OTLP {otlp_endpoint})")
    else:
        jaeger.install()  # scripts/install-jaeger.sh: a no-op when cached
        store = jaeger.start(log_dir=logs, cpus=client_cpus)
        assert store.install is not None
        print(
            f"started {store.install.kind} {store.install.version} ({store.install.binary}): "
            f"OTLP {store.otlp_endpoint}, query {store.query_url}"
        )
    runs: list[StackRun] = []
    own_affinity = os.sched_getaffinity(0)
    try:
        for name in stacks:
            env = jaeger.otel_env(store, service_name=name)
            server = servers.start(name, model, cpus=server_cpus, env=env, log_dir=logs)
            try:
                if client_cpus:
                    os.sched_setaffinity(0, client_cpus)
                host, port = server.host_port
                calls = client.send_traced(host, port, rows, requests, warmup=warmup)
            finally:
                os.sched_setaffinity(0, own_affinity)
                code = servers.stop(server)  # SIGTERM: the stack flushes its spans
            bad = [c for c in calls if c.status != 200]
            print(
                f"{name}: sent {len(calls)} traced requests ({len(bad)} not 200), "
                f"stopped with exit code {code}"
            )
            runs.append(StackRun(name, calls))
        fetch_all(store, runs)
    finally:
        if store.process is not None:
            jaeger.stop(store)

    failed, summaries, medians = _summarize_runs(runs)
    results = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "machine": machine_info(),
        "placement": {"server_cpus": server_cpus, "client_cpus": client_cpus},
        "jaeger": {
            "kind": store.install.kind if store.install else "external",
            "version": store.install.version if store.install else None,
            "query_url": store.query_url,
        },
        "model": str(model),
        "requests_per_stack": requests,
        "warmup": warmup,
        "summaries": summaries,
        "median_trace_ids": {n: m.call.trace_id for n, m in medians.items()},
        "requests": {
            r.name: [_request_row(x, c) for x, c in zip(r.results, r.calls, strict=True)]
            for r in runs
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "breakdown.md").write_text(markdown_table(summaries) + "\n")
    written = [out / "results.json", out / "breakdown.md"]
    if summaries:
        written.append(plots.breakdown_chart(summaries, out / "breakdown.png"))
        written.append(plots.waterfall_chart(medians, out / "waterfall-median.png"))
    print("\nwrote " + ", ".join(str(p) for p in written))
    if failed:
        print("FAILED: not every traced request was found complete in Jaeger", file=sys.stderr)
        return 1
    return 0


def _cpu_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _run_from_args(args: argparse.Namespace) -> int:
    where = placement.plan(client_cpus=args.client_cpus, server_cpus=args.server_cpus)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return run(
        [s.strip() for s in args.stacks.split(",") if s.strip()],
        args.requests,
        args.out or RESULTS_DIR / stamp,
        args.model.resolve(),
        warmup=args.warmup,
        server_cpus=where.server_cpus,
        client_cpus=where.client_cpus,
        otlp_endpoint=args.otlp_endpoint,
        query_url=args.query_url,
        rows_file=args.rows,
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``trace`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "trace",
        help="trace every request of each stack into Jaeger and break the time down",
        description=__doc__,
    )
    p.add_argument(
        "--stacks",
        default=",".join(stack_registry.STACKS),
        help="comma-separated stack names (default: %(default)s)",
    )
    p.add_argument("--requests", type=int, default=1000, help="traced requests per stack")
    p.add_argument("--warmup", type=int, default=200, help="unsampled requests first")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: results/trace/<timestamp>)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=model_mod.default_model(),
    )
    p.add_argument(
        "--rows",
        type=Path,
        default=None,
        help="CSV/Parquet rows to send (default: the golden file's, else generated from the model)",
    )
    p.add_argument(
        "--server-cpus",
        type=_cpu_list,
        default=None,
        help="CPUs for the stacks, e.g. 1 (default: the last CPU)",
    )
    p.add_argument(
        "--client-cpus",
        type=_cpu_list,
        default=None,
        help="CPUs for the client and Jaeger (default: the others)",
    )
    p.add_argument(
        "--otlp-endpoint",
        default=None,
        help="use this running Jaeger/collector's OTLP/HTTP endpoint instead of "
        "starting one (needs --query-url)",
    )
    p.add_argument("--query-url", default=None, help="its Jaeger query API base URL")
    p.set_defaults(func=_run_from_args)
    return p
