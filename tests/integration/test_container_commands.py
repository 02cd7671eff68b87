"""The commands the Dockerfiles run, run natively: no Docker engine is needed (none is here).

Each build stage's COPY/WORKDIR/ENV/RUN (exec form) is replayed in a temporary root with the
files git tracks; each stack's ENTRYPOINT is started as written (container paths mapped to the
files they are copied from, the port moved to a free one), its HEALTHCHECK is run against it
and must pass, then SIGTERM must stop it promptly, after which the HEALTHCHECK must fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from docker_modules import load
from fiber_endpoints import stacks
from fiber_endpoints.bench.servers import free_port
from fiber_endpoints.stacks import fiber_go

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
GO = shutil.which("go")
STOP_GRACE_SECONDS = 15  # compose.yaml stop_grace_period
HEALTHY_WITHIN_SECONDS = 120  # generous: CI shares 2 cores with the other tests
HEALTHCHECK_TIMEOUT = 20


dockerfiles = load("dockerfiles")


def tracked(path: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.split()


def is_static_elf(path: Path) -> bool:
    """An ELF executable with no PT_INTERP program header (no dynamic loader needed)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, f"{path} is not a 64-bit ELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)  # fmt: skip
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types  # PT_INTERP


def copy(ins: Any, workdir: Path, root: Path) -> None:
    """``COPY src... dest`` from the build context (git-tracked files) under ``root``."""
    assert "from" not in ins.flags
    *sources, dest = ins.args.split()
    target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
    for source in sources:
        files = tracked(source)
        assert files, f"{source} is not tracked"
        if files == [source]:  # a file: into a directory, or to a file name
            into_dir = dest.endswith("/") or len(sources) > 1
            out = target / Path(source).name if into_dir else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, out)
            continue
        for f in files:  # a directory: its contents
            out = target / Path(f).relative_to(source.rstrip("/"))
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, out)


def replay_build_stage(
    dockerfile: Path,
    stage: str,
    root: Path,
    native: Callable[[list[str]], list[str] | None] = lambda argv: argv,
) -> Path:
    """COPY, WORKDIR and exec-form RUN of ``stage``, with ``root`` standing for ``/``; each RUN's
    argv is passed through ``native`` (what to run here instead; None: skip it). Returns the last
    WORKDIR."""
    stages = dockerfiles.read(dockerfile)
    env = {
        **os.environ,
        **{k: v for k, v in dockerfiles.env(stages, stage).items() if "$" not in v},
    }
    workdir = root
    for ins in dockerfiles.by_name(stages)[stage].instructions:
        if ins.keyword == "WORKDIR":
            workdir = root / ins.args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            copy(ins, workdir, root)
        elif ins.keyword == "RUN":
            argv = ins.exec_form
            assert argv, f"line {ins.line}: only exec-form RUN is replayed"
            here = native([str(root / a.lstrip("/")) if a.startswith("/") else a for a in argv])
            if here is not None:
                subprocess.run(here, cwd=workdir, env=env, check=True, timeout=540)
    return workdir


@dataclass
class Native:
    """A stack's container commands, mapped to files on this machine."""

    argv: list[str]
    health: list[str]
    env: dict[str, str]


def native_commands(name: str, built: dict[Path, Path]) -> Native:
    """ENTRYPOINT and HEALTHCHECK of stage ``name`` with container paths mapped via ``built``
    (container path -> native path) and the stack's port replaced by a free one."""
    stack = stacks.STACKS[name]
    stages = dockerfiles.read(DOCKER / f"{stack.language}.Dockerfile")
    entrypoint = dockerfiles.effective(stages, name, "ENTRYPOINT").exec_form
    health = dockerfiles.healthcheck_command(dockerfiles.effective(stages, name, "HEALTHCHECK"))
    mapping = dict(built)
    for st in dockerfiles.chain(stages, name):  # files COPYed from the build context
        for ins in st.all("COPY"):
            if "from" not in ins.flags:
                *sources, dest = ins.args.split()
                if len(sources) == 1 and (ROOT / sources[0]).is_file():
                    mapping[Path(dest)] = ROOT / sources[0]

    def native(arg: str) -> str:
        for container, here in mapping.items():
            if arg == str(container) or arg.startswith(f"{container}/"):
                return str(here) + arg[len(str(container)) :]
        return arg

    port = str(free_port())
    old = str(stack.default_port)
    argv = [port if a == old else native(a) for a in entrypoint]
    health = [native(a).replace(f"127.0.0.1:{old}/", f"127.0.0.1:{port}/") for a in health]
    env = {}
    for key, value in dockerfiles.env(stages, name).items():
        parts = [native(p) for p in value.split(":")]
        env[key] = ":".join(os.environ.get("PATH", "") if p == "$PATH" else p for p in parts)
    return Native(argv, health, env)


