#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit tests and tool tests) under ctest:
# first the Release build the tools ship as, then again built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/), where any report fails the test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Models the tool tests train to start from (tests/tools/lib.sh, fixture): made by the Release
# pass, taken by the sanitizer pass. Emptied first, so every run trains them with its own lm-train.
export LM_TEST_CACHE=$PWD/build/test-fixtures
rm -rf "$LM_TEST_CACHE"
ctest --test-dir build --output-on-failure -j"$(nproc)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLM_SANITIZE_ADDRESS=ON -DLM_SANITIZE_UNDEFINED=ON \
      -DLM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
# LM_TEST_LEAN: tests that repeat one check over much data use less of it under the sanitizers
# (lm_quantize_test scores 100 lines instead of 400, kill_test kills 8 runs instead of 24, each
# test says what it trims), so this pass does not double the time: 470 s of tests at -j2 on
# 2026-12-04 (615 s before the last trims). docs_test runs in the Release pass only: it compares the
# generated man pages and completions with the option declarations, which the sanitizers do not
# change (58 s of this pass).
# The pass builds at -O0: measured on this 2-core machine from a cold cache, -O1 cut the tests from
# 615 s to 436 s but lengthened the build from 319 s to 587 s: no gain for a fresh machine.
LM_TEST_LEAN=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 ctest --test-dir build-asan --output-on-failure \
  -j"$(nproc)" -E '^tools\.docs_test$'
