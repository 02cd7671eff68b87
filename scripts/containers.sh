#!/usr/bin/env bash
# A container engine for the compose lab (docs/containers.md), found or made, and stopped after.
#
#   scripts/containers.sh prepare   engine (installed on opt-in), Compose v2, stand-ins, images:
#                                   all cached, and no engine left running
#   scripts/containers.sh start     use the engine that works, else start a private dockerd
#                                   (and build any missing stand-in)
#   scripts/containers.sh stop      stop the private dockerd we started (by its pid), if any
#   scripts/containers.sh env       print the variables that point docker and compose at it
#
# 1. An engine that answers (`docker info`) is used as it is: nothing is installed, started,
#    pulled or tagged, and `stop` leaves it alone.
# 2. Otherwise, where possible (root, Debian's apt, no container engine package installed at all:
#    installing docker.io beside a stopped Docker CE can remove its containerd), Debian's docker.io
#    is installed -- only with CI set, or the user's opt-in FIBER_ENDPOINTS_INSTALL_ENGINE=1 --
#    and a PRIVATE dockerd is started: its own data root (cached under $CACHE/containers/engine),
#    exec root, socket, pidfile; no systemd unit, no /var/lib/docker, stopped by its pid.
# 3. Compose v2: `docker compose` if it works, else built once from the Go module proxy
#    (github.com/docker/compose/v2, ~8 min on 2 cores) and cached; Debian's docker-compose v1
#    cannot read compose.yaml (top-level `name`) and has no `up --wait`.
# 4. Base images: only in the private engine, each base image the Dockerfiles and compose.yaml
#    name is pulled, and where that fails (no registry reachable) a LOCAL STAND-IN is built from
#    docker/standins/ and tagged with the official name, so the unchanged Dockerfiles build on it.
#    They stay in the private data root, so they never shadow a real image in an engine a user
#    runs. The host's extra CA certificates go into the stand-ins only. Builds then use the classic
#    builder (DOCKER_BUILDKIT=0): BuildKit would pull the `# syntax=` frontend image from a
#    registry as well.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}/containers"
ENGINE="$CACHE/engine"                  # private data root + logs, kept between runs
RUN_DIR="${FIBER_ENDPOINTS_ENGINE_RUN:-/run/fiber-endpoints-engine}"  # socket, pidfile, exec root
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
ENV_FILE="$CACHE/engine.env"            # written by `start`: how to reach the engine in use
DOCKER_CONFIG_DIR="$CACHE/docker-config"  # private client config: only the compose plugin
COMPOSE_VERSION="v2.28.1"               # the newest on the proxy that still has the classic builder
COMPOSE_BIN="$CACHE/bin/docker-compose-$COMPOSE_VERSION"
GO_VERSION="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$here/fiber/go.mod")"
ROOTFS_TAR="$CACHE/debian-bookworm-minbase.tar"
STANDIN_BASE="fiber-endpoints-standin/debian:bookworm"
STANDIN_LABEL="fiber-endpoints.standin"
# The base images named by docker/*.Dockerfile and compose.yaml, and their stand-in's Dockerfile.
declare -A STANDINS=(
  ["python:3.11.14-slim-bookworm"]=python
  ["golang:1.26.8-bookworm"]=golang
  ["gcr.io/distroless/static-debian12:nonroot"]=distroless
  ["jaegertracing/jaeger:2.13.0"]=jaeger
)

say() { printf 'containers: %s\n' "$*" >&2; }
loud() { printf '\n*** containers: %s ***\n\n' "$*" >&2; }
timed() {  # timed LABEL CMD...: runs CMD, then says how long it took (the cold costs in the docs)
  local label="$1" t0=$SECONDS; shift
  "$@"
  say "$label: $((SECONDS - t0)) s"
}

