#!/usr/bin/env bash
# The encoder end to end (docs/encoder.md): lm-train --arch bert with the masked-language-model
# objective (dry run, the loss falls, whole-word masking, dropout), exact resume after SIGINT,
# 2 MPI ranks training as one process with --grad-accum 2, lm-eval mlm (equal to the training
# run's validation), classifiers fine-tuned from it in full, as a probe and with LoRA (exact
# resume; lm-eval classify and predict),
# the file (llama.cpp's bert keys) and the tools that read it (lm-eval embed; perplexity and
# generation refuse an encoder), and the one-line errors: a vocabulary without a mask token,
# the objective and the architecture mismatched, decoder-only options.
source "$(dirname "$0")/lib.sh"

make_corpus 4000 > corpus.txt
lm-tokenize train -q --vocab-size 400 --control-symbols '<mask>' -o tok.model corpus.txt
lm-tokenize train -q --vocab-size 400 -o nomask.model corpus.txt
lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt
net=(--arch bert --context 32 --layers 2 --embd 32 --heads 2 --ff 64 --batch 8 --warmup 20 --lr 3e-3 -t 2)
common=(--tokenizer tok.model --data corpus.tok "${net[@]}")

# ---- training ----
expect_exit 0 "dry run" -- lm-train --tokenizer tok.model --data corpus.tok --arch bert --preset tiny --context 128 --dry-run
grep -q "^model	bert encoder (masked language model, mask 0.15): V 400, T 128, L 4, C 256, H 4, F 768\$" "$T/out" && pass ||
  fail "dry run of a tiny encoder: $(head -1 "$T/out")"
expect_exit 0 "train" -- lm-train "${common[@]}" --steps 150 --eval-every 50 --metrics m.jsonl --json -o enc.gguf -q
[[ $(wc -l < m.jsonl) == 150 ]] && pass || fail "metrics: $(wc -l < m.jsonl) lines"
first=$(field loss m.jsonl)
valid=$(field valid_loss "$T/out")
# The unigram entropy of this corpus is about 4.9 nats; log 400 = 5.99.
awk -v a="$first" -v b="$valid" 'BEGIN { exit !(a > 5.5 && b < 5.0) }' && pass || fail "loss did not fall: $first -> valid $valid"
expect_exit 0 "whole words and dropout" -- lm-train "${common[@]}" --steps 20 --whole-word --mask-prob 0.3 --dropout 0.1 -o ww.gguf -q

# ---- interrupt and resume: bit for bit, dropout included ----
n=400
[[ -n ${LM_TEST_LEAN:-} ]] && n=150
long=("${common[@]}" --steps $n --dropout 0.1 --whole-word --eval-every 50)
mkdir -p full part
lm-train "${long[@]}" --metrics full.jsonl -o full/enc.gguf -q > /dev/null
interrupt_run part.jsonl int.err lm-train "${long[@]}" --metrics part.jsonl -o part/enc.gguf
(( ${stopped:-$n} < n )) && pass || fail "the run finished before the interrupt"
expect_exit 0 "resume (the architecture from the checkpoint)" -- lm-train --tokenizer tok.model --data corpus.tok \
  "${long[@]:6}" --resume part/enc.gguf.ckpt --metrics rest.jsonl -o part/enc.gguf -q
same_resumed_steps full.jsonl rest.jsonl "resumed steps $((stopped + 1))..$n equal the uninterrupted run"
same_files full/enc.gguf part/enc.gguf "resumed run writes the same model"
expect_exit 1 "resume with another mask share" -- lm-train "${long[@]}" --mask-prob 0.2 --resume part/enc.gguf.ckpt -o x.gguf
expect_err "--mask-prob 0.15 in the checkpoint but 0.2 now" "another mask share"
expect_exit 1 "resume with another width" -- lm-train "${long[@]/32/64}" --resume part/enc.gguf.ckpt -o x.gguf
expect_err "checkpoint belongs to another run: context 32 in the checkpoint but 64 now, embedding 32 in the checkpoint but 64 now" "another width"

# ---- lm-eval mlm: held-out text scored as lm-train validates it ----
head -3600 corpus.txt > tr.txt
tail -400 corpus.txt > va.txt
lm-tokenize encode -m tok.model --format bin -o tr.tok tr.txt
lm-tokenize encode -m tok.model --format bin -o va.tok va.txt
expect_exit 0 "train with held-out text" -- lm-train --tokenizer tok.model --data tr.tok --valid va.tok "${net[@]}" \
  --steps 60 --eval-batches 1000 --json -o v.gguf -q
