#!/usr/bin/env bash
# Install a real Jaeger for `fiber-endpoints trace` and the tracing tests.
#
# Idempotent: the result is cached under $JAEGER_HOME (default: ~/.cache/fiber-endpoints/jaeger, outside the checkout so fresh clones on this machine reuse it) and a second
# run only checks it. Only the Go module proxy is used (no release downloads, no Docker).
#
#   $JAEGER_HOME/bin/jaeger   the binary
#   $JAEGER_HOME/KIND         "jaeger-v2" (cmd/jaeger, OTel-collector based, needs a config file)
#                             or "jaeger-v1" (cmd/all-in-one, configured by flags)
#   $JAEGER_HOME/VERSION      the Go module version that was built
#
# Why a wrapper module: github.com/jaegertracing/jaeger has a `replace` directive in its go.mod, so
# `go install .../cmd/jaeger@<version>` refuses it. We build it from a tiny module that requires the
# pinned version and repeats that replace. Jaeger tags every release twice on one commit (v1.N.0 and
# v2.M.0); only the v1.x tag is a valid version of the module path (it has no /v2 suffix), and since
# v1.6x that tag contains cmd/jaeger, the v2 binary. v1.76.0 is the same commit as Jaeger v2.13.0.
#
# Fallback: Jaeger v1.48.0 cmd/all-in-one (the last v1 line before the v2 split; accepts OTLP too).
# Not done: Zipkin's server jar. It cannot receive OTLP, which the contract makes the only export
# protocol, so it would not test what we ship.
set -euo pipefail

# Pinned versions. Change them here only.
JAEGER_V2_MODULE_VERSION="v1.76.0"   # == Jaeger v2.13.0, cmd/jaeger
JAEGER_V1_MODULE_VERSION="v1.48.0"   # cmd/all-in-one, fallback
SARAMA_REPLACE="github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0"  # from jaeger's go.mod

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}"
JAEGER_HOME="${JAEGER_HOME:-$CACHE/jaeger}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

say() { printf 'install-jaeger: %s\n' "$*" >&2; }

check() {
  # Succeeds when a usable binary is cached.
  [[ -x "$JAEGER_HOME/bin/jaeger" && -f "$JAEGER_HOME/KIND" && -f "$JAEGER_HOME/VERSION" ]] || return 1
  "$JAEGER_HOME/bin/jaeger" --help >/dev/null 2>&1 || return 1
}

build() {
  # build <kind> <module-version> <package>
  local kind="$1" version="$2" pkg="$3"
  local work="$JAEGER_HOME/build-$kind-$version"
  say "building $pkg@$version ($kind) in $work; this takes minutes on 2 cores"
  rm -rf "$work" && mkdir -p "$work"
  (
    cd "$work"
    cat >go.mod <<EOF
module fiber-endpoints/jaeger-build

go 1.24

replace $SARAMA_REPLACE
EOF
    go get "$pkg@$version"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$JAEGER_HOME/bin/jaeger.new" "$pkg"
  ) || return 1
  mv "$JAEGER_HOME/bin/jaeger.new" "$JAEGER_HOME/bin/jaeger"
  printf '%s\n' "$kind" >"$JAEGER_HOME/KIND"
  printf '%s\n' "$version" >"$JAEGER_HOME/VERSION"
  rm -rf "$work"
}

if check; then
  say "cached: $(cat "$JAEGER_HOME/KIND") $(cat "$JAEGER_HOME/VERSION") at $JAEGER_HOME/bin/jaeger"
  exit 0
fi

command -v go >/dev/null || { say "go is not on PATH"; exit 1; }
mkdir -p "$JAEGER_HOME/bin"
rm -f "$JAEGER_HOME/KIND" "$JAEGER_HOME/VERSION"
start=$SECONDS

# JAEGER_KIND=jaeger-v1 skips v2 (to test the fallback, or where v2 does not build).
if [[ "${JAEGER_KIND:-jaeger-v2}" == jaeger-v2 ]] &&
  build jaeger-v2 "$JAEGER_V2_MODULE_VERSION" github.com/jaegertracing/jaeger/cmd/jaeger; then
  :
else
  say "no Jaeger v2 (failed, or JAEGER_KIND=jaeger-v1): building Jaeger $JAEGER_V1_MODULE_VERSION all-in-one"
  build jaeger-v1 "$JAEGER_V1_MODULE_VERSION" github.com/jaegertracing/jaeger/cmd/all-in-one
fi

check || { say "built binary does not run"; exit 1; }
say "installed $(cat "$JAEGER_HOME/KIND") $(cat "$JAEGER_HOME/VERSION") at $JAEGER_HOME/bin/jaeger in $((SECONDS - start)) s"
