#!/usr/bin/env bash
# Crash safety (issue 27): SIGKILLs lm-train, lm-finetune and lm-quantize at KILL_COUNT (24)
# random moments, checkpoint saves and output writes among them, and checks after each kill that
# the output is absent or whole, the checkpoint loads at the step the run reached (the previous
# one when a save was interrupted), the run resumes and writes the uninterrupted run's output,
# and no temp file of a killed run survives the next start. The logic is tests/tools/kill_lib.sh;
# bench/kill_bench.sh runs it for 200 kills. KILL_SEED=N repeats a run's kill moments.
source "$(dirname "$0")/lib.sh"
source "$LM_SRC/tests/tools/kill_lib.sh"

# 24 kills, 8 under the sanitizers (LM_TEST_LEAN): there the same save, load and resume paths
# are checked for memory errors, and each kill's run is many times slower.
kl_run "${KILL_COUNT:-$([[ -n ${LM_TEST_LEAN:-} ]] && echo 8 || echo 24)}"
(( kl_failures == 0 )) && pass || fail "$kl_failures checks failed after the kills (seed $KILL_SEED)"
(( kl_temps_left == 0 )) && pass || fail "$kl_temps_left temp files left beside outputs after the next run"
(( kl_kills > 0 && kl_resumed == kl_kills )) && pass || fail "$kl_resumed of $kl_kills kills followed by a finished run"
finish
