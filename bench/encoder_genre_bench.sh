#!/usr/bin/env bash
# Does masked-language-model pretraining pay? An encoder (bert, the tiny preset's sizes: L 4,
# C 256, H 4, F 768; context 128) pretrained with lm-train --arch bert for PRETRAIN on the Brown
# training text (30% of the tokens predicted, lr 2e-3: in 300-step trials both gave a lower
# held-out masked loss than 15% and lr 1e-3), then
# fine-tuned on the Brown genre passages (bench/genre_passages.sh: 15 genres, split by
# document), against the same encoder fine-tuned from its random initialization with the same
# options, each with two seeds. Prints the held-out masked-token loss of the pretrained encoder
# (lm-eval mlm) and each classifier's test accuracy and macro F1 (lm-eval classify -m).
#
# Usage: bench/encoder_genre_bench.sh [BUILD] [PRETRAIN] [STEPS] [THREADS]
#   BUILD     build directory (default build)
#   PRETRAIN  lm-train --time of the pretraining (default 30m); an existing
#             data/brown/genre/encoder.gguf is reused
#   STEPS     lm-finetune --steps of each classifier (default 1000, batch 16: about 1.9 epochs)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} pretrain=${2:-30m} steps=${3:-1000} threads=${4:-2}
export PATH=$PWD/$build/tools:$PATH
data=data/brown work=data/brown/genre
scripts/get-brown.sh "$data"
bench/genre_passages.sh "$data" "$work" 100
# A vocabulary with a mask token, trained on the training text only.
if [[ ! -s $data/tokm.model ]]; then
  lm-tokenize train -q --vocab-size 8000 --control-symbols '<mask>' -o "$data/tokm.model" "$data/train.txt"
  lm-tokenize encode -m "$data/tokm.model" --format bin -o "$data/trainm.tok" "$data/train.txt"
  lm-tokenize encode -m "$data/tokm.model" --format bin -o "$data/validm.tok" "$data/valid.txt"
fi
shape=(--arch bert --preset tiny --context 128 -t "$threads")
if [[ ! -s $work/encoder.gguf ]]; then
  lm-train --tokenizer "$data/tokm.model" --data "$data/trainm.tok" --valid "$data/validm.tok" "${shape[@]}" \
    --batch 32 --lr 2e-3 --warmup 300 --mask-prob 0.3 --dropout 0.1 --time "$pretrain" --eval-every 500 \
    --metrics "$work/encoder.jsonl" --json -o "$work/encoder.gguf" -q > "$work/encoder.json"
fi
# The same encoder untrained: one step at learning rate 1e-9 (AdamW moves each weight by about
# 1e-9) writes its initialization.
lm-train --tokenizer "$data/tokm.model" --data "$data/trainm.tok" "${shape[@]}" --steps 1 --lr 1e-9 --lr-min 0 --eval-every 0 \
  -o "$work/encoder-init.gguf" -q > /dev/null
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | head -1; }
lm-eval mlm -m "$work/encoder.gguf" -c 128 "$data/valid.txt" --json -t "$threads" > "$work/encoder-mlm.json"
lm-eval mlm -m "$work/encoder-init.gguf" -c 128 "$data/valid.txt" --json -t "$threads" > "$work/init-mlm.json"
printf 'encoder\tpretraining steps\tvalid masked loss (15%%)\tvalid masked accuracy\n'
printf 'pretrained\t%s\t%.4f\t%.4f\n' "$(field steps "$work/encoder.json")" "$(field loss "$work/encoder-mlm.json")" \
  "$(field accuracy "$work/encoder-mlm.json")"
printf 'random init\t0\t%.4f\t%.4f\n' "$(field loss "$work/init-mlm.json")" "$(field accuracy "$work/init-mlm.json")"
printf '\nclassifier\tseed\taccuracy\tmacro_f1\ttrain_loss\tseconds\n'
for base in encoder encoder-init; do
  for seed in 0 1; do
    start=$(date +%s)
    lm-finetune -m "$work/$base.gguf" --task classify --data "$work/train.tsv" --batch 16 --lr 1e-4 --lr-min 1e-5 \
      --warmup 50 --dropout 0.1 --steps "$steps" --eval-every 0 --seed "$seed" -t "$threads" -q --json \
      -o "$work/genre-$base-$seed.gguf" > "$work/genre-$base-$seed.json"
    secs=$(( $(date +%s) - start ))
    lm-eval classify -m "$work/genre-$base-$seed.gguf" "$work/test.tsv" --json -t "$threads" > "$work/genre-$base-$seed-test.json"
    printf '%s\t%s\t%.4f\t%.4f\t%.4f\t%s\n' "$([[ $base == encoder ]] && echo pretrained || echo 'random init')" "$seed" \
      "$(field accuracy "$work/genre-$base-$seed-test.json")" "$(field macro_f1 "$work/genre-$base-$seed-test.json")" \
      "$(field train_loss "$work/genre-$base-$seed.json")" "$secs"
  done
done
