"""The compose lab for real (docs/containers.md): every image built, `docker compose up --build
--wait`, then the contract suite, parity, V2, a short bench, a traced request per stack, and the
things only an engine can show (user, limits, threads, memory, sizes, SIGTERM as PID 1).

The engine comes from scripts/containers.sh: the one that answers, else a private dockerd (Debian's
docker.io, installed only in CI or with FIBER_ENDPOINTS_INSTALL_ENGINE=1); without one the module
is skipped, and says why, outside CI, and fails in CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The contract and V2 suites, reused as they are: every test below takes `server`/`client`,
# which this module points at the running containers instead of processes it starts.
from test_contract import client as client
from test_contract import (
    test_bad_input,
    test_batch,
    test_chunked_body_over_limit_is_413,
    test_health,
    test_null_is_missing_value,
    test_parity_on_golden_set,
    test_server_timing_on_inference,
    test_server_timing_only_where_the_handler_answered,
    test_single_prediction_matches_lightgbm,
    test_still_healthy_after_bad_input,
)
from test_v2_contract import (
    test_bad_v2_request,
    test_depth_limit_is_exact,
    test_nan_through_binary_data,
    test_nested_data_and_server_timing,
    test_null_is_missing_in_json,
    test_server_and_model_metadata,
    test_still_healthy_after_bad_v2_input,
    test_tritonclient_error_names_the_input,
    test_tritonclient_fp32_and_int,
    test_tritonclient_fp64_matches_lightgbm,
    test_tritonclient_health_and_metadata,
)

from fiber_endpoints import stacks
from fiber_endpoints.bench import servers
from fiber_endpoints.bench.client import RawClient
from fiber_endpoints.bench.workload import encode_body
from fiber_endpoints.trace.client import new_ids, traceparent
from fiber_endpoints.trace.jaeger import Jaeger

pytestmark = pytest.mark.slow

REUSED = [  # keeps the imports above "used"; pytest collects them by name in this module
    test_bad_input, test_batch, test_chunked_body_over_limit_is_413, test_health,
    test_null_is_missing_value, test_parity_on_golden_set, test_server_timing_on_inference,
    test_server_timing_only_where_the_handler_answered, test_single_prediction_matches_lightgbm,
    test_still_healthy_after_bad_input, test_bad_v2_request, test_depth_limit_is_exact,
    test_nan_through_binary_data, test_nested_data_and_server_timing, test_null_is_missing_in_json,
    test_server_and_model_metadata, test_still_healthy_after_bad_v2_input,
    test_tritonclient_error_names_the_input, test_tritonclient_fp32_and_int,
    test_tritonclient_fp64_matches_lightgbm, test_tritonclient_health_and_metadata,
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "containers.sh"
JAEGER_QUERY = "http://127.0.0.1:16686"
GRACE_S = 15  # compose.yaml's stop_grace_period
MEMORY_LIMIT = 1 << 30  # compose.yaml's default STACK_MEMORY (1g)
# What the runtime images must not carry: the bench extra's training, plotting and data libraries.
NOT_SERVING = stacks.NOT_SERVING  # not in any serving image, nor imported by a native server
# ... and per stack, what that stack never imports (docker/python.Dockerfile's venv-<stack>).
NOT_IMPORTED = {
    "fastapi": ("lleaves", "llvmlite"),
    "asgi-msgspec": ("lleaves", "llvmlite", "scipy", "narwhals", "numpy", "fastapi", "starlette"),
}
# ... and what each must still have (the control: a probe that finds nothing proves nothing).
SERVED = {"fastapi": ("numpy", "lightgbm", "msgspec"), "asgi-msgspec": ("lightgbm", "msgspec")}
# Each image's size may not grow back past what docs/containers.md reports (MB) + 10%.
MAX_SIZE_MB = {"fastapi": 479 * 1.1, "asgi-msgspec": 258 * 1.1, "fiber": 28 * 1.1}
RESULTS = ROOT / "results" / "containers"
CLI = Path(sys.executable).with_name("fiber-endpoints")


@dataclass
class Engine:
    env: dict[str, str]

    @property
    def private(self) -> bool:
        return self.env.get("FIBER_ENDPOINTS_ENGINE") == "private"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        proc = subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.run("docker", *args, timeout=timeout, check=check)

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.docker("compose", *args, timeout=timeout, check=check)

    def inspect(self, container: str) -> dict[str, Any]:
        out: list[dict[str, Any]] = json.loads(self.docker("inspect", container))
        return out[0]


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    if proc.returncode == 3:  # no engine and none may be installed: the script says why
        why = proc.stderr.strip().splitlines()[-1]
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        env = dict(os.environ)
        for line in proc.stdout.splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        print(f"\nengine ({env['FIBER_ENDPOINTS_ENGINE']}) in {time.monotonic() - t0:.1f} s")
        yield Engine(env)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True)


@pytest.fixture(scope="session")
def lab(engine: Engine) -> Iterator[dict[str, str]]:
    """`docker compose up --build --wait`; yields stack -> URL; `docker compose down` after."""
    t0 = time.monotonic()
    engine.compose("up", "--build", "--wait", "--quiet-pull", timeout=1500)
    print(f"compose up --build --wait: {time.monotonic() - t0:.1f} s")
    try:
        yield {name: f"http://127.0.0.1:{s.default_port}" for name, s in stacks.STACKS.items()}
    finally:
        engine.compose("down", "--timeout", str(GRACE_S), timeout=120, check=False)


@dataclass
class ContainerProcess:
    """What the suites ask of a server's process (`poll()`: None while it runs), for a container."""

    engine: Engine
    container: str

    def poll(self) -> int | None:
        state = self.engine.inspect(self.container)["State"]
        return None if state["Running"] else int(state["ExitCode"])


