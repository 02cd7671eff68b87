#!/usr/bin/env bash
# Install a real Prometheus server for the metrics test (tests/integration/test_metrics_prometheus.py).
#
# Debian's `prometheus` package, unpacked (not installed: no service is started, no users are
# added) into $PROMETHEUS_HOME (default: ~/.cache/fiber-endpoints/prometheus, outside the checkout
# so fresh clones reuse it). Idempotent: a second run only checks the binary. Registry: Debian's
# apt. The binary is a static Go program; the package's web-UI dependencies are not needed.
set -euo pipefail

CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}"
PROMETHEUS_HOME="${PROMETHEUS_HOME:-$CACHE/prometheus}"
say() { printf 'install-prometheus: %s\n' "$*" >&2; }
bin="$PROMETHEUS_HOME/usr/bin/prometheus"

if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
  say "cached: $bin"
  exit 0
fi
mkdir -p "$PROMETHEUS_HOME"
if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "downloading Debian's prometheus package (apt-get download)"
(cd "$work" && { apt-get download -qq prometheus 2>/dev/null \
  || { $SUDO apt-get update -qq && apt-get download -qq prometheus; }; })
dpkg-deb -x "$work"/prometheus_*.deb "$PROMETHEUS_HOME"
"$bin" --version 2>&1 | head -1 >&2
say "ok: $bin"
