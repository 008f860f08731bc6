#!/usr/bin/env bash
# Validation loss of lm-train and of the PyTorch peer (bench/torch_quality.py) trained with the
# same recipe and token budget on the Brown corpus split by document (scripts/get-brown.sh).
# Usage: bench/quality_vs_torch.sh [BUILD_DIR] [PRESET] [STEPS] [LR] [WARMUP]   (needs python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
preset=${2:-small}
steps=${3:-100}
lr=${4:-1e-3}
warmup=${5:-20}
data=data/brown
[[ -s $data/train.txt ]] || scripts/get-brown.sh "$data"
[[ -s $data/tok.model ]] || "$build/tools/lm-tokenize" train -q --vocab-size 8000 -o "$data/tok.model" "$data/train.txt"
for part in train valid; do
  [[ -s $data/$part.tok ]] || "$build/tools/lm-tokenize" encode -m "$data/tok.model" --format bin -o "$data/$part.tok" "$data/$part.txt"
done
lm=$("$build/tools/lm-train" --tokenizer "$data/tok.model" --data "$data/train.tok" --valid "$data/valid.tok" \
  --preset "$preset" --steps "$steps" --lr "$lr" --lr-min "$(awk -v l="$lr" 'BEGIN { print l / 10 }')" --warmup "$warmup" \
  --eval-every 0 --eval-batches 8 -t 2 -q -o "$(mktemp -d)/q.gguf" | sed -n 's/^valid_loss\t//p')
torch=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=SkylakeX \
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
  /usr/bin/python3 bench/torch_quality.py "$preset" "$data/train.tok" "$data/valid.tok" "$steps" "$lr" "$warmup" 0 2 |
  sed -n 's/^torch_valid_loss //p')
echo "lm-train valid loss $lm; PyTorch valid loss $torch"
awk -v a="$lm" -v b="$torch" 'BEGIN { printf "lm - torch = %+.4f (%+.2f%% of PyTorch'"'"'s)\n", a - b, 100 * (a - b) / b }'