private_running() {
  [[ -S "$SOCK" && -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null &&
    DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1
}

user_engine() {  # an engine that answers without us: use it, touch nothing
  [[ -z "${FIBER_ENDPOINTS_PRIVATE_ENGINE:-}" ]] || return 1
  [[ "${DOCKER_HOST:-}" != "unix://$SOCK" ]] || return 1
  timeout 20 docker info >/dev/null 2>&1
}

engine_packages() {  # container engine packages installed, one per line
  # dpkg-query exits 1 when any of them is unknown (as most are on a fresh machine): not a failure
  { dpkg-query -W -f '${db:Status-Status} ${Package}\n' docker.io docker-ce moby-engine podman \
    containerd containerd.io 2>/dev/null || true; } | awk '$1 == "installed" {print $2}'
}

install_engine() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return 0
  local why=""
  [[ $(id -u) == 0 ]] || why="not root"
  command -v apt-get >/dev/null || why="no apt-get (not Debian)"
  local pkgs; pkgs="$(engine_packages | tr '\n' ' ')"
  [[ -z "$pkgs" ]] || why="a container engine package is installed but not answering ($pkgs): start it (then this uses it) rather than install Debian's beside it"
  if [[ -z "$why" && -z "${CI:-}" && "${FIBER_ENDPOINTS_INSTALL_ENGINE:-}" != 1 ]]; then
    why="installing Debian's docker.io needs your opt-in: FIBER_ENDPOINTS_INSTALL_ENGINE=1 make containers (CI does it by itself)"
  fi
  if [[ -n "$why" ]]; then
    say "no container engine: $why"
    if [[ "$MODE" == prepare ]]; then  # the lab's tests then skip (and fail under CI)
      say "no engine: the compose lab is skipped (see above)"
      exit 0
    fi
    exit 3
  fi
  loud "installing Debian's container engine (docker.io: dockerd, containerd, runc) with apt"
  timed "apt-get update" apt-get update -qq
  # The package's systemd units are not started here (no systemd); the private dockerd below is.
  timed "apt-get install docker.io" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
}

start_private() {
  private_running && return 0
  mkdir -p "$ENGINE/data" "$RUN_DIR"
  rm -f "$SOCK" "$PIDFILE"
  say "starting a private dockerd: data root $ENGINE/data, socket $SOCK"
  # Own data root, exec root (its containerd too), socket and pidfile. The default bridge is
  # docker0, as any dockerd makes; there is no other engine on this machine to share it with.
  setsid dockerd --data-root "$ENGINE/data" --exec-root "$RUN_DIR/exec" \
    --host "unix://$SOCK" --pidfile "$PIDFILE" --storage-driver overlay2 \
    >>"$ENGINE/dockerd.log" 2>&1 </dev/null &
  local t0=$SECONDS
  until DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1; do
    if ((SECONDS - t0 > 60)); then
      say "dockerd did not answer in 60 s; last lines of $ENGINE/dockerd.log:"
      tail -20 "$ENGINE/dockerd.log" >&2
      return 1
    fi
    sleep 0.2
  done
  say "private dockerd pid $(cat "$PIDFILE") ready in $((SECONDS - t0)) s"
}

stop_private() {
  [[ -f "$PIDFILE" ]] || { say "no private dockerd to stop"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    # dockerd stops its containers (their stop timeout) and its containerd, then exits.
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd $pid still running after 30 s: SIGKILL"
      kill -KILL "$pid" || true
    fi
    say "private dockerd $pid stopped"
  fi
  rm -f "$PIDFILE" "$SOCK"
}

ensure_compose() {  # sets COMPOSE (the command) and, for the plugin, DOCKER_CONFIG
  if docker compose version >/dev/null 2>&1; then
    COMPOSE="docker compose"
    return 0
  fi
  if [[ ! -x "$COMPOSE_BIN" ]]; then
    loud "no Compose v2: building github.com/docker/compose/v2@$COMPOSE_VERSION from the Go module proxy (minutes; cached in $CACHE/bin)"
    local dir work
    dir="$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
    work="$(mktemp -d)"
    cp -r "$dir/." "$work" && chmod -R u+w "$work"
    mkdir -p "$CACHE/bin"
    (cd "$work" && timed "go build compose $COMPOSE_VERSION" env CGO_ENABLED=0 GOFLAGS=-mod=mod \
      go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
      -o "$COMPOSE_BIN.new" ./cmd)
    mv "$COMPOSE_BIN.new" "$COMPOSE_BIN"
    rm -rf "$work"
  fi
  # As the `docker compose` plugin, in a private client config (nothing in ~/.docker changes).
  mkdir -p "$DOCKER_CONFIG_DIR/cli-plugins"
  ln -sf "$COMPOSE_BIN" "$DOCKER_CONFIG_DIR/cli-plugins/docker-compose"
  export DOCKER_CONFIG="$DOCKER_CONFIG_DIR"
  COMPOSE="docker compose"
}

extra_cas() {  # the host's extra CA certificates into DIR (may be none)
  mkdir -p "$1"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$1/" \; 2>/dev/null || true
}

debian_base() {
  if docker image inspect "$STANDIN_BASE" >/dev/null 2>&1; then return 0; fi
  if [[ ! -s "$ROOTFS_TAR" ]]; then
    command -v debootstrap >/dev/null || timed "apt-get install debootstrap" env \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    local mirror dir
    # The host's own Debian mirror, as apt is configured (deb822 or one-line sources).
    mirror="$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
      /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -1 | awk '{print $2}' || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    dir="$(mktemp -d)"
    say "debootstrap --variant=minbase bookworm from $mirror (about 2.5 min)"
    timed "debootstrap" debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$CACHE/debootstrap.log" 2>&1
    rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
    tar -C "$dir" -cf "$ROOTFS_TAR.new" . && mv "$ROOTFS_TAR.new" "$ROOTFS_TAR"
    rm -rf "$dir"
  fi
  timed "docker import" docker import --change "LABEL $STANDIN_LABEL=debian-minbase" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$ROOTFS_TAR" "$STANDIN_BASE" >/dev/null
}

standin_context() {  # standin_context KIND DIR: the files its Dockerfile copies
  local kind="$1" ctx="$2"
  extra_cas "$ctx/extra-ca"
  case "$kind" in
    golang)
      local dir
      dir="$(GOFLAGS=-mod=mod go mod download -json "golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
      cp -r "$dir/." "$ctx/go" && chmod -R u+w "$ctx/go"
      # Module zips keep no modes; the go command marks these executable when it unpacks a
      # toolchain for itself, so do the same.
      chmod +x "$ctx/go/bin/"* "$ctx/go/pkg/tool/"*/*
      ;;
    jaeger)
      bash "$here/scripts/install-jaeger.sh"
      cp "${JAEGER_HOME:-${CACHE%/containers}/jaeger}/bin/jaeger" "$ctx/jaeger"
      ;;
  esac
}

standins() {
  local image kind built=()
  for image in "${!STANDINS[@]}"; do
    kind="${STANDINS[$image]}"
    local hash; hash="$(sha256sum "$here/docker/standins/$kind.Dockerfile" | cut -c1-16)"
    if docker image inspect "$image" >/dev/null 2>&1; then
      # A stand-in is rebuilt when its Dockerfile changed; a real (pulled) image is kept.
      local what have
      what="$(docker image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$image")"
      have="$(docker image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL.hash\"}}" "$image")"
      [[ "$what" == "$image" && "$have" != "$hash" ]] || continue
      say "stand-in $image: docker/standins/$kind.Dockerfile changed, rebuilding"
    fi
    if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
      say "pulled $image"
      continue
    fi
    debian_base
    local ctx; ctx="$(mktemp -d)"
    standin_context "$kind" "$ctx"
    timed "stand-in $image" env DOCKER_BUILDKIT=0 docker build -q \
      --build-arg "GOPROXY=$(go env GOPROXY)" --label "$STANDIN_LABEL=$image" \
      --label "$STANDIN_LABEL.hash=$hash" \
      -f "$here/docker/standins/$kind.Dockerfile" -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
    built+=("$image")
    docker image prune -f >/dev/null  # the stand-ins' own build stages (this engine only)
  done
  if ((${#built[@]})); then
    loud "NO IMAGE REGISTRY: built LOCAL STAND-INS for ${built[*]} (docker/standins/), in the private engine only"
  fi
  local standin_list
  standin_list="$(standins_present)"
  if [[ -n "$standin_list" ]]; then
    loud "images are built on LOCAL STAND-INS, not the official base images: $standin_list"
  fi
}

standins_present() {  # the official names that are stand-ins in this engine (images built on
  # a stand-in inherit its label, so each name is asked for its own)
  local image
  for image in "${!STANDINS[@]}"; do
    [[ "$(docker image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$image" 2>/dev/null)" == "$image" ]] &&
      printf '%s ' "$image"
  done
  return 0
}

write_env() {  # write_env MODE: the variables that reach the engine in use
  mkdir -p "$CACHE"
  {
    echo "FIBER_ENDPOINTS_ENGINE=$1"
    if [[ "$1" == private ]]; then
      echo "DOCKER_HOST=unix://$SOCK"
      echo "DOCKER_BUILDKIT=0"
    fi
    [[ -z "${DOCKER_CONFIG:-}" ]] || echo "DOCKER_CONFIG=$DOCKER_CONFIG"
    echo "FIBER_ENDPOINTS_STANDINS=$STANDINS_IN_USE"
  } >"$ENV_FILE"
}

start() {
  STANDINS_IN_USE=0
  if user_engine; then
    ensure_compose
    say "using the container engine that answers (docker info); nothing installed or started"
    write_env user
    return 0
  fi
  install_engine
  start_private
  export DOCKER_HOST="unix://$SOCK"
  ensure_compose
  standins
  [[ -z "$(standins_present)" ]] || STANDINS_IN_USE=1
  write_env private
}

build_images() {  # every image of compose.yaml, so the tests' `up --build` finds its layers cached
  set -a; source "$ENV_FILE"; set +a
  (cd "$here" && timed "docker compose build" $COMPOSE build -q)
  if [[ "$FIBER_ENDPOINTS_ENGINE" == private ]]; then  # not `|| f`: set -e would be off in f
    keep_stages_prune_rest
  fi
}

# The classic builder (the private engine's) keeps each intermediate build stage as an untagged
# image: the next build's layer cache, and garbage once the sources change. Left alone they grew
# to 162 images and 21 GB in a day of runs. The current build's intermediate stages (those a later
# FROM or COPY --from names) are tagged under fiber-endpoints-cache/ -- cache hits, about a second
# each -- so the prune removes only images no current build uses. Only in the private engine: an
# engine a user runs builds with BuildKit, which bounds its own cache.
keep_stages_prune_rest() {
  local dockerfile name stage
  for dockerfile in "$here"/docker/*.Dockerfile; do
    name="$(basename "$dockerfile" .Dockerfile)"
    for stage in $(sed -n -e 's/^FROM \([A-Za-z0-9_.-]*\) AS .*/\1/p' \
      -e 's/^COPY .*--from=\([A-Za-z0-9_.-]*\) .*/\1/p' "$dockerfile" | sort -u); do
      grep -q "^FROM .* AS $stage\$" "$dockerfile" || continue  # an image, not a stage
      local out  # the classic builder's deprecation notice on every build: shown on failure only
      if ! out="$(docker build -q -f "$dockerfile" --target "$stage" \
        -t "fiber-endpoints-cache/$name:$stage" "$here" 2>&1 >/dev/null)"; then
        printf '%s\n' "$out" >&2
        return 1
      fi
    done
  done
  timed "prune images no current build uses" docker image prune -f >/dev/null
}

MODE="${1:-}"
case "$MODE" in
  prepare)  # everything cached: engine, Compose, stand-ins, images; no engine left running
    t0=$SECONDS
    # Called plainly, never as `start || ...`: bash ignores `set -e` in every function called
    # from a || list, so a failed step went on to the next (a killed Compose build went on to
    # debootstrap, and failed only later, on the missing binary).
    trap stop_private EXIT  # before start: a step failing after the engine started stops it too
    start
    build_images
    say "prepared in $((SECONDS - t0)) s"
    ;;
  start) start; cat "$ENV_FILE" ;;
  stop) stop_private ;;
  env) cat "$ENV_FILE" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
