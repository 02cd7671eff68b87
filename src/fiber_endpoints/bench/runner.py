"""``bench``: start (or reach) every stack, check parity, run the phases, write raw results.

Order matters: a stack is timed only after it returned LightGBM's predictions on the workload's
rows; a stack that fails parity is reported and left out of every timing. The run's verdict
(``doc["verdict"]``) says why it failed, if it did: parity, a stack that answered mostly errors
under load, a stack that did not run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from fiber_endpoints import headline
from fiber_endpoints.bench import context, parity, protocols, results, schema, servers
from fiber_endpoints.bench.context import BenchConfig, Phase, RunContext
from fiber_endpoints.bench.load import LoadPhase
from fiber_endpoints.bench.progress import console
from fiber_endpoints.bench.sequential import ProtocolError, SequentialPhase


def phases(config: BenchConfig) -> list[Phase]:
    """The phases after parity, in order, as the configuration asks for them."""
    out: list[Phase] = [SequentialPhase()]
    compared: list[Phase] = [SequentialPhase()]
    if config.keep_awake:
        out.append(SequentialPhase(name="sequential_keep_awake", keep_awake=True))
    if config.tracing_cost:
        from fiber_endpoints.trace.cost import TracingCostPhase

        out.append(TracingCostPhase())
    if config.observability_cost:
        from fiber_endpoints.bench.observability import ObservabilityCostPhase

        out.append(ObservabilityCostPhase())
    if config.startup:
        from fiber_endpoints.bench.startup import StartupPhase

        out.append(StartupPhase())
    if config.load is not None:
        out.append(LoadPhase(config.load))
        compared.append(LoadPhase(config.load))
    if config.v2_comparison:
        out.append(V2ComparisonPhase(tuple(compared)))
    if config.soak_minutes > 0:
        from fiber_endpoints.bench.reliability import SoakPhase

        out.append(SoakPhase(config.soak_minutes))
    return out


@contextmanager
def started_servers(
    ctx: RunContext,
    doc: dict[str, Any],
    problems: list[str],
    names: Sequence[str] | None = None,
) -> Iterator[dict[str, servers.Server]]:
    """Every selected stack running: ours and the peers started pinned, ``--target`` ones
    reached. A stack that refuses the model is recorded as not eligible; one that fails to start
    (a peer too: not installed, crashed) is a problem, reported and never timed."""
    config = ctx.config
    with ExitStack() as stack:
        running: dict[str, servers.Server] = {}
        for name in config.stacks if names is None else names:
            try:
                if name in config.targets:
                    server = servers.Server(
                        name, config.targets[name].rstrip("/"), health_path=ctx.protocol.health_path
                    )
                    servers.wait_healthy(server, timeout=30, headers=config.headers)
                else:
                    console.print(f"starting [bold]{name}[/] on CPUs {ctx.placement.server_cpus}")
                    server = stack.enter_context(ctx.start(name))
            except servers.ServerError as exc:
                eligible = isinstance(exc, servers.UnsupportedModel)
                why = f"not eligible for this model: {exc}" if eligible else f"did not start: {exc}"
                console.print(f"[yellow]{name}[/] {why}")
                doc["stacks"][name] = {
                    "url": config.targets.get(name, ""),
                    "started_by_bench": name not in config.targets,
                    "health": {},
                    "cpus": ctx.placement.server_cpus,
                    "parity": {"ok": False, "checked_rows": 0, "errors": [why]},
                    "not_eligible": str(exc) if eligible else None,
                    **_peer_record(name),
                }
                if not eligible:
                    problems.append(f"{name}: {why}")
                continue
            running[name] = server
        yield running


def _peer_record(name: str) -> dict[str, Any]:
    """What a peer is, for its record (empty for our stacks and targets)."""
    from fiber_endpoints import peers

    if name not in peers.PEERS:
        return {}
    peer = peers.PEERS[name]
    record = {
        "description": peer.description,
        "protocol": peer.protocol,
        "on": peer.on,
        "ours": peer.ours,
        "requirements": f"peers/{peer.venv}/requirements.txt",
    }
    return {"peer": record}


def check_parity(
    ctx: RunContext, running: Mapping[str, servers.Server], doc: dict[str, Any]
) -> dict[str, servers.Server]:
    """Parity of every running stack, each over the protocol it speaks; returns the ones that
    may be timed."""
    eligible = {}
    for name, server in running.items():
        proto = ctx.protocol_of(server)
        check = parity.check(server.url, ctx.workload.golden, proto, ctx.config.headers)
        doc["stacks"][name] = {
            "url": server.url,
            "started_by_bench": server.process is not None,
            "health": server.health,
            "cpus": server.cpus,
            "parity": check.to_json(),
            "protocol": proto.name,
            **_peer_record(name),
        }
        if check.ok:
            console.print(
                f"parity [green]ok[/] {name} ({server.health.get('predictor', '?')}, "
                f"{proto.name}): {check.checked_rows} rows match LightGBM (single and batch)"
            )
            eligible[name] = server
        else:
            console.print(f"parity [red]FAILED[/] {name}: not timed")
            for err in check.errors:
                console.print(f"  {err}")
    return eligible


@dataclass(frozen=True)
class V2ComparisonPhase:
    """Our stacks (those the run starts) and the peers, over the Open Inference Protocol V2
    (BentoML over its own JSON API), through the same phases as the run itself: parity first,
    then the sequential protocol, then the load lab, each with a context whose protocol is V2.
    Stored under ``v2_comparison``: the contract's p50 sits next to V2's for each of our stacks,
    and the peers next to ours, in one run."""

    phases: tuple[Phase, ...]
    name: str = "v2_comparison"
    needs_servers: bool = False

    def names(self, config: BenchConfig) -> list[str]:
        ours = [n for n in config.stacks if n not in config.targets]
        return list(dict.fromkeys([*ours, *config.peers]))

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> Mapping[str, Any]:
        v2ctx = replace(ctx, protocol=protocols.get("v2", ctx.config.model_name))
        part: dict[str, Any] = {"protocol": v2ctx.protocol.name, "stacks": {},
                                "fairness": fairness(ctx)}  # fmt: skip
        problems: list[str] = []
        console.print("[bold]V2 comparison[/]: our stacks and the peers over V2")
        with started_servers(v2ctx, part, problems, self.names(ctx.config)) as live:
            eligible = check_parity(v2ctx, live, part)
            problems += [f"{n}: parity failed, not timed" for n in live if n not in eligible]
            for phase in (p for p in self.phases if p.needs_servers and eligible):
                problems += _run_phase(phase, v2ctx, eligible, part)
        for phase in (p for p in self.phases if not p.needs_servers and eligible):
            problems += _run_phase(phase, v2ctx, eligible, part)
        problems += load_problems(part.get("load"))
        part["problems"] = problems
        return part


def fairness(ctx: RunContext) -> dict[str, Any]:
    """What is the same for every stack and peer of the comparison, recorded with the results."""
    from fiber_endpoints import peers

    cpus = ctx.placement.server_cpus
    ours = [n for n in ctx.config.stacks if n not in ctx.config.targets]
    on = {n: OURS_ON for n in ours}
    on.update({n: p.on for n, p in peers.PEERS.items() if n in ctx.config.peers})
    return {
        "server_cpus": cpus,
        "predictor_threads": len(set(cpus)) if cpus else None,
        "placement": "every server pinned to the server CPUs from exec, started one way "
        "(servers.launch), loaded one at a time in interleaved slices",
        "on": on,
    }


OURS_ON = "Prometheus metrics on (GET /metrics), tracing off (no OTEL_* set), no gRPC"


def run(config: BenchConfig) -> tuple[Path, schema.ResultsDoc]:
    """Run the benchmark; returns the results file and the document written to it. The
    calling process is the client: it is pinned for the run and given its CPUs back after
    (a notebook or script calls this more than once)."""
    before = os.sched_getaffinity(0)
    try:
        return _run(config)
    finally:
        os.sched_setaffinity(0, before)


def _run(config: BenchConfig) -> tuple[Path, schema.ResultsDoc]:
    config = replace(config, stacks=list(dict.fromkeys([*config.stacks, *config.targets])))
    ctx = context.make(config)
    console.print(f"workload: {ctx.workload.source} ({ctx.workload.num_features} features)")
    doc: dict[str, Any] = {
        "schema": schema.SCHEMA,
        "created": datetime.now(UTC).isoformat(),
        "command": config.command,
        "machine": results.machine_info(),
        "placement": ctx.placement.to_json(),
        "config": config.to_json(),
        "model": {
            "path": str(config.model_path),
            "objective": ctx.workload.objective,
            "num_features": ctx.workload.num_features,
            "num_class": ctx.workload.num_class,
        },
        "workload": {**ctx.workload.describe(), "protocol": ctx.protocol.name},
        "stacks": {},
    }
    problems: list[str] = []
    ctx.placement.pin_client()
    todo = phases(config)
    with started_servers(ctx, doc, problems) as running:
        eligible = check_parity(ctx, running, doc)
        problems += [f"{n}: parity failed, not timed" for n in running if n not in eligible]
        if eligible:
            for phase in (p for p in todo if p.needs_servers):
                problems += _run_phase(phase, ctx, eligible, doc)
    if eligible:
        for phase in (p for p in todo if not p.needs_servers):
            problems += _run_phase(phase, ctx, eligible, doc)
    problems += load_problems(doc.get("load"))
    problems += [f"v2_comparison: {p}" for p in doc.get("v2_comparison", {}).get("problems", [])]
    doc["verdict"] = {"ok": not problems, "problems": problems}
    path = results.write(doc, ctx.run_dir)
    return path, cast(schema.ResultsDoc, doc)  # results.write validated it


def _run_phase(
    phase: Phase, ctx: RunContext, running: Mapping[str, servers.Server], doc: dict[str, Any]
) -> list[str]:
    try:
        doc[phase.name] = phase.run(ctx, running)
    except (ProtocolError, servers.ServerError, OSError, RuntimeError) as exc:
        console.print(f"[red]{phase.name} failed[/]: {exc}")
        return [f"{phase.name}: {type(exc).__name__}: {exc}"]
    return []


def load_problems(load: Mapping[str, Any] | None) -> list[str]:
    """Why a load phase's numbers cannot be trusted: a stack that did not run, or a step where
    it answered mostly errors (its req/s there count 2xx only, and are flagged in every table)."""
    if not load:
        return []
    out = []
    for run in load["runs"]:
        where = f"{run['stack']} (round {run['round'] + 1})"
        if run.get("error"):
            out.append(f"{where}: {run['error']}")
        for mode, key in (("closed", "connections"), ("open", "rate"), ("batch", "rows")):
            for step in run.get(mode, []):
                share = headline.error_share(step)
                if share > headline.MOSTLY_ERRORS_SHARE:
                    out.append(
                        f"{where}: {mode} {key}={step.get(key)}: {share:.0%} of requests failed "
                        f"({step.get('non2xx', 0)} non-2xx, {step.get('errors', 0)} socket errors)"
                    )
    return out
