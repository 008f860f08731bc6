#!/usr/bin/env bash
# lm-eval perplexity speed at context 512, in tokens evaluated per second (chunks x 512 / wall
# time, llama-perplexity's measure), median of RUNS. With LLAMA_PERPLEXITY set to a
# llama-perplexity binary, runs it on the same file and model in the same run and prints the
# ratio and both perplexities; otherwise compares with docs/performance.md's figure for the small
# preset (5323 tokens/s, llama-perplexity -c 512 -b 512 -t 2 on the last 100 KiB of Brown).
# Usage: bench/perplexity_bench.sh MODEL.gguf TEXT [RUNS] [BUILD_DIR]
set -euo pipefail
model=$1 text=$2 runs=${3:-5} build=${4:-build}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }
lm_rates=() llama_rates=()
for ((r = 0; r < runs; r++)); do
  t0=$(now)
  out=$("$build/tools/lm-eval" perplexity -m "$model" -c 512 -t 2 --json "$text")
  t1=$(now)
  scored=$(sed 's/.*"tokens":\([0-9]*\),"bytes".*/\1/; q' <<< "$out")
  ppl=$(sed 's/^{"perplexity":\([0-9.e+]*\),.*/\1/' <<< "$out")
  evaluated=$((scored / 255 * 512))
  lm_rates+=("$(awk -v n="$evaluated" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')")
  if [[ -n ${LLAMA_PERPLEXITY:-} ]]; then
    t0=$(now)
    lout=$("$LLAMA_PERPLEXITY" -m "$model" -f "$text" -c 512 -b 512 -t 2 2>&1)
    t1=$(now)
    lppl=$(grep -o 'Final estimate: PPL = [0-9.]*' <<< "$lout" | awk '{ print $5 }')
    llama_rates+=("$(awk -v n="$evaluated" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')")
  fi
done
lm=$(printf '%s\n' "${lm_rates[@]}" | median)
echo "lm-eval perplexity: $lm tokens/s (runs: ${lm_rates[*]}), $evaluated tokens evaluated, PPL $ppl"
if [[ -n ${LLAMA_PERPLEXITY:-} ]]; then
  ll=$(printf '%s\n' "${llama_rates[@]}" | median)
  echo "llama-perplexity:   $ll tokens/s (runs: ${llama_rates[*]}), PPL $lppl"
  awk -v a="$lm" -v b="$ll" 'BEGIN { printf "ratio %.2fx\n", a / b }'
else
  awk -v a="$lm" 'BEGIN { printf "ratio %.2fx against llama-perplexity at 5323 tokens/s (docs/performance.md)\n", a / 5323 }'
fi
