#!/usr/bin/env bash
# Training tokens/s and peak memory of lm (bench/train_step_bench) and of a PyTorch peer
# (bench/torch_peer.py, the same model) side by side, at the same thread count, with PyTorch
# tuned as docs/performance.md describes (OpenMP OpenBLAS with SkylakeX kernels, glibc keeping big
# buffers). Usage: bench/train_vs_torch.sh [BUILD_DIR] [PRESET] [STEPS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
preset=${2:-small}
steps=${3:-7}
threads=${4:-2}
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "train_vs_torch: needs python3-torch (apt-get install python3-torch)" >&2; exit 1; }
lm_out=$( { /usr/bin/time -f 'rss_kib %M' "$build/bench/train_step_bench" "$preset" "$steps" "$threads"; } 2>&1)
lm_tps=$(sed -n "s/^train $preset: \([0-9]*\) tok\/s.*/\1/p" <<< "$lm_out")
lm_rss=$(( $(sed -n 's/^rss_kib //p' <<< "$lm_out") / 1024 ))
torch_out=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=SkylakeX \
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 /usr/bin/python3 bench/torch_peer.py "$preset" "$steps" "$threads")
read -r _ _ t_tps t_min t_max t_rss <<< "$torch_out"
echo "$lm_out" | grep -E "^(train|$preset:)"
echo "torch $preset: $t_tps tok/s [$t_min-$t_max], peak RSS $t_rss MiB"
awk -v a="$lm_tps" -v b="$t_tps" -v ra="$lm_rss" -v rb="$t_rss" \
  'BEGIN { printf "lm / torch: %.2fx tokens/s; peak RSS %d MiB / %d MiB = %.2fx\n", a / b, ra, rb, ra / rb }'
