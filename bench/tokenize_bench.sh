#!/usr/bin/env bash
# Encoding throughput of lm-tokenize against Debian's spm_encode on the same model and text.
# Usage: bench/tokenize_bench.sh [BUILD_DIR] [TEXT] [RUNS]
#   defaults: build, data/brown/brown.txt (scripts/get-brown.sh makes it), 5 runs.
# Trains an 8000-piece BPE model on TEXT if data/brown/tok.model is missing. Prints, for each
# command, the median wall time and MB/s over RUNS runs, and the ratio to spm_encode.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
text=${2:-data/brown/brown.txt}
runs=${3:-5}
bin=$build/tools/lm-tokenize
model=data/brown/tok.model
[[ -s $text ]] || scripts/get-brown.sh data/brown
[[ -s $model ]] || "$bin" train -q --vocab-size 8000 -o "$model" data/brown/train.txt
command -v spm_encode >/dev/null || { echo "tokenize_bench: spm_encode missing: apt-get install sentencepiece" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bytes=$(stat -c %s "$text")

# median_seconds CMD...: runs CMD (stdout to a file) RUNS times after one warm-up.
median_seconds() {
  "$@" > "$tmp/out"
  for ((i = 0; i < runs; i++)); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$tmp/out"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
  done | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

printf '%-42s %10s %10s %8s\n' command "median s" "MB/s" "vs spm"
spm=$(median_seconds spm_encode --model="$model" --output_format=id "$text")
spm_encode --model="$model" --output_format=id "$text" > "$tmp/spm.ids"
report() {
  local name=$1 secs=$2
  awk -v n="$name" -v s="$secs" -v b="$bytes" -v r="$spm" 'BEGIN { printf "%-42s %10.3f %10.2f %7.2fx\n", n, s, b / s / 1e6, r / s }'
}
report "spm_encode --output_format=id" "$spm"
for t in 1 2; do
  s=$(median_seconds "$bin" encode -m "$model" -t $t "$text")
  cmp -s "$tmp/out" "$tmp/spm.ids" || { echo "tokenize_bench: lm-tokenize -t $t output differs from spm_encode" >&2; exit 1; }
  report "lm-tokenize encode -t $t" "$s"
done
s=$(median_seconds "$bin" encode -m "$model" --format bin -o "$tmp/x.tok" "$text")
report "lm-tokenize encode --format bin -t 2" "$s"
