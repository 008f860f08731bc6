#!/usr/bin/env bash
# lm-generate --each-line one line at a time against --parallel N, side by side in one run:
# LINES lines of a text, TOKENS new tokens each (--ignore-eos; --each-line's newline stop
# stays), one seed. Checks that every --parallel run writes exactly the one-at-a-time output and
# prints the median tokens/s over REPS alternated runs (new tokens over the time from the first
# line to the last, as -v reports it) and the ratio to one at a time.
#   bench/parallel_bench.sh [MODEL.gguf]
# Without a model it uses bench/out/vs_llama/small-q8_0.gguf, made as bench/vs_llama.sh makes
# it (random weights of the small preset, a byte-level BPE vocabulary of 8192 pieces, q8_0).
# Environment: TEXT (default data/brown/valid.txt, from scripts/get-brown.sh), LINES (1000),
# TOKENS (32), PARALLEL (default "4 8 16"), REPS (3), THREADS (2), BASE (another build's
# lm-generate, e.g. one from before --parallel existed: run one line at a time in the same
# alternation, its tokens/s the sum of -v's per-line counts over the process's wall time, and
# every ratio printed against it too; its output is not compared, since kernels change bits).
set -euo pipefail
cd "$(dirname "$0")/.."
text=${TEXT:-data/brown/valid.txt}
lines=${LINES:-1000}
tokens=${TOKENS:-32}
parallel=${PARALLEL:-4 8 16}
reps=${REPS:-3}
threads=${THREADS:-2}
bin=build/tools
[[ -s $text ]] || scripts/get-brown.sh data/brown
model=${1:-}
if [[ -z $model ]]; then
  out=bench/out/vs_llama
  mkdir -p "$out"
  model=$out/small-q8_0.gguf
  [[ -s $out/vocab.gguf ]] || "$bin/lm-tokenize" train -q --model-type bytebpe --vocab-size 8192 -o "$out/vocab.gguf" "$text"
  [[ -s $out/small-f32.gguf ]] || build/bench/generate_bench --write small "$out/vocab.gguf" "$out/small-f32.gguf"
  [[ -s $model ]] || "$bin/lm-quantize" -q -m "$out/small-f32.gguf" -o "$model" --type q8_0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n "$lines" "$text" > "$tmp/lines.txt"
# run N: tokens/s of one run with --parallel N; its output in $tmp/out.N
run() {
  "$bin/lm-generate" -m "$model" -t "$threads" --each-line -f "$tmp/lines.txt" -n "$tokens" --ignore-eos -s 1 \
    --parallel "$1" -v > "$tmp/out.$1" 2> "$tmp/err"
  sed -n 's/.* new tokens in .* s (\([0-9.]*\) tok\/s).*/\1/p' "$tmp/err" | tail -n 1
}
# run_base: tokens/s of one run of $BASE, one line at a time.
run_base() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BASE" -m "$model" -t "$threads" --each-line -f "$tmp/lines.txt" -n "$tokens" --ignore-eos -s 1 -v \
    > "$tmp/out.base" 2> "$tmp/err"
  t1=$(date +%s.%N)
  sed -n 's/.*: line [0-9]*: [0-9]* prompt tokens .*, \([0-9]*\) new .*/\1/p' "$tmp/err" |
    awk -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '{ n += $1 } END { printf "%.1f", n / s }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A speeds
for ((r = 0; r < reps; r++)); do
  [[ -n ${BASE:-} ]] && speeds[base]+="$(run_base) "
  for p in 1 $parallel; do speeds[$p]+="$(run "$p") "; done
  for p in $parallel; do
    cmp -s "$tmp/out.1" "$tmp/out.$p" || { echo "parallel_bench: --parallel $p wrote other lines than one at a time" >&2; exit 1; }
  done
done
new=$(wc -c < "$tmp/out.1")
echo "$(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, load $(cut -d' ' -f1-3 /proc/loadavg); $(basename "$model"), $lines lines of $(basename "$text"), -n $tokens, $reps runs each, median"
echo
one=$(tr ' ' '\n' <<< "${speeds[1]}" | grep . | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
if [[ -n ${BASE:-} ]]; then
  base=$(tr ' ' '\n' <<< "${speeds[base]}" | grep . | median)
  echo "| --parallel | tokens/s | vs one at a time | vs BASE one at a time | output |"
  echo "|---|---|---|---|---|"
  printf '| BASE, one at a time | %.0f | | 1.00x | %s bytes |\n' "$base" "$(wc -c < "$tmp/out.base")"
else
  echo "| --parallel | tokens/s | vs one at a time | output |"
  echo "|---|---|---|---|"
fi
for p in 1 $parallel; do
  s=$(tr ' ' '\n' <<< "${speeds[$p]}" | grep . | median)
  printf '| %s | %.0f | %s |%s %s |\n' "$p" "$s" "$(ratio "$s" "$one")" "${BASE:+ $(ratio "$s" "$base") |}" \
    "$([[ $p == 1 ]] && echo "$new bytes" || echo identical)"
done
