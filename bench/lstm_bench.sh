#!/usr/bin/env bash
# LSTM against transformer on Brown (docs/lstm.md): the `small` transformer and `lstm-small`
# (13.8M parameters each at this 8000-piece vocabulary), each trained for the same wall time on
# the Brown training text, then scored by lm-eval perplexity on the whole Brown validation text
# (documents held out by scripts/get-brown.sh) in windows of 512 tokens for both (the LSTM reads
# any length; the transformer's context is 512), and by the runs' own tokens/s.
#
# When both models of a time are there, a second line compares them on the same tokens: those
# the transformer scores in windows of 512 (the second half of each), the LSTM reading the whole
# text in one window (its state carried, as it reads in use; lm-eval --per-token for both).
#
# Usage: bench/lstm_bench.sh [BUILD] [TIMES] [THREADS] [MODELS]
#   defaults: build "10m 30m" 2 "transformer lstm"
# Models go to bench/out/lstm/. With LSTM_BENCH_RESCORE=1, models already there are scored
# again instead of trained.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} times=${2:-10m 30m} threads=${3:-2} models=${4:-transformer lstm}
export PATH=$PWD/$build/tools:$PATH
data=data/brown out=bench/out/lstm
mkdir -p "$out"
scripts/get-brown.sh "$data"
[[ -s $data/tok.model ]] || lm-tokenize train -q --vocab-size 8000 -o "$data/tok.model" "$data/train.txt"
for part in train valid; do
  [[ -s $data/$part.tok ]] || lm-tokenize encode -m "$data/tok.model" --format bin -o "$data/$part.tok" "$data/$part.txt"
done
common=(--tokenizer "$data/tok.model" --data "$data/train.tok" --valid "$data/valid.tok" --eval-every 0 -t "$threads" --seed 1)
# The transformer as bench/distill_bench.sh trains it; the LSTM with 32 streams (its matrix
# products are 8 rows per step at --batch 8) at --lr 3e-3: in 2-minute runs lm-train's
# validation gave perplexity 434 at 1e-2, 539 at 3e-3 and 867 at 1e-3 (the transformer 600 at
# its 1e-3), but the models trained at 1e-2 (2 and 10 minutes) blow up on some windows of
# lm-eval perplexity (docs/lstm.md, learning rate).
transformer=(--preset small --warmup 100 --lr 1e-3 --lr-min 1e-4 --dropout 0.1)
lstm=(--arch lstm --preset lstm-small --batch 32 --warmup 100 --lr 3e-3 --lr-min 3e-4 --dropout 0.1)
ppl() { lm-eval perplexity -m "$1" -c 512 "$data/valid.txt" --json -t "$threads" | sed -n 's/.*"perplexity":\([0-9.]*\).*/\1/p'; }
# The perplexities of two --per-token files (columns: file, position, id, piece, logprob, ...)
# over the positions the first one scores.
same_ppl() {
  awk -F'\t' 'FNR == 1 { f++ } FNR > 1 && f == 1 { a[$2] = -$5 } FNR > 1 && f == 2 && ($2 in a) { x += a[$2]; y -= $5; n++ }
    END { printf "%.1f\t%.1f\t%d", exp(x / n), exp(y / n), n }' "$1" "$2"
}
printf 'time\tmodel\tparameters\tsteps\ttokens\ttok/s\tvalid_perplexity (lm-eval, windows of 512)\n'
for t in $times; do
  for m in $models; do
    if [[ $m == lstm ]]; then args=("${lstm[@]}"); else args=("${transformer[@]}"); fi
    params=$(lm-train "${common[@]}" "${args[@]}" --dry-run | sed -n 's/^parameters\t//p')
    [[ -n ${LSTM_BENCH_RESCORE:-} && -s $out/$m-$t.gguf ]] ||
      lm-train "${common[@]}" "${args[@]}" --time "$t" --metrics "$out/$m-$t.jsonl" --json -o "$out/$m-$t.gguf" > "$out/$m-$t.json"
    steps=$(sed -n 's/.*"steps":\([0-9]*\).*/\1/p' "$out/$m-$t.json")
    tokens=$(tail -1 "$out/$m-$t.jsonl" | sed -n 's/.*"tokens":\([0-9]*\).*/\1/p')
    secs=$(tail -1 "$out/$m-$t.jsonl" | sed -n 's/.*"elapsed_s":\([0-9.]*\).*/\1/p')
    printf '%s\t%s\t%s\t%s\t%s\t%.0f\t%s\n' "$t" "$m" "$params" "$steps" "$tokens" \
      "$(awk -v a="$tokens" -v b="$secs" 'BEGIN { print a / b }')" "$(ppl "$out/$m-$t.gguf")"
  done
  if [[ -s $out/transformer-$t.gguf && -s $out/lstm-$t.gguf ]]; then
    lm-eval perplexity -m "$out/transformer-$t.gguf" -c 512 --per-token "$out/transformer-$t.tsv" -t "$threads" \
      "$data/valid.txt" > /dev/null
    lm-eval perplexity -m "$out/lstm-$t.gguf" -c 1000000 --windows sliding --per-token "$out/lstm-$t.tsv" \
      -t "$threads" "$data/valid.txt" > /dev/null
    IFS=$'\t' read -r pt pl n <<< "$(same_ppl "$out/transformer-$t.tsv" "$out/lstm-$t.tsv")"
    printf '%s\tsame %s tokens\ttransformer (windows of 512) %s\tlstm (one window, state carried) %s\n' "$t" "$n" "$pt" "$pl"
  fi
done
