#!/usr/bin/env bash
# The block types q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q5_K and iq4_xs end to end: a small
# trained model (width 256 and feed-forward 512, so every matrix fills K-quant super-blocks)
# converted to each type scores the text with finite perplexity and a small KL divergence
# against the F32 model (lm-eval kld: the prompt path), generates text (the decoding path), and
# lm-quantize reads it back into another type.
source "$(dirname "$0")/lib.sh"
W=$LM_TEST_BIN/lm_test_write_gguf

make_corpus 2000 > corpus.txt
head -n 300 corpus.txt > a.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
fixture m.gguf lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 1 --embd 256 --heads 4 --kv-heads 2 \
  --ff 512 --batch 8 --warmup 5 --lr 3e-3 --steps 40 -t 2 -o m.gguf > /dev/null || fail "training the test model"

# type, the largest KL divergence (nats per token) and the smallest top-1 agreement accepted
while read -r type max_kld min_top1; do
  "$W" --convert m.gguf m-$type.gguf $type || fail "convert to $type"
  expect_exit 0 "$type kld" -- lm-eval kld -m m-$type.gguf --ref m.gguf a.txt --json -t 2
  awk -v k="$(field kld "$T/out")" -v a="$(field top1_agreement "$T/out")" -v p="$(field perplexity "$T/out")" \
    -v mk="$max_kld" -v ma="$min_top1" 'BEGIN { exit !(k > 0 && k < mk && a >= ma && p > 1 && p < 1e6) }' &&
    pass || fail "$type kld: $(cat "$T/out")"
  expect_exit 0 "$type generates" -- lm-generate -m m-$type.gguf -p "The jury" -n 8 --greedy -t 2
  [[ -s $T/out ]] && pass || fail "$type model: no output"
done <<'TYPES'
q4_1 0.005 0.9
q5_0 0.003 0.95
q5_1 0.003 0.95
iq4_nl 0.005 0.9
q2_K 0.08 0.7
q3_K 0.02 0.85
q5_K 0.003 0.95
iq4_xs 0.005 0.9
TYPES

expect_exit 0 "requantize a q5_K model" -- lm-quantize -q -m m-q5_K.gguf -o r.gguf --type q8_0 --allow-requantize
expect_exit 0 "the requantized model" -- lm-eval kld -m r.gguf --ref m.gguf a.txt --json -t 2
awk -v k="$(field kld "$T/out")" 'BEGIN { exit !(k > 0 && k < 0.005) }' && pass || fail "requantized kld: $(cat "$T/out")"
"$W" --convert m.gguf bad.gguf q9_9 2> "$T/err"
[[ $? == 1 ]] && grep -q "unknown type 'q9_9'" "$T/err" && pass || fail "unknown type: $(cat "$T/err")"
finish