valid=$(field valid_loss "$T/out")
expect_exit 0 "lm-eval mlm" -- lm-eval mlm -m v.gguf -c 32 va.txt --json
loss=$(field loss "$T/out")
awk -v a="$valid" -v b="$loss" 'BEGIN { d = a - b; exit !(d * d < 1e-10 * a * a) }' && pass ||
  fail "lm-eval mlm's loss $loss is not lm-train's validation $valid"
acc=$(field accuracy "$T/out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.02 && a < 1) }' && pass || fail "accuracy $acc"
# Pseudo-perplexity masks every token in turn: 400 lines, or 100 under the sanitizers
# (LM_TEST_LEAN), where the 400 took 10 s.
head -n "$([[ -n ${LM_TEST_LEAN:-} ]] && echo 100 || echo 400)" va.txt > pseudo.txt
expect_exit 0 "pseudo-perplexity, TSV" -- lm-eval mlm -m v.gguf pseudo.txt <(head -20 va.txt) --pseudo
[[ $(head -1 "$T/out") == "file	rows	predicted	loss	perplexity	accuracy	pseudo_perplexity" && $(wc -l < "$T/out") == 4 ]] &&
  pass || fail "TSV: $(cat "$T/out")"
ppl=$(awk -F'\t' '$1 == "pseudo.txt" { print $7 }' "$T/out")
awk -v p="$ppl" 'BEGIN { exit !(p > 5 && p < 400) }' && pass || fail "pseudo-perplexity $ppl (vocabulary 400)"
expect_exit 0 "another mask seed" -- lm-eval mlm -m v.gguf -c 32 va.txt --json --seed 5
[[ $(field loss "$T/out") != "$loss" ]] && pass || fail "--seed 5 chose the same positions"
lm-train --tokenizer tok.model --data tr.tok --context 32 --layers 1 --embd 32 --heads 2 --ff 64 --steps 1 -o dec.gguf -q > /dev/null
expect_exit 1 "mlm of a decoder" -- lm-eval mlm -m dec.gguf va.txt
expect_err "dec.gguf: is a 'llama' model, not an encoder \(bert\)" "mlm of a decoder"
expect_exit 2 "a row longer than the model's context" -- lm-eval mlm -m v.gguf -c 64 va.txt
expect_err "is larger than the model's context length 32" "long rows"

# ---- an encoder fine-tuned as a classifier; lm-eval classify and predict read it ----
awk '{ l = ($0 ~ /water|river|mountain|garden/) ? "nature" : ($0 ~ /court|law|police|government/) ? "law" : "other"
       print l "\t" $0 }' corpus.txt > lab.tsv
