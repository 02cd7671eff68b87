#!/usr/bin/env bash
# Install the load generators used by `fiber-endpoints bench` (the load phase) and its tests.
#
# Idempotent: everything is cached under $LOAD_TOOLS_HOME (default: ~/.cache/fiber-endpoints/load-tools, outside the checkout so fresh clones on this machine reuse it); a
# second run only checks it. Registries used: Debian's packages (wrk), crates.io (oha, built with
# the machine's cargo) and the Go module proxy (vegeta). Nothing else is downloaded.
#
#   wrk                              closed loop (Debian package, /usr/bin/wrk)
#   $LOAD_TOOLS_HOME/bin/oha         open loop, constant rate, latency-corrected, every answer kept
#                                    (the load phase; src/fiber_endpoints/bench/oha.py says why)
#   $LOAD_TOOLS_HOME/bin/vegeta      open loop with bounded in-flight requests (the overload test)
#   $LOAD_TOOLS_HOME/bin/trivial-server
#                                    a C epoll server answering a constant: the generators'
#                                    own ceiling is measured against it (built from
#                                    src/fiber_endpoints/bench/trivial_server.c with cc)
set -euo pipefail

VEGETA_VERSION="v12.13.0"   # github.com/tsenart/vegeta/v12, pinned; change it here only
OHA_VERSION="1.16.0"        # crates.io/crates/oha, pinned, built --locked; change it here only

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}"
LOAD_TOOLS_HOME="${LOAD_TOOLS_HOME:-$CACHE/load-tools}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
say() { printf 'install-load-tools: %s\n' "$*" >&2; }
mkdir -p "$LOAD_TOOLS_HOME/bin"

# 1. wrk, from Debian.
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk (apt)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk
fi
say "wrk: $(command -v wrk)"

# 2. vegeta, from the Go module proxy.
vegeta="$LOAD_TOOLS_HOME/bin/vegeta"
if [[ -x "$vegeta" && "$(cat "$LOAD_TOOLS_HOME/VEGETA_VERSION" 2>/dev/null)" == "$VEGETA_VERSION" ]]; then
  say "vegeta $VEGETA_VERSION cached"
else
  command -v go >/dev/null 2>&1 || { say "go is needed to build vegeta"; exit 1; }
  say "building vegeta $VEGETA_VERSION"
  GOBIN="$LOAD_TOOLS_HOME/bin" CGO_ENABLED=0 go install -trimpath \
    "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  echo "$VEGETA_VERSION" > "$LOAD_TOOLS_HOME/VEGETA_VERSION"
fi
"$vegeta" -version >/dev/null

# 3. oha, from crates.io (~4 min to build on 2 cores, once per user).
oha="$LOAD_TOOLS_HOME/bin/oha"
if [[ -x "$oha" && "$(cat "$LOAD_TOOLS_HOME/OHA_VERSION" 2>/dev/null)" == "$OHA_VERSION" ]]; then
  say "oha $OHA_VERSION cached"
else
  # rustup installs cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
  [[ -x "$HOME/.cargo/bin/cargo" ]] && PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null 2>&1 || { say "cargo (Rust >= 1.88) is needed to build oha"; exit 1; }
  say "building oha $OHA_VERSION (cargo install --locked)"
  cargo install --quiet --locked --version "$OHA_VERSION" --root "$LOAD_TOOLS_HOME" oha
  echo "$OHA_VERSION" > "$LOAD_TOOLS_HOME/OHA_VERSION"
fi
"$oha" --version >/dev/null

# 4. The trivial server (the generators' ceiling).
src="$here/src/fiber_endpoints/bench/trivial_server.c"
bin="$LOAD_TOOLS_HOME/bin/trivial-server"
if [[ ! -x "$bin" || "$src" -nt "$bin" ]]; then
  say "building trivial-server"
  ${CC:-cc} -O2 -Wall -Wextra -o "$bin" "$src"
fi
say "ok: $LOAD_TOOLS_HOME/bin"
