#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit tests and tool tests) under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