def run_health(cmd: Native) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd.health, env={**os.environ, **cmd.env}, capture_output=True,
                              text=True, timeout=HEALTHCHECK_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # a loaded machine: counts as a failed check
        return subprocess.CompletedProcess(cmd.health, -1, "", f"timed out: {exc}")


def serve_check_stop(cmd: Native, tmp: Path) -> None:
    """Start, HEALTHCHECK until it passes, SIGTERM, prompt exit, HEALTHCHECK fails."""
    log_path = tmp / "server.log"

    def logs() -> str:
        return f"\n--- {' '.join(cmd.argv)}\n" + log_path.read_text(errors="replace")[-4000:]

    log = log_path.open("wb")
    proc = subprocess.Popen(cmd.argv, env={**os.environ, **cmd.env}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
        result = None
        while time.monotonic() < deadline and proc.poll() is None:
            result = run_health(cmd)
            if result.returncode == 0:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"exited {proc.returncode} before healthy{logs()}"
        assert result is not None and result.returncode == 0, f"never healthy: {result}{logs()}"
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_GRACE_SECONDS}s after SIGTERM{logs()}")
        # uvicorn re-raises the SIGTERM it handled; as PID 1 in a container that is ignored.
        assert code in (0, -signal.SIGTERM), f"exit code {code} after SIGTERM{logs()}"
        assert run_health(cmd).returncode != 0, "HEALTHCHECK passes with the server stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# ---- Python stacks ----


PYTHON_STACKS = sorted(n for n, s in stacks.STACKS.items() if s.language == "python")


