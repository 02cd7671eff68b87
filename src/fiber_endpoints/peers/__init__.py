"""The peer registry: the model servers people run today, measured beside our stacks.

A peer is not one of our stacks: it runs from its own virtualenv (``scripts/install-peers.sh``
installs ``peers/<venv>/requirements.txt``, pinned with hashes, into
``~/.cache/fiber-endpoints/peers/<venv>``), lays out its model and configuration in a folder of
its own, and speaks its own wire protocol (V2 for MLServer and KServe, BentoML's JSON API). Each
module of this package says, for one peer, how to lay it out and start it on a port; ``bench``
starts it pinned like our stacks (``bench/servers.py``: ``launch`` with the server CPUs), feeds
it the same rows, checks parity, and only then times it. See docs/methodology.md ("Peers").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fiber_endpoints import paths
from fiber_endpoints.v2 import DEFAULT_MODEL_NAME

if TYPE_CHECKING:
    from fiber_endpoints.bench.servers import Server

# Every peer and stack runs its predictor on one thread per server CPU; the peers are told so
# through OpenMP (LightGBM ignores Booster(params={"num_threads"}) for a model file).
PREDICTOR_THREADS_ENV = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class Layout:
    """Where one start of a peer lives and what it serves."""

    model: Path  # the LightGBM text model
    workdir: Path  # an empty folder of its own (configuration, model copy)
    host: str
    port: int
    model_name: str  # the V2 model name (MLServer, KServe)
    python: Path  # the peer's virtualenv's interpreter
    threads: int  # predictor threads (= server CPUs)

    def free_port(self) -> int:
        from fiber_endpoints.bench.servers import free_port

        return free_port(self.host)


@dataclass(frozen=True)
class Launch:
    """The command that serves the peer on ``Layout.port``, its environment and working dir."""

    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Peer:
    name: str
    venv: str  # peers/<venv>/requirements.txt; the cache folder's name
    description: str  # shown in tables: what it is, and whether it is ours
    protocol: str  # "v2" or "bentoml" (bench/protocols.py)
    health_path: str
    on: str  # what it has on besides inference: metrics, gRPC, tracing (recorded with results)
    prepare: Callable[[Layout], Launch]
    ours: bool = False  # our re-implementation of a server that is not published as a package


def home() -> Path:
    """Where the peers' virtualenvs are cached (``$PEERS_HOME`` or the project cache)."""
    explicit = os.environ.get("PEERS_HOME")
    return Path(explicit) if explicit else paths.cache_dir() / "peers"


def python(peer: Peer) -> Path:
    return home() / peer.venv / "bin" / "python"


def installed(peer: Peer) -> bool:
    return (home() / peer.venv / ".installed").exists()


def folder(peer: Peer) -> Path:
    """The peer's files in the repository: its pinned requirements and its server code."""
    return paths.PROJECT_ROOT / "peers" / peer.venv


def _registry() -> dict[str, Peer]:
    from fiber_endpoints.peers import bentoml, kserve, mlserver

    return {p.name: p for p in [*mlserver.PEERS, kserve.PEER, bentoml.PEER]}


PEERS: dict[str, Peer] = _registry()


def get(name: str) -> Peer:
    try:
        return PEERS[name]
    except KeyError:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}") from None


class NotInstalled(RuntimeError):
    """The peer's virtualenv is not there: ``make setup`` (scripts/install-peers.sh) installs it."""


@contextmanager
def running(
    name: str,
    model: Path,
    *,
    cpus: Sequence[int] | None = None,
    log_dir: Path | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    host: str = "127.0.0.1",
    timeout: float = 180.0,
) -> Iterator[Server]:
    """Peer ``name`` laid out in a folder of its own and started like our stacks: its own process
    group, pinned to ``cpus`` from exec, one predictor thread per CPU; healthy, then yielded;
    stopped (SIGTERM, then SIGKILL) and its folder removed after."""
    from fiber_endpoints.bench import protocols, servers

    peer = get(name)
    if not installed(peer):
        raise servers.ServerError(
            f"{name}: not installed at {home() / peer.venv} (run `make setup` or "
            f"`bash scripts/install-peers.sh {peer.venv}`)"
        )
    threads = len(set(cpus)) if cpus else (os.cpu_count() or 1)
    port = servers.free_port(host)
    log_dir = log_dir or Path(tempfile.gettempdir())
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    workdir = Path(tempfile.mkdtemp(prefix=f"fiber-endpoints-{name}-"))
    server = servers.Server(
        name,
        f"http://{host}:{port}",
        None,
        sorted(set(cpus)) if cpus else None,
        log_path=log_path,
        health_path=peer.health_path,
        protocol=protocols.get(peer.protocol, model_name),
    )
    try:
        layout = Layout(model, workdir, host, port, model_name, python(peer), threads)
        launch = peer.prepare(layout)
        env = {**launch.env, PREDICTOR_THREADS_ENV: str(threads)}
        server.process = servers.launch(
            launch.cmd, cpus=cpus, env=env, log_path=log_path, cwd=launch.cwd
        )
        servers.wait_healthy(server, timeout)
        server.health = {**server.health, "stack": name, "peer": peer.description, "on": peer.on,
                         "predictor_threads": threads}  # fmt: skip
        yield server
    finally:
        servers.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
