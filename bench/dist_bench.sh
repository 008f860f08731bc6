#!/usr/bin/env bash
# Data-parallel scaling on one machine (docs/distributed.md): lm-train with 1 rank x 1 thread
# against mpirun -np 2 x 1 thread, each rank with the same --batch (so 2 ranks do twice the work
# of a step), on the same data, 2 ranks with the gradient sums overlapped with backward (the
# default) and after it (--overlap 0). Prints per configuration the median tokens/s over the steps
# after the first two (from --metrics), rank 0's median seconds per step spent after backward in
# the gradient sum (comm_s, waiting for the other rank included), the bytes the sum moves per step
# (4 per trained parameter), and the speed-up of 2 ranks over 1.
#   bench/dist_bench.sh
# Environment: PRESET (default tiny; the issue's bar is for small, which takes minutes: the
# machine is shared), STEPS (12), BATCH (4), TEXT (default data/brown/train.txt, from
# scripts/get-brown.sh), VOCAB (8000; its tokenizer and token file are kept in bench/out/dist/:
# remove them after changing TEXT or VOCAB). Needs a build with MPI (LM_MPI) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${PRESET:-tiny}
steps=${STEPS:-12}
batch=${BATCH:-4}
text=${TEXT:-data/brown/train.txt}
vocab=${VOCAB:-8000}
bin=build/tools
command -v mpirun > /dev/null || { echo "dist_bench.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
[[ -s $text ]] || scripts/get-brown.sh data/brown
out=bench/out/dist
mkdir -p "$out"
[[ -s $out/tok.model ]] || "$bin/lm-tokenize" train -q --vocab-size "$vocab" -o "$out/tok.model" "$text"
[[ -s $out/train.tok ]] || "$bin/lm-tokenize" encode -m "$out/tok.model" --format bin -o "$out/train.tok" "$text"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
run=("$bin/lm-train" --tokenizer "$out/tok.model" --data "$out/train.tok" --preset "$preset" --batch "$batch"
     --steps "$steps" --eval-every 0 --valid-fraction 0.01 -t 1 -q)
params=$("${run[@]}" --dry-run | awk -F'\t' '$1 == "parameters" { print $2 }')
# median VALUES...
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { grep -o "\"$1\":[0-9.e+-]*" "$2" | tail -n +3 | cut -d: -f2; }
"${run[@]}" --metrics "$out/one.jsonl" -o "$out/one.gguf" > /dev/null
mpirun -np 2 --bind-to core "${run[@]}" --metrics "$out/two.jsonl" -o "$out/two.gguf" > /dev/null
mpirun -np 2 --bind-to core "${run[@]}" --overlap 0 --metrics "$out/after.jsonl" -o "$out/after.gguf" > /dev/null
one=$(median $(field tokens_per_s "$out/one.jsonl"))
two=$(median $(field tokens_per_s "$out/two.jsonl"))
comm=$(median $(field comm_s "$out/two.jsonl"))
after=$(median $(field tokens_per_s "$out/after.jsonl"))
after_comm=$(median $(field comm_s "$out/after.jsonl"))
printf 'preset\t%s (%s parameters), batch %s x context of the preset per rank, %s steps\n' "$preset" "$params" "$batch" "$steps"
printf '1 rank x 1 thread\t%.0f tokens/s\n' "$one"
printf '2 ranks x 1 thread\t%.0f tokens/s, gradient sum after backward %.1f ms/step (%.1f MB, overlapped with backward)\n' \
  "$two" "$(echo "$comm * 1000" | bc -l)" "$(echo "$params * 4 / 1000000" | bc -l)"
printf '2 ranks, --overlap 0\t%.0f tokens/s, gradient sum after backward %.1f ms/step\n' "$after" \
  "$(echo "$after_comm * 1000" | bc -l)"
printf 'speed-up\t%.2fx (--overlap 0: %.2fx)\n' "$(echo "$two / $one" | bc -l)" "$(echo "$after / $one" | bc -l)"