head -3600 lab.tsv > ltr.tsv
tail -400 lab.tsv > lva.tsv
ft=(lm-finetune -m enc.gguf --task classify --data ltr.tsv --valid lva.tsv --batch 16 --lr 1e-3 --warmup 20 -t 2)
expect_exit 0 "fine-tune a classifier" -- "${ft[@]}" --steps 200 --json -o cls.gguf -q
acc=$(field valid_accuracy "$T/out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.56) }' && pass || fail "classifier accuracy $acc (the majority label is 0.54)"
expect_exit 0 "lm-eval classify -m" -- lm-eval classify -m cls.gguf lva.tsv --json
[[ $(field accuracy "$T/out") == "$acc" ]] && pass || fail "lm-eval classify gives $(field accuracy "$T/out"), lm-finetune $acc"
for key in "bert.pooling_type = 4" "general.architecture = bert"; do
  "$LM_TEST_BIN/lm_test_edit_gguf" --keys cls.gguf | grep -qF "$key" && pass || fail "the classifier has no '$key'"
done
expect_exit 0 "predict" -- lm-eval predict -m cls.gguf --top 2 va.txt
[[ $(wc -l < "$T/out") == 400 && $(head -1 "$T/out" | awk -F'\t' '{ print NF }') == 4 ]] && pass ||
  fail "predict: $(head -2 "$T/out")"
expect_exit 0 "a linear probe, mean pooling" -- "${ft[@]}" --head-only --pooling mean --steps 50 --json -o probe.gguf -q
[[ $(field trainable_parameters "$T/out") == $((3 * 32 + 3)) ]] && pass || fail "probe trains $(field trainable_parameters "$T/out")"
"$LM_TEST_BIN/lm_test_edit_gguf" --keys probe.gguf | grep -qF "bert.pooling_type = 1" && pass || fail "the probe's pooling"
# Bad input: a label without text is refused with its line; a text longer than the context is
# cut (the start token, its first tokens and the end token), in training and in predict.
{ head -50 ltr.tsv; printf 'law\t\n'; } > bad.tsv
expect_exit 1 "a label without text" -- lm-finetune -m enc.gguf --task classify --data bad.tsv --steps 5 -o x.gguf
expect_err "^lm-finetune: bad.tsv:51: has a label but no text\$" "a label without text"
long=$(head -40 tr.txt | tr '\n' ' ')
{ head -50 ltr.tsv; printf 'law\t%s\n' "$long"; } > long.tsv
expect_exit 0 "a text longer than the context" -- lm-finetune -m enc.gguf --task classify --data long.tsv --steps 5 -o x.gguf -q
expect_exit 0 "predict a text longer than the context" -- sh -c "printf '%s\\n' '$long' | lm-eval predict -m cls.gguf"
[[ $(wc -l < "$T/out") == 1 ]] && pass || fail "predict of a long text: $(cat "$T/out")"

# ---- LoRA on the encoder: adapters on q, k, v, o, up, down and a new head; merged on output ----
# (This short-trained encoder's first-token features alone do not separate the labels: a probe
# stays at the prior's loss, 1.02; the adapters must change the layers.)
expect_exit 0 "a LoRA classifier" -- "${ft[@]/1e-3/5e-3}" --lora --lora-targets all --lora-rank 16 --steps 300 --json \
  -o lcls.gguf -q
# 2 layers x (4 x (16x32 + 32x16) + (16x32 + 64x16) + (16x64 + 32x16)) adapter values, and the head's 3 x 32 + 3
[[ $(field trainable_parameters "$T/out") == $((2 * (4 * 1024 + 1536 + 1536) + 99)) ]] && pass ||
  fail "LoRA trains $(field trainable_parameters "$T/out")"
lacc=$(field valid_accuracy "$T/out")
lloss=$(field valid_loss "$T/out")
awk -v a="$lacc" -v l="$lloss" 'BEGIN { exit !(a > 0.56 && l < 0.95) }' && pass ||
  fail "LoRA classifier accuracy $lacc, loss $lloss (the majority label is 0.54, the prior's loss 1.03)"
expect_exit 0 "lm-eval classify -m of the merged LoRA classifier" -- lm-eval classify -m lcls.gguf lva.tsv --json
[[ $(field accuracy "$T/out") == "$lacc" ]] && pass || fail "lm-eval classify gives $(field accuracy "$T/out"), lm-finetune $lacc"
expect_exit 2 "a gate on bert" -- "${ft[@]}" --lora --lora-targets gate --steps 5 -o x.gguf
expect_err "^lm-finetune: LoRA target 'gate': a bert model has no such projection\$" "a gate on bert"
# Interrupted and resumed, with the adapters' and the model's dropout: bit for bit.
n=300
[[ -n ${LM_TEST_LEAN:-} ]] && n=100
lft=("${ft[@]}" --lora --lora-dropout 0.1 --dropout 0.1 --train-norms --steps $n --eval-every 50)
mkdir -p lfull lpart
"${lft[@]}" --metrics lfull.jsonl -o lfull/c.gguf -q > /dev/null
interrupt_run lpart.jsonl lint.err "${lft[@]}" --metrics lpart.jsonl -o lpart/c.gguf
(( ${stopped:-$n} < n )) && pass || fail "the LoRA run finished before the interrupt"
expect_exit 0 "resume the LoRA run" -- "${lft[@]}" --resume lpart/c.gguf.ckpt --metrics lrest.jsonl -o lpart/c.gguf -q
same_resumed_steps lfull.jsonl lrest.jsonl "resumed LoRA steps $((stopped + 1))..$n equal the uninterrupted run"
same_files lfull/c.gguf lpart/c.gguf "the resumed LoRA run writes the same classifier"
expect_exit 2 "text on an encoder" -- lm-finetune -m enc.gguf --data tr.txt --steps 5 -o x.gguf
expect_err "an encoder \(bert\) fine-tunes as a classifier" "text on an encoder"
expect_exit 2 "last-token pooling on an encoder" -- "${ft[@]}" --pooling last --steps 5 -o x.gguf
expect_err "an encoder's classifier reads the first token" "last-token pooling on an encoder"

# ---- the file and the tools that read it ----
expect_exit 0 "describe" -- lm-eval embed -m enc.gguf corpus.txt -c 32 -v
grep -q "enc.gguf: bert, 2 layers, 32 wide" "$T/err" && pass || fail "-v does not describe the encoder: $(head -3 "$T/err")"
[[ $(wc -l < "$T/out") == 4000 && $(head -1 "$T/out" | awk -F'\t' '{ print NF }') == 32 ]] && pass ||
  fail "embeddings: $(wc -l < "$T/out") lines of $(head -1 "$T/out" | awk -F'\t' '{ print NF }') values"
for key in "general.architecture = bert" "bert.attention.causal = false" "bert.pooling_type = 1" \
  "tokenizer.ggml.token_type_count = 2"; do
  "$LM_TEST_BIN/lm_test_edit_gguf" --keys enc.gguf | grep -qF "$key" && pass || fail "the file has no '$key'"
done
expect_exit 1 "perplexity refuses an encoder" -- lm-eval perplexity -m enc.gguf corpus.txt
expect_err "encoder" "perplexity of an encoder"
expect_exit 1 "generation refuses an encoder" -- lm-generate -m enc.gguf -p "the" -n 4
expect_err "encoder" "generation from an encoder"

# ---- under MPI: 2 ranks x batch 4 train as one process with --grad-accum 2 x batch 4 ----
if [[ ${LM_MPI:-ON} == ON ]] && command -v mpirun > /dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  mp=(lm-train --tokenizer tok.model --data corpus.tok --arch bert --context 32 --layers 2 --embd 32 --heads 2 --ff 64
      --warmup 20 --lr 3e-3 --batch 4 -t 1 --steps 20 --eval-every 5 --dropout 0.1 -q)
  expect_exit 0 "one process, --grad-accum 2" -- "${mp[@]}" --grad-accum 2 --metrics one.jsonl -o one.gguf
  expect_exit 0 "2 ranks" -- env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun -np 2 "${mp[@]}" \
    --metrics two.jsonl -o two.gguf
  for key in loss valid_loss grad_norm; do
    paste <(grep -o "\"$key\":[0-9.e+-]*" one.jsonl | cut -d: -f2) <(grep -o "\"$key\":[0-9.e+-]*" two.jsonl | cut -d: -f2) |
      awk 'NF != 2 { exit 1 } { n++; d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * ($1 < 0 ? -$1 : $1)) exit 1 } END { exit !(n > 0) }' &&
      pass || fail "2 ranks vs --grad-accum 2: $key differs: $(paste one.jsonl two.jsonl | head -c 300)"
  done
fi

# ---- errors ----
expect_exit 2 "a vocabulary without a mask token" -- lm-train --tokenizer nomask.model --data corpus.txt "${net[@]}" --steps 5 -o x.gguf
expect_err "the vocabulary of nomask.model has no mask token, .*--control-symbols '<mask>'" "no mask token"
expect_exit 2 "mlm on a decoder" -- lm-train "${common[@]/bert/llama}" --objective mlm --steps 5 -o x.gguf
expect_err "^lm-train: --objective mlm trains an encoder: add --arch bert\$" "mlm on a decoder"
expect_exit 2 "next-token on an encoder" -- lm-train "${common[@]}" --objective next-token --steps 5 -o x.gguf
expect_err "an encoder \(--arch bert\) trains with --objective mlm" "next-token on an encoder"
expect_exit 2 "mask share on a decoder" -- lm-train "${common[@]/bert/llama}" --mask-prob 0.2 --steps 5 -o x.gguf
expect_err "are --objective mlm's" "mask share on a decoder"
expect_exit 2 "kv heads on an encoder" -- lm-train "${common[@]}" --kv-heads 1 --steps 5 -o x.gguf
expect_err "--kv-heads and --untied are a decoder's" "kv heads on an encoder"
expect_exit 2 "weight-drop on an encoder" -- lm-train "${common[@]}" --weight-drop 0.1 --steps 5 -o x.gguf
expect_exit 1 "a context longer than the data" -- lm-train --tokenizer tok.model --data <(head -c 40 corpus.txt) "${net[@]}" --steps 5 -o x.gguf
expect_err "fewer than one row of 30" "data shorter than a row"
finish