@pytest.fixture(scope="module")
def python_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The build stage replayed: its COPYs from tracked files, its `uv sync` RUNs as written
    (uv.lock, --locked) into the image's venv path under a temporary root. Only the cache and
    bytecode settings differ (speed). The image's `pip install uv==X` is checked against the uv
    here instead of run. Yields the venv: the serving set and the package, as in the image."""
    root = tmp_path_factory.mktemp("python-root")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv is not None, "uv is a dev dependency (make setup)"
    stages = dockerfiles.read(DOCKER / "python.Dockerfile")
    venv = root / dockerfiles.env(stages, "build")["UV_PROJECT_ENVIRONMENT"].lstrip("/")
    version = subprocess.run([uv, "--version"], check=True, capture_output=True, text=True)

    def native(argv: list[str]) -> list[str] | None:
        if argv[:2] == ["pip", "install"]:
            assert argv[2:] == [f"uv=={version.stdout.split()[1]}"], argv
            return None
        assert argv[0] == "uv", argv
        target = f"UV_PROJECT_ENVIRONMENT={venv}"
        return ["env", "-u", "UV_NO_CACHE", "UV_COMPILE_BYTECODE=0", target, uv, *argv[1:]]

    replay_build_stage(DOCKER / "python.Dockerfile", "build", root, native)
    yield venv
    shutil.rmtree(root, ignore_errors=True)  # ~350 MiB


def test_python_venv_has_the_serving_set_only(python_venv: Path) -> None:
    """The package and the base dependencies are there; not one package of the bench or dev
    extras that nothing in the base set needs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    names = sorted({Requirement(r).name for e in ("bench", "dev") for r in extras[e]})
    check = (
        "import importlib.metadata as m, sys\n"
        "m.distribution('fiber-endpoints')\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        m.distribution(name)\n"
        "        print(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
    )
    out = subprocess.run([str(python_venv / "bin" / "python"), "-c", check, *names],
                         check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    # pyyaml and packaging are also needed at serve time (uvicorn[standard], OpenTelemetry).
    assert set(out) <= {"pyyaml", "packaging"}, out


def test_python_runtime_has_the_openmp_lightgbm_links() -> None:
    """LightGBM's wheel links the system libgomp.so.1, which slim images lack."""
    import lightgbm

    ldd = shutil.which("ldd")
    assert ldd is not None, "ldd (libc-bin) is needed to check the runtime's shared libraries"
    libs = sorted(Path(lightgbm.__file__).parent.glob("lib/lib_lightgbm*.so"))
    assert libs, "no lib_lightgbm.so in the lightgbm package"
    linked = subprocess.run([ldd, str(libs[0])], capture_output=True, text=True).stdout
    stages = dockerfiles.read(DOCKER / "python.Dockerfile")
    runtime = " ".join(r.args for r in dockerfiles.by_name(stages)["runtime"].all("RUN"))
    assert ("libgomp.so.1" in linked) == ("libgomp1" in runtime), linked


@pytest.mark.parametrize("name", PYTHON_STACKS)
def test_python_entrypoint_serves_and_stops(name: str, python_venv: Path, tmp_path: Path) -> None:
    """In the replayed image venv: the serving set only, so a serve path that imports a bench or
    dev package fails here."""
    cmd = native_commands(name, {Path("/opt/venv"): python_venv})
    assert cmd.argv[0] == "fiber-endpoints"
    cmd.argv[0] = str(python_venv / "bin" / "fiber-endpoints")
    assert cmd.env["PATH"].startswith(f"{python_venv}/bin:")
    serve_check_stop(cmd, tmp_path)


# ---- the Go stack ----


@pytest.fixture(scope="module")
def go_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    assert GO is not None, "the Go toolchain is part of the project's set-up"
    root = tmp_path_factory.mktemp("go-root")
    replay_build_stage(DOCKER / "go.Dockerfile", "build", root)
    yield root


def test_go_build_stage_makes_static_binaries(go_build: Path) -> None:
    """CGO_ENABLED=0 + BUILD_COMMAND give binaries that run on distroless/static."""
    out = fiber_go.BUILD_COMMAND[fiber_go.BUILD_COMMAND.index("-o") + 1]
    for binary in [go_build / "src" / "fiber" / out, go_build / "out" / "healthcheck"]:
        assert binary.exists(), binary
        assert is_static_elf(binary), f"{binary} needs a dynamic loader"


def test_go_entrypoint_serves_and_stops(go_build: Path, tmp_path: Path) -> None:
    stages = dockerfiles.read(DOCKER / "go.Dockerfile")
    built = {}
    for ins in dockerfiles.by_name(stages)["fiber"].all("COPY"):
        if ins.flags.get("from") == "build":
            source, dest = ins.args.split()
            built[Path(dest)] = go_build / source.lstrip("/")
    serve_check_stop(native_commands("fiber", built), tmp_path)


def test_healthcheck_program_tests() -> None:
    assert GO is not None, "the Go toolchain is part of the project's set-up"
    for args in (["vet", "./..."], ["test", "-count=1", "./..."]):
        subprocess.run([GO, *args], cwd=DOCKER / "healthcheck", check=True, timeout=300,
                       env={**os.environ, "CGO_ENABLED": "0"})  # fmt: skip


# ---- compose.yaml, read by the Compose Specification's own loader ----


def test_compose_loads_as_docker_compose_reads_it() -> None:
    """docker/composecheck runs compose-go, the loader behind `docker compose config`: schema,
    interpolation (defaults only), merge keys. What it loads must match the registry."""
    assert GO is not None, "the Go toolchain is part of the project's set-up"
    out = subprocess.run([GO, "run", ".", str(ROOT / "compose.yaml")], cwd=DOCKER / "composecheck",
                         capture_output=True, text=True, timeout=540)  # fmt: skip
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert set(services) == {"jaeger", *stacks.STACKS}
    limits = {(services[n]["cpus"], services[n]["mem_limit"]) for n in stacks.STACKS}
    assert len(limits) == 1, limits
    for name, stack in stacks.STACKS.items():
        service = services[name]
        assert service["build"]["target"] == name
        assert service["build"]["dockerfile"] == f"docker/{stack.language}.Dockerfile"
        [port] = service["ports"]
        assert (port["target"], int(port["published"])) == (stack.default_port,) * 2
        assert port["host_ip"] == "127.0.0.1"
        assert service["depends_on"]["jaeger"]["condition"] == "service_healthy"
        assert f"127.0.0.1:{stack.default_port}/health" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
