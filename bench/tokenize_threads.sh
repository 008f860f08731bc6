#!/usr/bin/env bash
# Line-parallel scaling of lm-tokenize encode: -t 1 against -t 2 on the same vocabulary and text,
# alternated run by run (so that a slow spell of a shared machine hits both), checking the ids
# are the same. Prints the median wall time of each, whole command (vocabulary loading
# included) and encoding loop alone (the -v line), and the ratios.
#   bench/tokenize_threads.sh VOCAB.gguf|.model [TEXT] [RUNS]
# TEXT defaults to data/brown/brown.txt (scripts/get-brown.sh), RUNS to 7.
set -euo pipefail
cd "$(dirname "$0")/.."
vocab=${1:?usage: bench/tokenize_threads.sh VOCAB [TEXT] [RUNS]}
text=${2:-data/brown/brown.txt}
runs=${3:-7}
bin=${LM_BIN:-build/tools}/lm-tokenize
[[ -s $text ]] || scripts/get-brown.sh data/brown
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for ((r = 0; r < runs; r++)); do
  for t in 1 2; do
    t0=$(date +%s.%N)
    "$bin" encode -v -m "$vocab" -t "$t" -o "$tmp/ids$t" "$text" 2> "$tmp/log"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }' >> "$tmp/wall$t"
    sed -n 's/.* in \([0-9.]*\) s (.*/\1/p' "$tmp/log" >> "$tmp/loop$t"
  done
  cmp -s "$tmp/ids1" "$tmp/ids2" || { echo "tokenize_threads.sh: -t 1 and -t 2 gave different ids" >&2; exit 1; }
done
w1=$(median < "$tmp/wall1") w2=$(median < "$tmp/wall2") l1=$(median < "$tmp/loop1") l2=$(median < "$tmp/loop2")
printf 'text\t%s (%s bytes), %s runs each\n' "$text" "$(stat -c %s "$text")" "$runs"
printf 'whole command\t-t 1 %.3f s\t-t 2 %.3f s\t%.2fx\n' "$w1" "$w2" "$(echo "$w1 / $w2" | bc -l)"
printf 'encoding loop\t-t 1 %.3f s\t-t 2 %.3f s\t%.2fx\n' "$l1" "$l2" "$(echo "$l1 / $l2" | bc -l)"
