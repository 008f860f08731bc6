#!/usr/bin/env bash
# Fuzz smoke test: replays the committed seeds and regression inputs (tests/fuzz/seeds/TARGET,
# tests/fuzz/regressions/TARGET) through every libFuzzer target, then 2000 mutations of them with
# a fixed seed, under ASan+UBSan. Needs the fuzz build that tests/fuzz/run.sh makes in
# build-fuzz/ (or $LM_FUZZ_BUILD): building it from nothing takes about 6 minutes at -j1 on
# a 2-core machine, too long for this test, so without one it prints a 'skipped:' line and
# passes; an existing one is brought up to date if that takes under 45 s.
source "$(dirname "$0")/lib.sh"
fb=${LM_FUZZ_BUILD:-$LM_SRC/build-fuzz}
targets=(gguf model lora spm token_file jsonl labeled safetensors hf_tokenizer hf_config chat)

skip() { echo "skipped: $*"; exit 0; }
command -v clang++ > /dev/null || skip "clang++ is not installed (apt-get install clang libfuzzer-14-dev)"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > p.cpp
clang++ -fsanitize=fuzzer p.cpp -o p 2> /dev/null || skip "libFuzzer is not installed (apt-get install libfuzzer-14-dev)"
[[ -f $fb/CMakeCache.txt ]] || skip "no fuzz build in $fb; tests/fuzz/run.sh makes one (about 6 minutes at -j1)"
if ! timeout 45 cmake --build "$fb" -j1 --target fuzz_all > build.log 2>&1; then
  skip "$fb is out of date and did not build within 45 s; run tests/fuzz/run.sh"
fi

export OMP_NUM_THREADS=1 ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
limits=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=5)
for t in "${targets[@]}"; do
  inputs=()
  for d in "$LM_SRC/tests/fuzz/seeds/$t" "$LM_SRC/tests/fuzz/regressions/$t"; do
    [[ -d $d ]] && while IFS= read -r f; do inputs+=("$f"); done < <(find "$d" -type f | sort)
  done
  if ((${#inputs[@]} == 0)); then fail "$t: no seeds in tests/fuzz/seeds/$t"; continue; fi
  # Replay: each file runs once; any report or crash exits non-zero.
  if "$fb/tests/fuzz/fuzz_$t" "${limits[@]}" "${inputs[@]}" > "replay_$t.log" 2>&1; then pass
  else fail "$t: replaying its seeds and regressions failed: $(grep -m1 -E 'ERROR|runtime error|finding' "replay_$t.log")"; fi
  # A short deterministic run from the same inputs.
  mkdir -p "corpus_$t" "found_$t"
  cp "${inputs[@]}" "corpus_$t/" 2> /dev/null
  if "$fb/tests/fuzz/fuzz_$t" "${limits[@]}" -seed=1 -runs=2000 -artifact_prefix="found_$t/" "corpus_$t" \
      > "fuzz_$t.log" 2>&1; then pass
  else fail "$t: 2000 runs from its seeds found: $(grep -m1 -E 'ERROR|runtime error|finding' "fuzz_$t.log"); input kept in $T/found_$t"; trap - EXIT; fi
done
finish
