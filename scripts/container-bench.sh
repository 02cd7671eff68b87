#!/usr/bin/env bash
# Container numbers beside the native ones, in ONE `fiber-endpoints bench` run and report:
#
#   <stack>          native, started by bench, pinned on the server CPU (bench/placement.py)
#   <stack>-docker   compose.yaml's container, through its published port (docker-proxy / NAT)
#   <stack>-hostnet  the same image on the host's network (no proxy, no NAT), port + 1000
#
# Every container has the same quota (1 CPU), memory (1 GiB) and CPU (cpuset = the server CPU) as
# the native servers' placement; tracing off everywhere, as natively. Extra arguments go to bench:
#
#   bash scripts/container-bench.sh --samples 30 --calls 100 --load-modes closed --connections 1,16
#
# The engine is scripts/containers.sh's (started and stopped here when private).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
CLI="${CLI:-$here/.venv/bin/fiber-endpoints}"
STACKS=(fastapi fiber asgi-msgspec)
declare -A PORT=([fastapi]=8000 [fiber]=8001 [asgi-msgspec]=8002)

env_lines="$(bash scripts/containers.sh start)"
set -a
eval "$env_lines"
set +a
compose() { docker compose -f compose.yaml -f docker/compose.bench.yaml "$@"; }
cleanup() {
  compose down --timeout 15 >/dev/null 2>&1 || true
  bash scripts/containers.sh stop
}
trap cleanup EXIT

OTEL_SDK_DISABLED=true compose up --build --wait --quiet-pull
args=()
names="$(IFS=,; echo "${STACKS[*]}")"
for s in "${STACKS[@]}"; do
  args+=(--target "$s-docker=http://127.0.0.1:${PORT[$s]}")
  args+=(--target "$s-hostnet=http://127.0.0.1:$((PORT[$s] + 1000))")
  names+=",$s-docker,$s-hostnet"
done
# --no-peers: the V2 peers comparison (MLServer, KServe, BentoML) is not about containers.
"$CLI" bench --stacks "$names" "${args[@]}" --no-peers "$@"
