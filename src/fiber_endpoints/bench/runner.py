"""``bench``: start (or reach) every stack, check parity, run the phases, write raw results.

Order matters: a stack is timed only after it returned LightGBM's predictions on the workload's
rows; a stack that fails parity is reported and left out of every timing. The run's verdict
(``doc["verdict"]``) says why it failed, if it did: parity, a stack that answered mostly errors
under load, a stack that did not run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fiber_endpoints import headline
from fiber_endpoints.bench import context, parity, results, schema, servers
from fiber_endpoints.bench.context import BenchConfig, Phase, RunContext
from fiber_endpoints.bench.load import LoadPhase
from fiber_endpoints.bench.progress import console
from fiber_endpoints.bench.sequential import ProtocolError, SequentialPhase


def phases(config: BenchConfig) -> list[Phase]:
    """The phases after parity, in order, as the configuration asks for them."""
    out: list[Phase] = [SequentialPhase()]
    if config.keep_awake:
        out.append(SequentialPhase(name="sequential_keep_awake", keep_awake=True))
    if config.tracing_cost:
        from fiber_endpoints.trace.cost import TracingCostPhase

        out.append(TracingCostPhase())
    if config.load is not None:
        out.append(LoadPhase(config.load))
    return out


@contextmanager
def started_servers(
    ctx: RunContext, doc: dict[str, Any], problems: list[str]
) -> Iterator[dict[str, servers.Server]]:
    """Every selected stack running: ours started pinned, ``--target`` ones reached. A stack
    that refuses the model is recorded as not eligible; one that fails to start is a problem."""
    config = ctx.config
    with ExitStack() as stack:
        running: dict[str, servers.Server] = {}
        for name in config.stacks:
            try:
                if name in config.targets:
                    server = servers.Server(
                        name, config.targets[name].rstrip("/"), health_path=ctx.protocol.health_path
                    )
                    servers.wait_healthy(server, timeout=30)
                else:
                    console.print(f"starting [bold]{name}[/] on CPUs {ctx.placement.server_cpus}")
                    server = stack.enter_context(
                        servers.running(
                            name,
                            config.model_path,
                            cpus=ctx.placement.server_cpus,
                            env=config.server_env,
                            log_dir=ctx.log_dir,
                            extra_args=ctx.serve_args,
                        )
                    )
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
                }
                if not eligible:
                    problems.append(f"{name}: {why}")
                continue
            running[name] = server
        yield running


def check_parity(
    ctx: RunContext, running: Mapping[str, servers.Server], doc: dict[str, Any]
) -> dict[str, servers.Server]:
    """Parity of every running stack; returns the ones that may be timed."""
    eligible = {}
    for name, server in running.items():
        check = parity.check(server.url, ctx.workload.golden, ctx.protocol, ctx.config.headers)
        doc["stacks"][name] = {
            "url": server.url,
            "started_by_bench": server.process is not None,
            "health": server.health,
            "cpus": server.cpus,
            "parity": check.to_json(),
        }
        if check.ok:
            console.print(
                f"parity [green]ok[/] {name} ({server.health.get('predictor', '?')}): "
                f"{check.checked_rows} rows match LightGBM (single and batch)"
            )
            eligible[name] = server
        else:
            console.print(f"parity [red]FAILED[/] {name}: not timed")
            for err in check.errors:
                console.print(f"  {err}")
    return eligible


def run(config: BenchConfig) -> tuple[Path, schema.ResultsDoc]:
    """Run the benchmark; returns the results file and the document written to it."""
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
    doc["verdict"] = {"ok": not problems, "problems": problems}
    path = results.write(doc, ctx.run_dir)
    return path, schema.validate(doc)


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
