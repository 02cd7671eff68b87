"""``bench``: start (or reach) every stack, check parity, run the protocols, write raw results.

Order matters: a stack is timed only after it returned LightGBM's predictions on the golden
rows; a stack that fails parity is reported and left out of every timing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from fiber_endpoints import cpus, model
from fiber_endpoints.bench import parity, results, sequential, servers, summary

console = Console(stderr=True)


@dataclass(frozen=True)
class Phase:
    """``run(servers, doc, config)`` -> JSON-able raw results. With ``needs_servers`` it runs
    while the sequential protocol's servers are up (it reuses them); otherwise after they have
    stopped, so idle servers do not sit on the CPUs of a phase that starts its own."""

    name: str
    run: Callable[..., Any]
    needs_servers: bool = True


@dataclass
class BenchConfig:
    stacks: list[str]
    model_path: Path = model.DEFAULT_MODEL
    targets: dict[str, str] = field(default_factory=dict)  # NAME -> URL, already running
    samples: int = 50
    calls: int = 100
    client: str = "raw"
    warmup_calls: int = 200
    pin: bool = True
    out_base: Path = results.RESULTS_DIR
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    server_env: dict[str, str] = field(default_factory=dict)
    # Extra phases (tracing cost, load lab) after the sequential protocol, on parity-checked
    # stacks only; each result is stored under its name in the results document.
    phases: list[Phase] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    client_cpus: list[int]
    server_cpus: list[int]
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"client_cpus": self.client_cpus, "server_cpus": self.server_cpus, "note": self.note}


def plan_placement(pin: bool) -> Placement:
    """Client on the first usable CPU, servers on the others; shared when there is only one."""
    available = cpus.affinity()
    if not pin:
        return Placement(available, available, "not pinned (--no-pin)")
    if len(available) < 2:
        return Placement(available, available, "one CPU: client and servers share it")
    return Placement(
        available[:1],
        available[1:],
        "client and servers on separate CPUs; "
        "servers pinned from exec, before their thread pools start",
    )


@contextmanager
def started_servers(
    config: BenchConfig, placement: Placement, log_dir: Path
) -> Iterator[dict[str, servers.Server]]:
    """Every selected stack running: ours started pinned, ``--target`` ones reached."""
    with ExitStack() as stack:
        running: dict[str, servers.Server] = {}
        for name in config.stacks:
            if name in config.targets:
                server = servers.Server(name, config.targets[name].rstrip("/"))
                servers.wait_healthy(server, timeout=30)
            else:
                console.print(f"starting [bold]{name}[/] on CPUs {placement.server_cpus} ...")
                server = stack.enter_context(
                    servers.running(
                        name,
                        config.model_path,
                        cpus=placement.server_cpus,
                        env=config.server_env,
                        log_dir=log_dir,
                    )
                )
            running[name] = server
        yield running


def run(config: BenchConfig) -> tuple[Path, dict[str, Any]]:
    """Run the benchmark; returns the results file and the document written to it."""
    for name in config.targets:
        if name not in config.stacks:
            config.stacks.append(name)
    golden = model.load_golden(config.model_path)
    placement = plan_placement(config.pin)
    out_dir = results.run_dir(config.out_base)
    doc: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(),
        "command": config.command,
        "machine": results.machine_info(),
        "placement": placement.to_json(),
        "model": {
            "path": str(config.model_path),
            "objective": golden.objective,
            "num_features": golden.num_features,
            "num_class": golden.num_class,
        },
        "stacks": {},
    }
    if placement.client_cpus != cpus.affinity():
        os.sched_setaffinity(0, set(placement.client_cpus))
    with started_servers(config, placement, out_dir / "logs") as running:
        healthy = {}
        for name, server in running.items():
            check = parity.check(server.url, golden)
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
                    f"{check.checked_rows} golden rows match LightGBM (single and batch)"
                )
                healthy[name] = server
            else:
                console.print(f"parity [red]FAILED[/] {name}: not timed")
                for err in check.errors:
                    console.print(f"  {err}")
        if healthy:
            doc["sequential"] = _sequential(config, healthy, golden.num_features)
            for phase in config.phases:
                if phase.needs_servers:
                    doc[phase.name] = phase.run(healthy, doc, config)
    if healthy:
        for phase in config.phases:
            if not phase.needs_servers:
                doc[phase.name] = phase.run(healthy, doc, config)
    path = results.write(doc, out_dir)
    return path, doc


def _sequential(
    config: BenchConfig, running: dict[str, servers.Server], n_features: int
) -> dict[str, Any]:
    rows = model.seed_rows(n_features).tolist()
    with Progress(
        TextColumn("sequential ({task.fields[client]} client)"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} samples"),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,  # no refresh thread competing with the timed calls for the GIL
    ) as bar:
        task = bar.add_task("seq", total=config.samples, client=config.client)
        raw = sequential.run(
            {n: s.url for n, s in running.items()},
            rows,
            samples=config.samples,
            calls=config.calls,
            client_kind=config.client,
            warmup_calls=config.warmup_calls,
            progress=lambda done, _total: bar.update(task, completed=done, refresh=True),
        )
    return {
        "client": config.client,
        "samples": config.samples,
        "calls": config.calls,
        "rows": len(rows),
        "stacks": {n: r.to_json() for n, r in raw.items()},
    }


def print_summary(doc: dict[str, Any]) -> None:
    if "sequential" in doc:
        print(summary.sequential_markdown(doc))  # plain: a Markdown table must not be wrapped
