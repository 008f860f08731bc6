#!/usr/bin/env bash
# The main job, end to end: installs what is missing, builds, fetches the Brown corpus, trains
# a tokenizer on its training documents, encodes the corpus into token files, prints
# statistics, checks that decoding gives back the text byte for byte, then trains the small
# model for three minutes, prints its validation loss, reports its perplexity and bits per
# byte on the validation text with lm-eval, generates a few continuations with it, and
# quantizes it to q8_0 and q4_0, showing each copy's size and perplexity against the original's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh npm:npm
export PATH=$PWD/build/tools:$PATH
data=data/brown
scripts/get-brown.sh "$data"
echo "== training an 8000-piece BPE tokenizer on $data/train.txt"
lm-tokenize train --vocab-size 8000 -o "$data/tok.model" "$data/train.txt"
for part in train valid; do
  lm-tokenize encode -m "$data/tok.model" --format bin -o "$data/$part.tok" "$data/$part.txt"
  echo "== $data/$part.tok"
  lm-tokenize stats -m "$data/tok.model" "$data/$part.tok"
  lm-tokenize decode -m "$data/tok.model" "$data/$part.tok" | cmp - "$data/$part.txt"
  echo "round trip: decoded $data/$part.tok is identical to $data/$part.txt"
done
echo "== the first line of the corpus, as pieces"
head -1 "$data/valid.txt" | lm-tokenize encode -m "$data/tok.model" --format pieces
echo "== training the small model for 3 minutes (validation on $data/valid.tok)"
lm-train --tokenizer "$data/tok.model" --data "$data/train.tok" --valid "$data/valid.tok" --preset small \
  --time 3m --warmup 20 --lr 1e-3 --eval-every 50 -o "$data/small.gguf"
ls -l "$data/small.gguf"
echo "== perplexity and bits per byte of the model on $data/valid.txt (llama-perplexity's chunks of 512)"
lm-eval perplexity -m "$data/small.gguf" -c 512 "$data/valid.txt"
echo "== three continuations of the first words of validation lines (one per line, seed 1)"
awk 'NF >= 6 { print $1, $2, $3, $4; if (++n == 3) exit }' "$data/valid.txt" |
  lm-generate -m "$data/small.gguf" --each-line --echo -n 24 -s 1
for type in q8_0 q4_0; do
  echo "== quantizing the model to $type, scored against it on $data/valid.txt (perplexity, KL divergence)"
  lm-quantize -m "$data/small.gguf" -o "$data/small-$type.gguf" --type "$type" --eval "$data/valid.txt"
done
ls -l "$data"/small*.gguf
