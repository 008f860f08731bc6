#!/usr/bin/env bash
# Encoding speed of lm-tokenize against llama.cpp's llama-tokenize, on the same GGUF vocabulary
# and text, in the same run; checks that both give the same ids.
# Usage: bench/tokenize_vs_llama.sh LLAMA_BIN_DIR VOCAB.gguf [TEXT] [RUNS]
#   TEXT defaults to data/brown/brown.txt (scripts/get-brown.sh makes it); RUNS to 3.
# Both tokenize TEXT as one string (llama-tokenize -f with --no-escape --no-parse-special
# --no-bos; lm-tokenize encode --whole) and print the ids. lm-tokenize is also timed line by
# line (-t 1 and -t 2; lines are independent there, so its ids are not compared). Prints the
# median wall time over RUNS runs after one warm-up, MB/s, and the ratio to llama-tokenize.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${1:?usage: bench/tokenize_vs_llama.sh LLAMA_BIN_DIR VOCAB.gguf [TEXT] [RUNS]}
vocab=${2:?usage: bench/tokenize_vs_llama.sh LLAMA_BIN_DIR VOCAB.gguf [TEXT] [RUNS]}
text=${3:-data/brown/brown.txt}
runs=${4:-3}
bin=${LM_BIN:-build/tools}/lm-tokenize
[[ -s $text ]] || scripts/get-brown.sh data/brown
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bytes=$(stat -c %s "$text")

median_seconds() {
  "$@" > "$tmp/out" 2> /dev/null
  for ((i = 0; i < runs; i++)); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$tmp/out" 2> /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
  done | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

llama_cmd=("$llama/llama-tokenize" -m "$vocab" -f "$text" --ids --no-bos --no-parse-special --no-escape --log-disable)
printf '%-40s %10s %10s %8s\n' command "median s" "MB/s" "vs llama"
ref=$(median_seconds "${llama_cmd[@]}")
tr -d '[],' < "$tmp/out" | tr -s ' ' '\n' | sed '/^$/d' > "$tmp/llama.ids"
report() {
  awk -v n="$1" -v s="$2" -v b="$bytes" -v r="$ref" 'BEGIN { printf "%-40s %10.3f %10.2f %7.2fx\n", n, s, b / s / 1e6, r / s }'
}
report "llama-tokenize -f (one string)" "$ref"
s=$(median_seconds "$bin" encode -m "$vocab" --whole -t 1 "$text")
tr ' ' '\n' < "$tmp/out" | sed '/^$/d' > "$tmp/lm.ids"
if cmp -s "$tmp/llama.ids" "$tmp/lm.ids"; then same="same $(wc -l < "$tmp/lm.ids") ids"; else same="IDS DIFFER"; fi
report "lm-tokenize encode --whole -t 1" "$s"
for t in 1 2; do
  report "lm-tokenize encode (lines) -t $t" "$(median_seconds "$bin" encode -m "$vocab" -t $t "$text")"
done
echo "whole-text ids: $same"
[[ $same != "IDS DIFFER" ]]
