#!/usr/bin/env bash
# Crash safety at scale (issue 27): the kill test of tests/tools/kill_test.sh with N random
# SIGKILLs (default 200) of lm-train, lm-finetune and lm-quantize; see tests/tools/kill_lib.sh
# for what is checked after each kill. Prints the seed (KILL_SEED=S repeats the kill moments),
# "N kills: X checkpoint loads, Y resumed, Z temp files left" and PASS or FAIL (exit 1).
# Run it alone: the kill moments are fractions of run times measured at start.
# Usage: bench/kill_bench.sh [N] [BUILD_DIR]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200} build=${2:-$src/build}
export LM_BIN=${LM_BIN:-$(cd "$build/tools" && pwd)} LM_SRC=$src
source "$src/tests/tools/lib.sh"  # a temp work directory, removed at exit; make_corpus
source "$src/tests/tools/kill_lib.sh"
t0=$(date +%s)
kl_run "$n"
echo "$(( $(date +%s) - t0 )) s"
if (( kl_failures == 0 && kl_temps_left == 0 && kl_resumed == kl_kills )); then echo PASS; else echo "FAIL ($kl_failures failed checks)"; exit 1; fi
