#!/usr/bin/env bash
# Tools that validate deploy/ (tests/integration/test_containers_k8s.py), cached in
# $CACHE/k8s (default ~/.cache/fiber-endpoints/k8s) so a second run only checks them:
#
#   bin/helm        the real helm, built from the Go module proxy (helm.sh/helm/v3/cmd/helm)
#   kserve-venv/    a venv with the kserve SDK, whose generated models check the KServe objects;
#                   its own venv because kserve pins protobuf, pandas and psutil below uv.lock's
#
# deploy/k8scheck (the k8s.io/api types) is built by the test itself (go build, cached by Go).
set -euo pipefail

HELM_VERSION="v3.19.0"
KSERVE_VERSION="0.21.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}/k8s"
UV="${UV:-$here/.venv/bin/uv}"
say() { printf 'install-k8s-tools: %s\n' "$*" >&2; }
mkdir -p "$CACHE/bin"

if [[ -x "$CACHE/bin/helm" && "$(cat "$CACHE/bin/helm.version" 2>/dev/null)" == "$HELM_VERSION" ]] &&
  "$CACHE/bin/helm" version >/dev/null; then
  say "cached: helm $HELM_VERSION"
else
  say "building helm $HELM_VERSION from the Go module proxy (minutes on 2 cores)"
  t0=$SECONDS
  GOBIN="$CACHE/bin" CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" >"$CACHE/bin/helm.version"
  say "helm built in $((SECONDS - t0)) s"
fi

if "$CACHE/kserve-venv/bin/python" -c "import importlib.metadata as m, kserve, sys; sys.exit(m.version('kserve') != '$KSERVE_VERSION')" 2>/dev/null; then
  say "cached: kserve $KSERVE_VERSION venv"
else
  t0=$SECONDS
  rm -rf "$CACHE/kserve-venv"
  UV_PYTHON_DOWNLOADS=never "$UV" venv -q --python python3.11 "$CACHE/kserve-venv"
  UV_PYTHON_DOWNLOADS=never "$UV" pip install -q --python "$CACHE/kserve-venv/bin/python" \
    "kserve==$KSERVE_VERSION"
  say "kserve $KSERVE_VERSION venv in $((SECONDS - t0)) s"
fi
