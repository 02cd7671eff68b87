"""A real Jaeger on loopback: find the install, start it with in-memory storage and an OTLP/HTTP
receiver on free ports, wait until it answers, fetch traces by id, stop it.

The install is ``scripts/install-jaeger.sh`` (cached under ``~/.cache/fiber-endpoints/jaeger``
or ``$JAEGER_HOME``).
To use a Jaeger or OTLP collector you already run instead, skip this module: point the stacks at
it with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (see ``docs/tracing.md``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fiber_endpoints.bench.servers import free_port, launch, stop_process, tail
from fiber_endpoints.paths import CACHE_DIR, PROJECT_ROOT
from fiber_endpoints.trace.spans import Span, parse_otlp

INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install-jaeger.sh"
V2 = "jaeger-v2"
V1 = "jaeger-v1"

# Jaeger v2 is an OpenTelemetry Collector distribution: one YAML file wires it. No batch processor,
# so a span is queryable as soon as it is received.
V2_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: {max_traces}
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: {host}:{query_port}
    grpc:
      endpoint: {host}:{query_grpc_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: {host}:{otlp_port}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerError(RuntimeError):
    """Jaeger is not installed, did not start, or did not answer."""


def home() -> Path:
    return Path(os.environ.get("JAEGER_HOME", CACHE_DIR / "jaeger"))


@dataclass(frozen=True)
class Install:
    binary: Path
    kind: str  # V2 or V1
    version: str  # Go module version built


def find_install(jaeger_home: Path | None = None) -> Install:
    """The cached install; ``JaegerError`` naming the install command when there is none."""
    root = jaeger_home or home()
    binary, kind, version = root / "bin" / "jaeger", root / "KIND", root / "VERSION"
    if not (binary.exists() and kind.exists() and version.exists()):
        raise JaegerError(f"no Jaeger under {root}: run `make jaeger` ({INSTALL_SCRIPT})")
    return Install(binary, kind.read_text().strip(), version.read_text().strip())


def install(jaeger_home: Path | None = None) -> Install:
    """Run the install script (a no-op when cached) and return the install."""
    env = dict(os.environ)
    if jaeger_home is not None:
        env["JAEGER_HOME"] = str(jaeger_home)
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, env=env)
    return find_install(jaeger_home)


@dataclass
class Jaeger:
    """A running Jaeger (ours, with ``process``) or one given by URL."""

    otlp_endpoint: str  # for OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318
    query_url: str  # e.g. http://127.0.0.1:16686
    install: Install | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def fetch(self, trace_id: str, timeout: float = 5.0) -> list[Span] | None:
        """The spans of one trace (``/api/v3/traces/{id}``, OTLP/JSON, nanosecond times);
        ``None`` when Jaeger does not know the trace."""
        url = f"{self.query_url}/api/v3/traces/{trace_id}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return parse_otlp(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            body = exc.read()
            # v2: 404; v1.48: 500 with "trace not found" in the body.
            if exc.code == 404 or b"trace not found" in body:
                return None
            raise JaegerError(f"GET {url}: {exc.code} {body[:200]!r}") from exc

    def services(self) -> list[str]:
        with urllib.request.urlopen(f"{self.query_url}/api/services", timeout=5.0) as resp:
            data: list[str] = json.loads(resp.read()).get("data") or []
            return data


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _v1_args(host: str, otlp: int, query: int, spare: Sequence[int]) -> list[str]:
    """Jaeger v1 all-in-one: every listener on loopback and a free port."""
    names = [
        "collector.otlp.grpc.host-port",
        "collector.grpc-server.host-port",
        "collector.http-server.host-port",
        "query.grpc-server.host-port",
        "admin.http.host-port",
        "processor.jaeger-compact.server-host-port",
        "processor.jaeger-binary.server-host-port",
        "processor.zipkin-compact.server-host-port",
    ]
    args = [
        "--collector.otlp.enabled=true",
        f"--collector.otlp.http.host-port={host}:{otlp}",
        f"--query.http-server.host-port={host}:{query}",
    ]
    args += [f"--{name}={host}:{port}" for name, port in zip(names, spare, strict=False)]
    return args


def start(
    *,
    host: str = "127.0.0.1",
    max_traces: int = 200_000,
    log_dir: Path | None = None,
    cpus: Sequence[int] | None = None,
    timeout: float = 30.0,
) -> Jaeger:
    """Start the cached Jaeger on loopback with in-memory storage; wait until it accepts OTLP
    and answers its query API."""
    inst = find_install()
    otlp_port, query_port, grpc_port = free_port(host), free_port(host), free_port(host)
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"jaeger-{query_port}.log"
    # Jaeger traces itself by default (OTLP/gRPC to :4317): not here, and not into ourselves.
    env = {**os.environ, "OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"}
    if inst.kind == V2:
        config = log_dir / f"jaeger-{query_port}.yaml"
        config.write_text(
            V2_CONFIG.format(
                host=host,
                otlp_port=otlp_port,
                query_port=query_port,
                query_grpc_port=grpc_port,
                max_traces=max_traces,
            )
        )
        cmd = [str(inst.binary), "--config", str(config)]
    elif inst.kind == V1:
        spare = [grpc_port, *(free_port(host) for _ in range(7))]
        cmd = [str(inst.binary), *_v1_args(host, otlp_port, query_port, spare)]
        env.update(SPAN_STORAGE_TYPE="memory", MEMORY_MAX_TRACES=str(max_traces))
    else:
        raise JaegerError(f"unknown Jaeger kind {inst.kind!r} in {home()}")
    proc = launch(cmd, cpus=cpus, env=env, log_path=log_path)
    jaeger = Jaeger(
        f"http://{host}:{otlp_port}", f"http://{host}:{query_port}", inst, proc, log_path
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise JaegerError(
                f"Jaeger exited with {proc.returncode}; log {log_path}:\n{tail(log_path)}"
            )
        try:
            if _port_open(host, otlp_port):
                jaeger.services()
                return jaeger
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop(jaeger)
            raise JaegerError(
                f"Jaeger not ready after {timeout:.0f}s; log {log_path}:\n{tail(log_path)}"
            )
        time.sleep(0.1)


def stop(jaeger: Jaeger, timeout: float = 10.0) -> None:
    stop_process(jaeger.process, timeout)


def otel_env(
    jaeger: Jaeger, service_name: str, sampler: str = "parentbased_always_on"
) -> dict[str, str]:
    """The environment that turns a stack's tracing on and points it at ``jaeger``."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_TRACES_SAMPLER": sampler,
        "OTEL_SDK_DISABLED": "false",
    }