@pytest.fixture(scope="module", params=sorted(stacks.STACKS))
def server(request: pytest.FixtureRequest, engine: Engine, lab: dict[str, str]) -> servers.Server:
    """The contract suites' `server`, as the running container of each stack."""
    process = ContainerProcess(engine, container_of(engine, request.param))
    return servers.Server(name=request.param, url=lab[request.param], process=process)  # type: ignore[arg-type]


def container_of(engine: Engine, service: str) -> str:
    return engine.compose("ps", "--all", "-q", service).strip()


def logs(engine: Engine, container: str) -> str:
    proc = subprocess.run(
        ["docker", "logs", container], env=engine.env, capture_output=True, text=True, timeout=30
    )
    return proc.stdout + proc.stderr


def test_every_service_healthy(engine: Engine, lab: dict[str, str]) -> None:
    for service in ["jaeger", *stacks.STACKS]:
        state = engine.inspect(container_of(engine, service))["State"]
        assert state["Status"] == "running", (service, state)
        assert state["Health"]["Status"] == "healthy", (service, state["Health"])


def test_non_root(engine: Engine, lab: dict[str, str]) -> None:
    """The server process (PID 1 in its container) runs as the image's numeric non-root user."""
    want = {"fastapi": 10001, "asgi-msgspec": 10001, "fiber": 65532}
    for service, uid in want.items():
        info = engine.inspect(container_of(engine, service))
        assert info["Config"]["User"] == f"{uid}:{uid}"
        status = Path(f"/proc/{info['State']['Pid']}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [str(uid)] * 4, (service, uids)


def test_limits_are_equal_and_enforced(engine: Engine, lab: dict[str, str]) -> None:
    for service in stacks.STACKS:
        host = engine.inspect(container_of(engine, service))["HostConfig"]
        assert host["NanoCpus"] == 1_000_000_000, (service, host["NanoCpus"])
        assert host["Memory"] == MEMORY_LIMIT and host["MemorySwap"] == MEMORY_LIMIT


def test_traced_request_of_each_stack_in_jaeger(lab: dict[str, str]) -> None:
    jaeger = Jaeger(otlp_endpoint="", query_url=JAEGER_QUERY)
    body = encode_body([0.5] * 20)
    sent = {}
    for name, url in lab.items():
        trace_id, span_id = new_ids()
        c = RawClient(url, timeout=10)
        try:
            raw = c.prepare(
                "POST", "/inference", body, {"traceparent": traceparent(trace_id, span_id)}
            )
            assert c.send(raw).status == 200
        finally:
            c.close()
        sent[name] = trace_id
    deadline = time.monotonic() + 30  # the SDKs export in batches (a few seconds)
    found: dict[str, set[str]] = {}
    while time.monotonic() < deadline and len(found) < len(sent):
        for name, trace_id in sent.items():
            spans = jaeger.fetch(trace_id)
            if spans:
                found[name] = {s.service for s in spans}
        time.sleep(1)
    assert found == {name: {name} for name in sent}, found
    assert set(stacks.STACKS) <= set(jaeger.services())


def test_bench_target_against_the_containers(lab: dict[str, str], tmp_path: Path) -> None:
    """`fiber-endpoints bench --target NAME=URL` on every container: parity first, then timing."""
    args = [f"--target={name}={url}" for name, url in lab.items()]
    proc = subprocess.run(
        [str(CLI), "bench", *args, "--samples", "3", "--calls", "30", "--warmup", "30",
         "--no-load", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in lab:
        assert name in proc.stdout


def test_memory_stays_under_the_limit(engine: Engine, lab: dict[str, str]) -> None:
    """Peak memory of each stack's cgroup (the bench and the suites above have run) under 1 GiB,
    and never OOM-killed."""
    peaks = {}
    for service in stacks.STACKS:
        info = engine.inspect(container_of(engine, service))
        assert not info["State"]["OOMKilled"]
        peaks[service] = peak_memory(info["Id"])
        assert 0 < peaks[service] < MEMORY_LIMIT, (service, peaks[service])
    record("memory_peak_bytes", peaks)


def peak_memory(container_id: str) -> int:
    for path in (
        Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes"),  # v1
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak"),  # v2
        Path(f"/sys/fs/cgroup/docker/{container_id}/memory.peak"),  # v2, cgroupfs driver
    ):
        if path.exists():
            return int(path.read_text())
    raise AssertionError(f"no memory peak file for {container_id}")


def record(key: str, value: Any) -> None:
    """Numbers the docs quote, kept beside the other results (not asserted beyond the tests)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "facts.json"
    facts = json.loads(path.read_text()) if path.exists() else {}
    facts[key] = value
    path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")


def test_image_sizes_and_serving_set_only(engine: Engine, lab: dict[str, str]) -> None:
    """Each Python image has its own stack's serving set: no bench package, none of what that
    stack never imports; the suites above show each still serves (contract, V2, parity)."""
    sizes = {}
    for name in stacks.STACKS:
        sizes[name] = int(
            engine.docker("image", "inspect", "-f", "{{.Size}}", f"fiber-endpoints/{name}:dev")
        )
    record("image_size_bytes", sizes)
    print("image sizes (MB):", {k: round(v / 1e6) for k, v in sizes.items()})
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    for name, absent in NOT_IMPORTED.items():
        present = engine.docker(
            "run", "--rm", "--entrypoint", "python", f"fiber-endpoints/{name}:dev", "-c", probe,
            *NOT_SERVING, *absent, *SERVED[name],
        ).strip()  # fmt: skip
        assert present == str(list(SERVED[name])), (name, present)
    for name, size in sizes.items():
        assert size / 1e6 < MAX_SIZE_MB[name], (name, size)


def test_asgi_msgspec_serves_the_compiled_model_it_ships(
    engine: Engine, lab: dict[str, str]
) -> None:
    """The image's model runs the compiled code made at build time: lleaves from the first
    start, with no compiler in the image (the suites above check its answers)."""
    with urllib.request.urlopen(f"{lab['asgi-msgspec']}/health", timeout=5) as resp:
        assert json.load(resp)["predictor"] == "lleaves"
    log = logs(engine, container_of(engine, "asgi-msgspec"))
    assert "predictor: lleaves (compiled)" in log and "lleaves unavailable" not in log, log


def test_model_mounted_over_the_shipped_one_is_served_by_lightgbm(engine: Engine) -> None:
    """Another model mounted over /models/model.txt finds no artefact for its SHA-256 (and no
    compiler): LightGBM's C API serves it, and its answers are its own model's."""
    from fiber_endpoints import model

    other = model.MODELS_DIR / "binary" / "model.txt"
    golden = model.load_golden(other)
    name = f"fe-mounted-{os.getpid()}"
    engine.docker(
        "run", "-d", "--name", name, "--cpus", "1", "-e", "OTEL_SDK_DISABLED=true",
        "-v", f"{other}:/models/model.txt:ro", "-p", "127.0.0.1::8002",
        "fiber-endpoints/asgi-msgspec:dev",
    )  # fmt: skip
    try:
        port = engine.docker("port", name, "8002/tcp").split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", 60, name, engine)
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            assert json.load(resp)["predictor"] == "lightgbm-c-api"
        rows = [[None if v != v else v for v in row] for row in golden.rows]
        req = urllib.request.Request(f"{url}/inference/batch", data=encode_body(rows),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            got = json.load(resp)["predictions"]
        assert model.parity_errors(got, golden) == []
    finally:
        engine.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_python_threads_follow_the_cpu_quota(engine: Engine, cpus: str) -> None:
    """The stack's own predictor, in the image, under `--cpus N` on every core of the host."""
    code = (
        "import os; from fiber_endpoints import cpus;"
        " from fiber_endpoints.stacks.fastapi_control import Model;"
        " m = Model('/models/model.txt');"
        " print(len(os.sched_getaffinity(0)), cpus.cgroup_cpu_limit(), m.threads)"
    )
    out = engine.docker(
        "run", "--rm", "--cpus", cpus, "--entrypoint", "python", "fiber-endpoints/fastapi:dev",
        "-c", code,
    ).split()  # fmt: skip
    assert out == [str(os.cpu_count()), f"{float(cpus)}", cpus], out


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_go_threads_follow_the_cpu_quota(engine: Engine, cpus: str) -> None:
    """GOMAXPROCS, which sizes the Go predictor's threads (fiber/config.go), under `--cpus N`:
    the runtime's own scheduler trace says it. Go alone would say 2 under `--cpus 1` (it never
    goes below 2, golang/go#74283); fiber/cpus.go reads the quota as cpus.py does."""
    name = f"fe-gomaxprocs-{cpus}-{os.getpid()}"
    engine.docker(
        "run", "-d", "--name", name, "--cpus", cpus, "-e", "GODEBUG=schedtrace=1000",
        "fiber-endpoints/fiber:dev",
    )  # fmt: skip
    try:
        # The trace's first line (0 ms) is before main ran: the runtime's own value. The ones
        # after "serving" are what the server runs with.
        deadline = time.monotonic() + 20
        while True:
            out = logs(engine, name)
            serving = out.split("fiber-endpoint: serving", 1)[1:]
            traced = [ln for ln in "".join(serving).splitlines() if ln.startswith("SCHED ")]
            if traced:
                break
            assert time.monotonic() < deadline, out[-2000:]
            time.sleep(0.5)
        assert f" gomaxprocs={cpus} " in traced[0], out[-2000:]
    finally:
        engine.docker("rm", "-f", name, check=False)


KSERVE_RUNTIMES = ROOT / "deploy" / "kserve" / "cluster-serving-runtimes.yaml"
ISVC_NAME = "lightgbm-regression"  # what KServe puts for {{.Name}}: the InferenceService's name


def docker_run_args(container: dict[str, Any], model_dir: Path) -> list[str]:
    """`docker run` flags and command for a ClusterServingRuntime's container, as KServe's pod
    would run it: its user, CPU and memory limits, no privilege escalation, env, the model
    under /mnt/models (read-only, as the storage initializer leaves it), its port, its args."""
    limits = container["resources"]["limits"]
    security = container["securityContext"]
    memory = limits["memory"].replace("Gi", "g").replace("Mi", "m")
    (port,) = (p["containerPort"] for p in container["ports"])
    args = ["--user", str(security["runAsUser"]), "--cpus", limits["cpu"], "--memory", memory,
            "--memory-swap", memory, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-v", f"{model_dir}:/mnt/models:ro", "-p", f"127.0.0.1::{port}"]  # fmt: skip
    for e in container.get("env", []):
        args += ["-e", f"{e['name']}={e['value']}"]
    return [
        *args,
        container["image"],
        *(a.replace("{{.Name}}", ISVC_NAME) for a in container["args"]),
    ]


def test_kserve_runtime_starts_as_kserve_would(
    engine: Engine, lab: dict[str, str], tmp_path: Path
) -> None:
    """Each ClusterServingRuntime's container started under Docker as KServe would, then probed
    by its own startup, readiness and liveness probes and asked for a V2 inference."""
    import yaml  # dev extra

    from fiber_endpoints import model

    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model_dir.joinpath("model.txt").write_bytes(
        (model.MODELS_DIR / "regression" / "model.txt").read_bytes()
    )
    model_dir.chmod(0o755)
    golden = model.load_golden(model.MODELS_DIR / "regression" / "model.txt")
    runtimes = [d for d in yaml.safe_load_all(KSERVE_RUNTIMES.read_text()) if d]
    started = {}
    try:
        for rt in runtimes:
            (c,) = rt["spec"]["containers"]
            name = f"fe-{rt['metadata']['name']}-{os.getpid()}"
            engine.docker("run", "-d", "--name", name, *docker_run_args(c, model_dir))
            started[name] = c
        for name, c in started.items():
            (port,) = (p["containerPort"] for p in c["ports"])
            host_port = engine.docker("port", name, f"{port}/tcp").split(":")[-1].strip()
            url = f"http://127.0.0.1:{host_port}"
            startup = c["startupProbe"]
            budget = startup["periodSeconds"] * startup["failureThreshold"]
            wait_for(f"{url}{startup['httpGet']['path']}", budget, name, engine)
            for probe in ("readinessProbe", "livenessProbe"):
                wait_for(f"{url}{c[probe]['httpGet']['path']}", 5, name, engine)
            wait_for(f"{url}/v2/models/{ISVC_NAME}/ready", 5, name, engine)
            rows = golden.rows[:16]
            body = json.dumps({"inputs": [{"name": "x", "shape": [len(rows), len(rows[0])],
                               "datatype": "FP64", "data": rows}]}).encode()  # fmt: skip
            req = urllib.request.Request(f"{url}/v2/models/{ISVC_NAME}/infer", data=body)
            with urllib.request.urlopen(req, timeout=10) as resp:
                out = json.load(resp)
            assert out["model_name"] == ISVC_NAME
            got = out["outputs"][0]["data"]
            assert got == pytest.approx(golden.predictions[:16], rel=1e-9), name
    finally:
        for name in started:
            engine.docker("rm", "-f", name, check=False)


def wait_for(url: str, timeout: float, name: str, engine: Engine) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not 200 in {timeout} s: {logs(engine, name)[-2000:]}")
        time.sleep(0.5)


def _post_once_read(url: str, path: str, body: bytes, read: threading.Semaphore) -> int:
    """POST with ``Expect: 100-continue``: the body goes once the server answers ``100
    Continue`` (it has begun reading this request: uvicorn when the app reads the body, fasthttp
    before it reads the body for the handler), then ``read`` is released; the final status is
    returned once the whole answer arrived. (``Expect`` takes asgi-msgspec off its fast path:
    the fast path's drain is tests/integration/test_shutdown.py's, natively.)"""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % (path.encode(), host.encode(), len(body))
        )
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim[:200]
        sock.sendall(body)
        read.release()
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {reply[:200]!r}"
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:  # the whole answer, not only its status line
            chunk = sock.recv(65536)
            assert chunk, f"connection closed mid-answer: {len(body)} of {length} bytes"
            body += chunk
        return int(head.split(b" ", 2)[1])


def test_zz_sigterm_as_pid_1_drains_in_flight_requests(engine: Engine, lab: dict[str, str]) -> None:
    """Last (zz): `docker compose stop` sends SIGTERM to each server as PID 1 while requests are
    in flight; every one is answered 200, and each container exits 0 within the grace period."""
    rows = [[0.5] * 20] * 9_000  # ~0.9 MB, under the 1 MiB body limit: a long prediction
    body = encode_body(rows)
    results: dict[str, list[int | str]] = {name: [] for name in lab}
    in_flight = threading.Semaphore(0)

    def call(name: str, url: str) -> None:
        try:
            results[name].append(_post_once_read(url, "/inference/batch", body, in_flight))
        except Exception as exc:
            results[name].append(repr(exc))
            in_flight.release()

    threads = [
        threading.Thread(target=call, args=(name, url)) for name, url in lab.items() for _ in (0, 1)
    ]
    for t in threads:
        t.start()
    # In flight means read by the server (its 100 Continue), not merely sent: a request still in
    # the socket's queue at SIGTERM is one uvicorn drops (docs/containers.md, the control).
    for _ in threads:
        assert in_flight.acquire(timeout=30), "a server never began to read its request"
    t0 = time.monotonic()
    engine.compose("stop", "--timeout", str(GRACE_S), *stacks.STACKS, timeout=60)
    stop_s = time.monotonic() - t0
    for t in threads:
        t.join(30)
    assert results == {name: [200, 200] for name in lab}, results
    for service in stacks.STACKS:
        state = engine.inspect(container_of(engine, service))["State"]
        assert state["ExitCode"] == 0 and not state["OOMKilled"], (service, state)
    assert stop_s < GRACE_S, stop_s
    record("compose_stop_s", round(stop_s, 2))
