#!/usr/bin/env bash
# Install the peer model servers `fiber-endpoints bench` measures beside our stacks, each into its
# own virtualenv, exactly as pinned (with hashes) in peers/<name>/requirements.txt (compiled from
# peers/<name>/requirements.in with `uv pip compile --generate-hashes`; see docs/peers.md).
#
# Their own virtualenvs because they cannot share ours: kserve 0.21 needs protobuf<7, pandas<3 and
# psutil<6, MLServer 1.7.1 pins its own FastAPI and needs uvloop 0.21 (git log --grep kserve).
#
# Idempotent: every venv is cached under $PEERS_HOME (default ~/.cache/fiber-endpoints/peers),
# keyed by the hash of its requirements file, so a changed pin makes a new venv and a second run
# only checks. Registry used: PyPI, through uv (the project's own, at its pin). Nothing else.
#
#   install-peers.sh [NAME...]    default: every folder under peers/
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FIBER_ENDPOINTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fiber-endpoints}"
PEERS_HOME="${PEERS_HOME:-$CACHE/peers}"
UV="${UV:-$here/.venv/bin/uv}"
PYTHON="${PEERS_PYTHON:-python3.11}"
export UV_PYTHON_DOWNLOADS=never
say() { printf 'install-peers: %s\n' "$*" >&2; }

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for d in "$here"/peers/*/; do names+=("$(basename "$d")"); done
fi
mkdir -p "$PEERS_HOME"
for name in "${names[@]}"; do
  req="$here/peers/$name/requirements.txt"
  [[ -f "$req" ]] || { say "no $req"; exit 1; }
  key="$(sha256sum "$req" | cut -c1-12)"
  venv="$PEERS_HOME/$name-$key"
  if [[ -f "$venv/.installed" ]]; then
    say "$name cached: $venv"
  else
    say "installing $name into $venv"
    start=$(date +%s)
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$UV" pip install -q --python "$venv/bin/python" --require-hashes --no-deps -r "$req"
    echo "$(( $(date +%s) - start ))" > "$venv/.install_seconds"
    touch "$venv/.installed"
    say "$name installed in $(cat "$venv/.install_seconds") s"
  fi
  ln -sfn "$venv" "$PEERS_HOME/$name"
done
say "ok: $PEERS_HOME"
