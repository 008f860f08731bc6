#!/usr/bin/env bash
# Classifier distillation on the Brown genre task (15 genres, passages of about 100 words, split
# by document; bench/genre_passages.sh): a teacher classifier fine-tuned from the `small` model of
# bench/distill_bench.sh, then a classifier fine-tuned from the `tiny` student of that bench on
# the labels alone and one distilled from the teacher classifier, with the same steps. Prints the
# test accuracy and macro F1 of each (lm-eval classify -m) and their training time.
#
# Usage: bench/distill_genre_bench.sh [BUILD] [TEACHER_TIME] [STUDENT_STEPS] [SEEDS] [THREADS]
#   defaults: build 6m 600 "1" 2; needs bench/out/distill/teacher.gguf and plain-1.gguf
#   (bench/distill_bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} teacher_time=${2:-6m} steps=${3:-600} seeds=${4:-1} threads=${5:-2}
export PATH=$PWD/$build/tools:$PATH
data=data/brown work=data/brown/genre out=bench/out/distill
bench/genre_passages.sh "$data" "$work" 100
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | head -1; }
common=(--task classify --pooling mean --data "$work/train.tsv" --context 256 --warmup 20 --eval-every 0 --batch 16
        --dropout 0.1 -t "$threads" -q --json)
score() { lm-eval classify -m "$1" "$work/test.tsv" --json -t "$threads" > "$1.test.json"
  printf '%.4f\t%.4f' "$(field accuracy "$1.test.json")" "$(field macro_f1 "$1.test.json")"; }
printf 'classifier\taccuracy\tmacro_f1\tseconds\n'
if [[ ! -s $out/genre-teacher.gguf ]]; then
  start=$(date +%s)
  lm-finetune -m "$out/teacher.gguf" "${common[@]}" --lr 5e-5 --lr-min 5e-6 --time "$teacher_time" \
    -o "$out/genre-teacher.gguf" > /dev/null
  echo "$(( $(date +%s) - start ))" > "$out/genre-teacher.secs"
fi
printf 'teacher (small)\t%s\t%s\n' "$(score "$out/genre-teacher.gguf")" "$(cat "$out/genre-teacher.secs")"
for seed in $seeds; do
  for mode in labels distill; do
    extra=()
    [[ $mode == distill ]] && extra=(--teacher "$out/genre-teacher.gguf" --distill-alpha 0.5 --distill-temp 2)
    start=$(date +%s)
    lm-finetune -m "$out/plain-1.gguf" "${common[@]}" --lr 2e-4 --lr-min 2e-5 --steps "$steps" --seed "$seed" \
      "${extra[@]}" -o "$out/genre-$mode-$seed.gguf" > /dev/null
    secs=$(( $(date +%s) - start ))
    printf 'student (tiny), %s, seed %s\t%s\t%s\n' "$mode" "$seed" "$(score "$out/genre-$mode-$seed.gguf")" "$secs"
  done
done
