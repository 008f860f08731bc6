#!/usr/bin/env bash
# Distillation on Brown (docs/distillation.md): a `small` teacher trained for TEACHER_TIME, then
# for each seed a `tiny` student trained on the labels alone and one distilled from the teacher,
# on the same number of tokens; then, for the first seed, a student on the labels alone given the
# distilled run's wall time. Each final model is scored by lm-eval perplexity on the whole Brown validation
# text (documents held out by scripts/get-brown.sh). Also prints the cost of a step: the student's
# plain step, the teacher's forward over the same tokens and the distillation step (lm-train
# --dry-run, and the runs' own tokens/s).
#
# Usage: bench/distill_bench.sh [BUILD] [TEACHER_TIME] [STUDENT_TOKENS] [SEEDS] [THREADS]
#   defaults: build 30m 2000000 "1 2" 2. The teacher is kept in bench/out/distill/teacher.gguf
#   and reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} teacher_time=${2:-30m} tokens=${3:-2000000} seeds=${4:-1 2} threads=${5:-2}
export PATH=$PWD/$build/tools:$PATH
data=data/brown out=bench/out/distill
mkdir -p "$out"
scripts/get-brown.sh "$data"
[[ -s $data/tok.model ]] || lm-tokenize train -q --vocab-size 8000 -o "$data/tok.model" "$data/train.txt"
for part in train valid; do
  [[ -s $data/$part.tok ]] || lm-tokenize encode -m "$data/tok.model" --format bin -o "$data/$part.tok" "$data/$part.txt"
done
common=(--tokenizer "$data/tok.model" --data "$data/train.tok" --valid "$data/valid.tok" --eval-every 0 -t "$threads" -q)
teacher=$out/teacher.gguf
if [[ ! -s $teacher ]]; then
  start=$(date +%s)
  lm-train "${common[@]}" --preset small --time "$teacher_time" --warmup 100 --lr 1e-3 --lr-min 1e-4 --dropout 0.1 \
    --seed 7 -o "$teacher" > "$out/teacher.txt"
  echo "teacher: small, $(( $(date +%s) - start )) s, $(tr '\n' ' ' < "$out/teacher.txt")"
fi
ppl() { lm-eval perplexity -m "$1" "$data/valid.txt" --json -t "$threads" | sed -n 's/.*"perplexity":\([0-9.]*\).*/\1/p'; }
student=(--preset tiny --warmup 100 --lr 2e-3 --lr-min 2e-4 --dropout 0.1)
printf 'teacher\tperplexity %s\n' "$(ppl "$teacher")"
printf 'seed\tstudent\ttokens\tseconds\ttok/s\tvalid_perplexity\n'
for seed in $seeds; do
  for mode in plain distill; do
    extra=()
    [[ $mode == distill ]] && extra=(--teacher "$teacher" --distill-alpha 0.5 --distill-temp 2)
    start=$(date +%s.%N)
    lm-train "${common[@]}" "${student[@]}" --tokens "$tokens" --seed "$seed" "${extra[@]}" -o "$out/$mode-$seed.gguf" > /dev/null
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    echo "$secs" > "$out/$mode-$seed.secs"
    printf '%s\t%s\t%s\t%s\t%.0f\t%s\n' "$seed" "$mode" "$tokens" "$secs" "$(awk -v t="$tokens" -v s="$secs" 'BEGIN { print t / s }')" \
      "$(ppl "$out/$mode-$seed.gguf")"
  done
  # Equal wall time (first seed): the labels alone for as long as the distilled run took.
  [[ $seed == "${seeds%% *}" ]] || continue
  secs=$(cat "$out/distill-$seed.secs")
  lm-train "${common[@]}" "${student[@]}" --time "${secs}s" --seed "$seed" -o "$out/plain-time-$seed.gguf" > /dev/null
  printf '%s\t%s\t%s\t%s\t-\t%s\n' "$seed" "plain, equal time" "-" "$secs" "$(ppl "$out/plain-time-$seed.gguf")"
done
# The cost of a step (B 8 x T 256 tokens), measured by --dry-run.
dry() { lm-train --tokenizer "$data/tok.model" --data "$data/train.tok" --preset tiny --steps 1 -t "$threads" --dry-run "$@" |
  sed -n 's/^seconds_per_step\t\([0-9.]*\).*/\1/p; s/^teacher\t.*forward \([0-9.]*\) s.*/teacher \1/p' | tr '\n' ' '; }
echo "dry run, student step: $(dry)"
echo "dry run, student step + teacher forward: $(dry --teacher "$teacher")"
