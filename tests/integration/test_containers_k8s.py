"""deploy/ checked strictly, without a cluster: the Helm chart rendered by the real helm and every
object decoded into k8s.io/api's Go types (unknown or mistyped fields fail: deploy/k8scheck), and
the KServe ClusterServingRuntimes checked against the kserve SDK's generated models
(deploy/kservecheck). The runtimes are also started under Docker exactly as KServe would start
them: tests/integration/test_containers_compose.py::test_kserve_runtime_starts_as_kserve_would.

Tools: scripts/install-k8s-tools.sh (helm from the Go module proxy, a kserve venv), cached.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fiber_endpoints import stacks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "fiber-endpoints"
RUNTIMES = ROOT / "deploy" / "kserve" / "cluster-serving-runtimes.yaml"
KSERVE_FILES = sorted((ROOT / "deploy" / "kserve").glob("*.yaml"))
CACHE = (
    Path(os.environ.get("FIBER_ENDPOINTS_CACHE", Path.home() / ".cache" / "fiber-endpoints"))
    / "k8s"
)
HELM = CACHE / "bin" / "helm"
KSERVE_PY = CACHE / "kserve-venv" / "bin" / "python"
UIDS = {"fastapi": 10001, "asgi-msgspec": 10001, "fiber": 65532}


@pytest.fixture(scope="module")
def tools() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-k8s-tools.sh")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def k8scheck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("k8scheck") / "k8scheck"
    subprocess.run(
        ["go", "build", "-o", str(out), "."], cwd=ROOT / "deploy" / "k8scheck", check=True
    )
    yield out


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def render(*sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    return helm("template", "rel", str(CHART), *args).stdout


def strict(k8scheck: Path, manifest: str) -> list[str]:
    proc = subprocess.run([str(k8scheck)], input=manifest, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")[:-1]


def objects(manifest: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(manifest) if d}


def test_chart_lints(tools: None) -> None:
    for stack in stacks.STACKS:
        helm("lint", "--strict", str(CHART), "--set", f"stack={stack}")


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_chart_renders_into_the_apis_own_types(tools: None, k8scheck: Path, stack: str) -> None:
    manifest = render(f"stack={stack}", "otel.endpoint=http://collector:4318")
    name = f"rel-{stack}"
    assert strict(k8scheck, manifest) == [
        f"Service {name}",
        f"Deployment {name}",
        f"HorizontalPodAutoscaler {name}",
    ]
    obj = objects(manifest)
    pod = obj["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    port = stacks.STACKS[stack].default_port
    assert c["image"] == f"fiber-endpoints/{stack}:dev"
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UIDS[stack]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == "http"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert env["OTEL_SERVICE_NAME"] == stack
    hpa = obj["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == name
    assert (
        obj["Service"]["spec"]["selector"] == obj["Deployment"]["spec"]["selector"]["matchLabels"]
    )


def test_chart_variants(tools: None, k8scheck: Path) -> None:
    """No autoscaler (fixed replicas), no tracing, a model from a ConfigMap and a model name."""
    manifest = render(
        "stack=asgi-msgspec",
        "autoscaling.enabled=false",
        "modelConfigMap=my-model",
        "modelName=house-prices",
    )
    assert strict(k8scheck, manifest) == ["Service rel-asgi-msgspec", "Deployment rel-asgi-msgspec"]
    spec = objects(manifest)["Deployment"]["spec"]
    assert spec["replicas"] == 2
    (c,) = spec["template"]["spec"]["containers"]
    assert c["args"] == ["--model-name", "house-prices"]
    assert {"name": "OTEL_SDK_DISABLED", "value": "true"} in c["env"]
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]


def test_unknown_stack_is_refused(tools: None) -> None:
    proc = helm("template", "rel", str(CHART), "--set", "stack=nope", check=False)
    assert proc.returncode != 0 and 'stack "nope" is not one of' in proc.stderr


def test_k8scheck_is_strict(tools: None, k8scheck: Path) -> None:
    """The checker fails on what a lenient apply would drop: an unknown and a mistyped field."""
    manifest = render("stack=fiber")
    for bad in (
        manifest.replace(
            "automountServiceAccountToken: false", "automountServiceAcountToken: false"
        ),
        manifest.replace("periodSeconds: 10", "periodSeconds: ten"),
    ):
        assert bad != manifest
        proc = subprocess.run([str(k8scheck)], input=bad, capture_output=True, text=True)
        assert proc.returncode == 1, proc.stdout


def kserve_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "deploy" / "kservecheck" / "kserve_check.py"
    return subprocess.run(
        [str(KSERVE_PY), str(script), *map(str, paths)], capture_output=True, text=True
    )


def test_kserve_objects_match_the_sdk_models(tools: None) -> None:
    proc = kserve_check(*KSERVE_FILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runtimes = [line for line in proc.stdout.splitlines() if line.startswith("ClusterServing")]
    assert runtimes == [f"ClusterServingRuntime fiber-endpoints-{s}" for s in stacks.STACKS]


def test_kserve_check_is_strict(tools: None, tmp_path: Path) -> None:
    text = RUNTIMES.read_text()
    for bad in (
        text.replace("protocolVersions:", "protocolVersion:"),
        text.replace("periodSeconds: 10", 'periodSeconds: "10"'),
        text.replace("multiModel: false", "multiModel: 0"),
    ):
        assert bad != text
        path = tmp_path / "bad.yaml"
        path.write_text(bad)
        assert kserve_check(path).returncode == 1


def test_every_v2_stack_has_a_runtime() -> None:
    docs = [d for d in yaml.safe_load_all(RUNTIMES.read_text()) if d]
    assert [d["metadata"]["name"] for d in docs] == [f"fiber-endpoints-{s}" for s in stacks.STACKS]
    for doc, stack in zip(docs, stacks.STACKS, strict=True):
        assert doc["spec"]["protocolVersions"] == ["v2"]
        (c,) = doc["spec"]["containers"]
        assert c["image"] == f"fiber-endpoints/{stack}:dev"
        assert c["securityContext"]["runAsUser"] == UIDS[stack]
