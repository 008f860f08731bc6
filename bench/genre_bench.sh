#!/usr/bin/env bash
# Brown genre classification (15 genres, passages of about 100 words, split by document as
# scripts/get-brown.sh splits it): lm-finetune's classifier, fully fine-tuned, with LoRA and as
# a linear probe (--head-only), against bag-of-words naive Bayes and logistic regression
# (bench/genre_baseline.py, scikit-learn) on the same passages. Prints accuracy and macro F1 of
# each, and the training time and memory lm-finetune reports.
#
# Usage: bench/genre_bench.sh [BUILD] [BASE] [BUDGET] [THREADS]
#   BUILD   build directory (default build)
#   BASE    a model pretrained on data/brown/train.txt only (default data/brown/small.gguf,
#           trained here for 6 minutes as the demo does if it is missing)
#   BUDGET  lm-finetune --time for each classifier (default 4m)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} base=${2:-data/brown/small.gguf} budget=${3:-4m} threads=${4:-2}
export PATH=$PWD/$build/tools:$PATH
data=data/brown work=data/brown/genre
scripts/get-brown.sh "$data"
bench/genre_passages.sh "$data" "$work" 100
if [[ ! -s $base ]]; then
  lm-tokenize train -q --vocab-size 8000 -o "$data/tok.model" "$data/train.txt"
  lm-tokenize encode -m "$data/tok.model" --format bin -o "$data/train.tok" "$data/train.txt"
  lm-train -q --tokenizer "$data/tok.model" --data "$data/train.tok" --preset small --time 6m --warmup 20 \
    --lr 1e-3 -t "$threads" -o "$base" > /dev/null
fi
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | head -1; }
common=(-m "$base" --task classify --pooling mean --data "$work/train.tsv" --context 256 --warmup 20
        --time "$budget" --eval-every 0 -t "$threads" -q --json)
printf 'model\taccuracy\tmacro_f1\ttrained_parameters\tmemory_mib\tseconds\n'
for mode in full lora probe; do
  case $mode in
    full) extra=(--batch 16 --lr 5e-5 --lr-min 5e-6 --dropout 0.1) ;;
    lora) extra=(--batch 16 --lora --lora-rank 16 --lora-targets all --lr 1e-3 --lr-min 1e-4 --dropout 0.1) ;;
    probe) extra=(--batch 16 --head-only --lr 3e-3 --lr-min 3e-4) ;;
  esac
  start=$(date +%s)
  lm-finetune "${common[@]}" "${extra[@]}" -o "$work/genre-$mode.gguf" > "$work/$mode.json"
  secs=$(( $(date +%s) - start ))
  lm-eval classify -m "$work/genre-$mode.gguf" "$work/test.tsv" --json -t "$threads" > "$work/$mode-test.json"
  printf 'lm-finetune %s\t%.4f\t%.4f\t%s\t%s\t%s\n' "$mode" "$(field accuracy "$work/$mode-test.json")" \
    "$(field macro_f1 "$work/$mode-test.json")" "$(field trainable_parameters "$work/$mode.json")" \
    "$(field memory_mib "$work/$mode.json")" "$secs"
done
bench/genre_baseline.py "$work/train.tsv" "$work/test.tsv" | awk -F'\t' '{ printf "%s\t%s\t%s\t-\t-\t-\n", $1, $2, $3 }'
