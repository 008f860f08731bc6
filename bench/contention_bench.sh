#!/usr/bin/env bash
# Speed on a shared machine: decoding (lm-generate, 256 new tokens), prompt processing (lm-eval
# perplexity, -c 512) and training steps (lm-train, 20 steps of the small preset) at -t 1, at
# -t 2 and at the default (-t 0: the count measured fastest now), on an idle machine and beside
# one busy process (a shell `while :; do :; done` loop), with llama.cpp's llama-bench beside
# them under the same load when LLAMA_BIN_DIR is given.
#   bench/contention_bench.sh [LLAMA_BIN_DIR]
# Model: bench/out/vs_llama/small-q8_0.gguf, made as bench/parallel_bench.sh makes it.
# Environment: TEXT (data/brown/valid.txt), REPS (3: median). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${1:-}
text=${TEXT:-data/brown/valid.txt}
reps=${REPS:-3}
bin=build/tools
model=bench/out/vs_llama/small-q8_0.gguf
[[ -s $model ]] || LINES=1 REPS=1 PARALLEL=2 bench/parallel_bench.sh > /dev/null
tmp=$(mktemp -d)
busy=
cleanup() { [[ -n $busy ]] && kill "$busy" 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
head -c 60000 "$text" > "$tmp/text.txt"
head -n 2000 "$text" > "$tmp/train.txt"
lm_tok() { "$bin/lm-tokenize" train -q --vocab-size 2000 -o "$tmp/tok.model" "$tmp/train.txt"; }
lm_tok
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
decode() {  # tokens/s
  "$bin/lm-generate" -m "$model" -t "$1" -p "The jury said" -n 256 --ignore-eos -s 1 -v 2>&1 > /dev/null |
    sed -n 's/.* new (\([0-9.]*\) tok\/s).*/\1/p'
}
prompt() {  # tokens/s of lm-eval perplexity over the text
  local s n
  s=$(seconds "$bin/lm-eval" perplexity -q -m "$model" -c 512 -t "$1" "$tmp/text.txt")
  n=$("$bin/lm-tokenize" encode -m "$model" "$tmp/text.txt" 2> /dev/null | wc -w)
  awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }'
}
train() {  # steps/s
  local s
  s=$(seconds "$bin/lm-train" -q --tokenizer "$tmp/tok.model" --data "$tmp/train.txt" --preset small --context 256 \
    --batch 4 --steps 20 -t "$1" -o "$tmp/m.gguf")
  awk -v s="$s" 'BEGIN { printf "%.2f", 20 / s }'
}
llama_bench() {  # tg or pp tokens/s at threads $2
  local col=$1
  "$llama/llama-bench" -m "$model" -p $([[ $col == pp ]] && echo 512 || echo 0) -n $([[ $col == tg ]] && echo 128 || echo 0) \
    -t "$2" -r 1 -o csv 2> /dev/null | awk -F'","|^"|"$' 'NR == 1 { gsub(/"/, ""); n = split($0, h, ","); for (i = 1; i <= n; i++) c[h[i]] = i + 1; next } { print $c["avg_ts"] }'
}
echo "$(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $reps runs each (median); $(basename "$model")"
echo
echo "| load | work | -t 1 | -t 2 | default | default / best |"
echo "|---|---|---|---|---|---|"
for load in idle busy; do
  if [[ $load == busy ]]; then
    bash -c 'while :; do :; done' &
    busy=$!
    sleep 1
  fi
  works=(decode prompt train)
  [[ -n $llama ]] && works+=(llama_tg llama_pp)
  for work in "${works[@]}"; do
    declare -A v=()
    for t in 1 2 0; do
      [[ $work == llama_* && $t == 0 ]] && continue
      vals=()
      for ((r = 0; r < reps; r++)); do
        case $work in
          llama_tg) vals+=("$(llama_bench tg "$t")") ;;
          llama_pp) vals+=("$(llama_bench pp "$t")") ;;
          *) vals+=("$($work "$t")") ;;
        esac
      done
      v[$t]=$(printf '%s\n' "${vals[@]}" | median)
    done
    best=$(awk -v a="${v[1]}" -v b="${v[2]}" 'BEGIN { print (a > b ? a : b) }')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$load" "$work" "${v[1]}" "${v[2]}" "${v[0]:--}" \
      "$([[ -n ${v[0]:-} ]] && awk -v a="${v[0]}" -v b="$best" 'BEGIN { printf "%.2f", a / b }' || echo -)"
  done
done
