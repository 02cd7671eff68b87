"""What one ``bench`` run is: its configuration (what the CLI's flags map to) and the context made
from it once (placement, workload, run folder), which every phase receives.

A phase is a typed step of the run: it gets the :class:`RunContext` and the parity-checked
servers, and returns its own part of the results document (``bench/schema.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fiber_endpoints import model, v2
from fiber_endpoints.bench import placement, protocols, results, servers, workload
from fiber_endpoints.bench.load import LoadConfig


@dataclass(frozen=True)
class BenchConfig:
    """Every knob of ``bench``. The CLI maps flags to this and does nothing else."""

    stacks: list[str]
    model_path: Path = model.DEFAULT_MODEL
    rows_file: Path | None = None  # the user's rows; default: golden file, else generated
    targets: dict[str, str] = field(default_factory=dict)  # NAME -> URL, already running
    samples: int = 50
    calls: int = 100
    client: str = "raw"
    warmup_calls: int = 200
    pin: bool = True
    protocol: str = "contract"  # or "v2": the Open Inference Protocol (bench/protocols.py)
    model_name: str = v2.DEFAULT_MODEL_NAME  # the V2 model name in the URL
    headers: dict[str, str] = field(default_factory=dict)  # sent with every timed request
    # Peers (peers/__init__.py) measured beside our stacks in the V2 comparison; [] = none.
    peers: list[str] = field(default_factory=list)
    # Our stacks (and the peers) again over V2, through the same phases, stored beside the run's
    # own results (``v2_comparison``): the contract's p50 next to V2's, the peers next to ours.
    v2_comparison: bool = False
    client_cpus: tuple[int, ...] | None = None
    server_cpus: tuple[int, ...] | None = None
    floor: bool = True  # the trivial server as a diagnostic row of the sequential table
    keep_awake: bool = False  # also time with SCHED_IDLE spinners keeping the CPUs awake
    tracing_cost: bool = False
    observability_cost: bool = False  # metrics and tracing (1 %, 100 %) against nothing, A/B
    observability_rounds: int = 6  # closed-loop slices per instance
    observability_slice_s: float = 2.0
    startup: bool = True  # start to first correct answer, per stack
    load: LoadConfig | None = field(default_factory=LoadConfig)  # None: no load phase
    soak_minutes: float = 0.0  # bench --soak: each stack at half its peak (bench/reliability.py)
    out_base: Path = results.RESULTS_DIR
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    server_env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("model_path", "rows_file", "out_base"):
            out[key] = str(out[key]) if out[key] is not None else None
        return out


@dataclass(frozen=True)
class RunContext:
    """Made once by the runner; read by every phase."""

    config: BenchConfig
    placement: placement.Placement
    workload: workload.Workload
    protocol: protocols.WireProtocol
    run_dir: Path

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def serve_args(self) -> list[str]:
        """Extra ``serve`` flags for every stack the run starts: the V2 model name."""
        return ["--model-name", self.config.model_name]

    def protocol_of(self, server: servers.Server) -> protocols.WireProtocol:
        """What ``server`` speaks: its own protocol (a peer's), else the run's."""
        return server.protocol or self.protocol

    def start(self, name: str) -> AbstractContextManager[servers.Server]:
        """Stack or peer ``name`` started pinned to the server CPUs, the one way every phase
        starts one; stopped when the block ends."""
        return _started(self, name)


@contextmanager
def _started(ctx: RunContext, name: str) -> Iterator[servers.Server]:
    from fiber_endpoints import peers

    cpus = ctx.placement.server_cpus
    if name in peers.PEERS:
        with peers.running(name, ctx.config.model_path, cpus=cpus, log_dir=ctx.log_dir,
                           model_name=ctx.config.model_name) as server:  # fmt: skip
            yield server
        return
    with servers.running(name, ctx.config.model_path, cpus=cpus, env=ctx.config.server_env,
                         log_dir=ctx.log_dir, extra_args=ctx.serve_args) as server:  # fmt: skip
        yield server


class Phase(Protocol):
    """A phase after parity. ``needs_servers``: it runs while the parity-checked servers are up
    (and reuses them); otherwise after they stopped, so idle servers do not sit on the CPUs of
    a phase that starts its own."""

    @property
    def name(self) -> str: ...

    @property
    def needs_servers(self) -> bool: ...

    def run(self, ctx: RunContext, running: Mapping[str, servers.Server]) -> Mapping[str, Any]:
        """Its own part of the results document, stored under ``name``."""
        ...


def make(config: BenchConfig) -> RunContext:
    """Placement, workload and run folder, decided once; a bad model/rows/CPU choice fails here,
    before any server starts."""
    where = placement.plan(config.pin, config.client_cpus, config.server_cpus)
    rows = workload.load(config.model_path, config.rows_file)
    wire = protocols.get(config.protocol, config.model_name)
    return RunContext(config, where, rows, wire, results.run_dir(config.out_base))
