#!/usr/bin/env bash
# Installs the Debian packages lm needs (only those missing), then configures and builds lm
# in build/ (Release). Used by scripts/demo.sh and scripts/test.sh; safe to run again.
# Extra commands to make sure of can be named as arguments, "command:package" (the demo asks for
# npm this way: a Node.js installed outside Debian brings its own npm). node and npm are always
# made sure of: lm-serve's test runs the official openai npm client (tests/node/, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(build-essential cmake pkg-config libopenblas-dev libopenblas0-openmp libcli11-dev libsentencepiece-dev
          nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev doctest-dev sentencepiece groff-base curl
          libopenmpi-dev openmpi-bin)  # MPI: data-parallel lm-train/lm-finetune (docs/distributed.md)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
for want in node:nodejs npm:npm "$@"; do
  command -v "${want%%:*}" >/dev/null || missing+=("${want#*:}")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}" >&2
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup.sh: run as root, or: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The openai npm package at the version tests/node/package-lock.json pins.
if [[ ! -d tests/node/node_modules/openai ]]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
