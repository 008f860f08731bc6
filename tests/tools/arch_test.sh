#!/usr/bin/env bash
# Every architecture lm runs (docs/architectures.md) against llama.cpp's figures on the same
# file: a random-weight model in the architecture's layout gives llama-perplexity's
# perplexity within 0.1% and llama-simple's greedy continuation byte for byte
# (tests/data/arch/ARCH.txt, recorded by bench/arch_vs_llama.sh --record), and its quantized
# copies llama-perplexity's within 0.2%. Then what the
# tools do with such models: quantized copies, qwen2's and phi3's fine-tuning, gpt2's training
# from scratch, refusals to train the others, and bad files.
source "$(dirname "$0")/lib.sh"
: "${LM_TEST_BIN:?set LM_TEST_BIN to the directory holding lm_test_write_gguf}"
A=$LM_TEST_DATA/arch
vocab=$LM_TEST_DATA/vocab/bytebpe-gpt-2.gguf
# like_llama FIXTURE KEY LABEL ARGS...: lm-eval perplexity ARGS over text.txt in windows of 128
# is within 0.1% of llama-perplexity's figure KEY in tests/data/arch/FIXTURE.
like_llama() {
  local want got
  want=$(awk -v k="$2" '$1 == k { print $2 }' "$A/$1")
  got=$(lm-eval perplexity -q "${@:4}" -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
  awk -v a="$want" -v b="$got" 'BEGIN { d = (b - a) / a; exit !(a > 0 && d < 0.001 && d > -0.001) }' && pass ||
    fail "$3: perplexity $got, llama.cpp $want (more than 0.1% apart)"
}

for arch in llama llama3 llama-hd qwen2 qwen2-yarn phi3 phi3-longrope gpt2 gemma2; do
  "$LM_TEST_BIN/lm_test_write_gguf" --random $arch "$vocab" $arch.gguf || { fail "$arch: writing the model"; continue; }
  want=$(awk '$1 == "perplexity" { print $2 }' "$A/$arch.txt")
  expect_exit 0 "$arch: lm-eval perplexity" -- lm-eval perplexity -q -m $arch.gguf -c 128 -t 2 "$A/text.txt"
  got=$(awk -F'\t' 'NR == 2 { print $5 }' "$T/out")
  awk -v a="$want" -v b="$got" 'BEGIN { d = (b - a) / a; exit !(d < 0.001 && d > -0.001) }' && pass ||
    fail "$arch: perplexity $got, llama.cpp $want (more than 0.1% apart)"
  # Quantized copies made by lm-quantize: lm's quantized kernels against llama.cpp's on the same
  # file, within 0.2% (measured: at most 0.1%; F32 agrees to 0.0015%). Under the sanitizers
  # (LM_TEST_LEAN) one of the six types.
  types="q8_0 q4_0 q4_k_m q6_k q5_k_m q3_k_m"
  [[ -n ${LM_TEST_LEAN:-} ]] && types="q4_k_m"
  [[ $arch == qwen2-yarn ]] && types="q8_0"  # YaRN is in the positions; qwen2 covers the types
  for type in $types; do
    lm-quantize -q -m $arch.gguf -o $arch-$type.gguf --type $type || { fail "$arch: lm-quantize --type $type"; continue; }
    want=$(awk -v k="perplexity-$type" '$1 == k { print $2 }' "$A/$arch.txt")
    got=$(lm-eval perplexity -q -m $arch-$type.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
    awk -v a="$want" -v b="$got" 'BEGIN { d = (b - a) / a; exit !(a > 0 && d < 0.002 && d > -0.002) }' && pass ||
      fail "$arch $type: perplexity $got, llama.cpp $want (more than 0.2% apart)"
    rm -f $arch-$type.gguf
  done
  expect_exit 0 "$arch: lm-generate --greedy" -- lm-generate -q -m $arch.gguf --greedy --echo -n 24 -t 2 -p "The jury said"
  [[ $(od -An -v -tx1 < "$T/out" | tr -d ' \n') == $(awk '$1 == "continuation" { print $2 }' "$A/$arch.txt") ]] && pass ||
    fail "$arch: greedy continuation differs from llama.cpp's: $(head -c 120 "$T/out")"
done

# Sentence embeddings (lm-eval embed --normalize) equal llama-embedding's within 5e-4 per value
# (llama.cpp's GELU reads an fp16 table; lm computes it in f32): bert, an encoder, with its
# file's mean pooling, and a llama decoder with --pooling mean.
"$LM_TEST_BIN/lm_test_write_gguf" --random bert "$LM_TEST_DATA/vocab/wordpiece.gguf" bert.gguf
for name in bert llama-embedding; do
  model=bert.gguf pool=()
  [[ $name == bert ]] || model=llama.gguf pool=(--pooling mean)
  expect_exit 0 "$name: lm-eval embed" -- sh -c "sed -n 's/^sentence //p' '$A/$name.txt' | lm-eval embed -m $model --normalize ${pool[*]}"
  maxdiff=$(paste <(tr '\t' '\n' < "$T/out") <(sed -n 's/^embedding //p' "$A/$name.txt" | tr -s ' ' '\n') |
    awk 'NF != 2 { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { print bad ? 1 : m }')
  awk -v m="$maxdiff" 'BEGIN { exit !(m < 5e-4) }' && pass || fail "$name: embedding differs from llama.cpp's by $maxdiff"
done
# A bert classifier (rank pooling: the first token through cls.output): lm-eval predict's
# probabilities are the softmax of llama-embedding's class logits within 1e-4.
"$LM_TEST_BIN/lm_test_write_gguf" --random bert-cls "$LM_TEST_DATA/vocab/wordpiece.gguf" bert-cls.gguf
sed -n 's/^sentence \(.*\)\tlogits .*/\1/p' "$A/bert-cls.txt" > cls.txt
expect_exit 0 "bert-cls: lm-eval predict" -- lm-eval predict -m bert-cls.gguf --top 3 --json cls.txt
sed 's/.*"top":\[//; s/[]}{"]//g; s/label://g; s/probability://g' "$T/out" | tr ',' ' ' > lm.cls
maxdiff=$(paste -d' ' <(sed -n 's/.*\tlogits //p' "$A/bert-cls.txt") lm.cls | awk 'NF != 9 { bad = 1 } {
    m = $1; for (i = 2; i <= 3; i++) if ($i > m) m = $i
    s = 0; for (i = 1; i <= 3; i++) s += exp($i - m)
    split("negative neutral positive", names, " ")
    for (i = 1; i <= 3; i++) p[names[i]] = exp($i - m) / s
    for (j = 4; j < NF; j += 2) { d = p[$j] - $(j + 1); if (d < 0) d = -d; if (d > w) w = d }
  } END { print (bad || NR != 3) ? 1 : w }')
awk -v m="$maxdiff" 'BEGIN { exit !(m < 1e-4) }' && pass || fail "bert-cls: class probabilities differ from llama.cpp's by $maxdiff"
expect_exit 1 "an encoder has no next-token logits" -- lm-generate -m bert.gguf -n 1 -p x
expect_err "bert.gguf: .*encoder" "lm-generate says it is an encoder"

# A quantized copy of another architecture runs and stays close to its F32 perplexity.
expect_exit 0 "lm-quantize a qwen2 model" -- lm-quantize -q -m qwen2.gguf -o qwen2-q8.gguf --type q8_0
expect_exit 0 "the q8_0 qwen2 model scores" -- lm-eval perplexity -q -m qwen2-q8.gguf -c 128 -t 2 "$A/text.txt"
q8=$(awk -F'\t' 'NR == 2 { print $5 }' "$T/out")
awk -v a="$(awk '$1 == "perplexity" { print $2 }' "$A/qwen2.txt")" -v b="$q8" 'BEGIN { d = (b - a) / a; exit !(d < 0.02 && d > -0.02) }' &&
  pass || fail "q8_0 qwen2 perplexity $q8 is more than 2% from F32's"

# qwen2 trains (q, k, v biases, RoPE in NEOX order): a full fine-tune lowers its perplexity and
# is written back as qwen2; a LoRA adapter applied at load time gives what the same run merged
# gives (both files read by llama.cpp alike: docs/architectures.md).
# 20 steps, or 8 under the sanitizers (LM_TEST_LEAN), where each of these runs took 15 s: 8 steps
# bring both models below half their base perplexity (measured: qwen2 536 from 1370, phi3 414
# from 1755).
steps=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 8 || echo 20)
base=$(awk '$1 == "perplexity" { print $2 }' "$A/qwen2.txt")
expect_exit 0 "lm-finetune a qwen2 model" -- lm-finetune -q -m qwen2.gguf -o qwen2-ft.gguf --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
expect_exit 0 "the fine-tuned qwen2 model scores" -- lm-eval perplexity -q -m qwen2-ft.gguf -c 128 -t 2 "$A/text.txt"
ft=$(awk -F'\t' 'NR == 2 { print $5 }' "$T/out")
awk -v a="$base" -v b="$ft" 'BEGIN { exit !(b > 0 && b < a / 2) }' && pass || fail "qwen2 fine-tune: perplexity $ft, base $base"
"$LM_TEST_BIN/lm_test_edit_gguf" qwen2-ft.gguf qwen2-ft-edit.gguf drop blk.0.attn_q.bias 2> /dev/null &&
  pass || fail "the fine-tuned qwen2 file lacks blk.0.attn_q.bias"
expect_exit 0 "a qwen2 LoRA adapter" -- lm-finetune -q -m qwen2.gguf -o qwen2-ad.gguf --lora --lora-targets all --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
expect_exit 0 "the same run merged" -- lm-finetune -q -m qwen2.gguf -o qwen2-merged.gguf --lora --lora-targets all --merge --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
a=$(lm-eval perplexity -q -m qwen2.gguf --lora qwen2-ad.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
m=$(lm-eval perplexity -q -m qwen2-merged.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
awk -v a="$a" -v b="$m" -v c="$base" 'BEGIN { d = (b - a) / a; exit !(a > 0 && a < c && d < 1e-4 && d > -1e-4) }' && pass ||
  fail "qwen2 LoRA: perplexity $a with the adapter, $m merged, $base before"
# phi3 trains with its fused tensors split (attn_qkv, ffn_up) and written back fused; a LoRA
# pair adapts a fused tensor whole, and the adapter applied gives what the run merged gives.
base=$(awk '$1 == "perplexity" { print $2 }' "$A/phi3.txt")
expect_exit 0 "lm-finetune a phi3 model" -- lm-finetune -q -m phi3.gguf -o phi3-ft.gguf --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
ft=$(lm-eval perplexity -q -m phi3-ft.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
awk -v a="$base" -v b="$ft" 'BEGIN { exit !(b > 0 && b < a / 2) }' && pass || fail "phi3 fine-tune: perplexity $ft, base $base"
"$LM_TEST_BIN/lm_test_edit_gguf" phi3-ft.gguf phi3-ft-edit.gguf drop blk.1.attn_qkv.weight 2> /dev/null &&
  pass || fail "the fine-tuned phi3 file lacks blk.1.attn_qkv.weight"
expect_exit 0 "a phi3 LoRA adapter" -- lm-finetune -q -m phi3.gguf -o phi3-ad.gguf --lora --lora-targets q,up --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
"$LM_TEST_BIN/lm_test_edit_gguf" phi3-ad.gguf phi3-ad-edit.gguf drop blk.0.ffn_up.weight.lora_b 2> /dev/null &&
  pass || fail "the phi3 adapter lacks the fused pair blk.0.ffn_up.weight.lora_b"
expect_exit 0 "the same run merged" -- lm-finetune -q -m phi3.gguf -o phi3-merged.gguf --lora --lora-targets q,up --merge --data "$A/text.txt" --steps $steps --lr 3e-3 -t 2
a=$(lm-eval perplexity -q -m phi3.gguf --lora phi3-ad.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
m=$(lm-eval perplexity -q -m phi3-merged.gguf -c 128 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
awk -v a="$a" -v b="$m" -v c="$base" 'BEGIN { d = (b - a) / a; exit !(a > 0 && a < c && d < 1e-4 && d > -1e-4) }' && pass ||
  fail "phi3 LoRA: perplexity $a with the adapter, $m merged, $base before"
expect_exit 1 "a LongRoPE phi3 file does not train" -- lm-finetune -m phi3-longrope.gguf -o ft.gguf --data "$A/text.txt" --steps 1
expect_err "phi3-longrope.gguf: has RoPE scaling or partial RoPE, which training does not support yet" "says why"

# qwen2, phi3, gpt2 and gemma2 train as classifiers (the cls.output head of docs/formats.md): a
# full fine-tune of qwen2 and gemma2, LoRA on phi3's fused pairs and on gpt2's, each file scored again by lm-eval classify -m (the
# accuracy lm-finetune reported on the held-out lines: the head and the fused tensors went out and
# came back), and the file is still its architecture's.
awk 'NF { print (($0 ~ /(^| )(the|of|and)( |$)/) ? "common" : "rare") "\t" $0 }' "$A/text.txt" > labeled.tsv
n=$(wc -l < labeled.tsv)
head -n $((n * 3 / 4)) labeled.tsv > cls-train.tsv
tail -n +$((n * 3 / 4 + 1)) labeled.tsv > cls-test.tsv
for run in "qwen2" "phi3 --lora --lora-targets all" "gpt2 --lora --lora-targets attn,mlp" "gemma2 --context 24"; do
  set -- $run
  arch=$1
  shift
  expect_exit 0 "a $arch classifier" -- lm-finetune -q -m $arch.gguf -o $arch-cls.gguf --task classify "$@" \
    --data cls-train.tsv --valid cls-test.tsv --steps $steps --lr 1e-3 --batch 8 -t 2 --json
  acc=$(field valid_accuracy "$T/out")
  expect_exit 0 "lm-eval classify -m, $arch" -- lm-eval classify -m $arch-cls.gguf cls-test.tsv --json -t 2
  awk -v a="$(field accuracy "$T/out")" -v b="$acc" 'BEGIN { exit !(b != "" && (a - b) ^ 2 < 1e-12) }' && pass ||
    fail "the $arch classifier scores $(field accuracy "$T/out") in lm-eval but $acc in lm-finetune"
  "$LM_TEST_BIN/lm_test_edit_gguf" $arch-cls.gguf x.gguf drop cls.output.weight 2> /dev/null && pass ||
    fail "the $arch classifier lacks cls.output.weight"
  expect_exit 0 "lm-generate reads the $arch classifier" -- lm-generate -q -m $arch-cls.gguf -n 4 -p "The jury" -t 2
done

# gpt2 trains from scratch (lm-train --arch gpt2): the loss falls, the file is llama.cpp's gpt2
# layout (llama-perplexity's figure for this run's file, tests/data/arch/gpt2-trained.txt, within
# 0.1%), and a run interrupted by SIGINT resumes, at another thread count, to the same file.
g2=(--arch gpt2 --tokenizer "$vocab" --data "$A/text.txt" --layers 2 --embd 64 --heads 4 --ff 256 --context 64
  --batch 4 --lr 3e-3 --eval-every 0 --seed 7)
expect_exit 0 "lm-train --arch gpt2" -- lm-train "${g2[@]}" --steps 40 --metrics g2.jsonl -o gpt2-trained.gguf -q -t 2
first=$(head -1 g2.jsonl | grep -o '"loss":[0-9.]*' | cut -d: -f2)
last=$(tail -1 g2.jsonl | grep -o '"loss":[0-9.]*' | cut -d: -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > 0 && b < a - 1) }' && pass || fail "gpt2 training loss $first -> $last"
want=$(awk '$1 == "perplexity" { print $2 }' "$A/gpt2-trained.txt")
got=$(lm-eval perplexity -q -m gpt2-trained.gguf -c 64 -t 2 "$A/text.txt" | awk -F'\t' 'NR == 2 { print $5 }')
awk -v a="$want" -v b="$got" 'BEGIN { d = (b - a) / a; exit !(d < 0.001 && d > -0.001) }' && pass ||
  fail "the trained gpt2: perplexity $got, llama.cpp $want (more than 0.1% apart)"
g2steps=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 60 || echo 150)
mkdir -p g2full g2part  # the same file name: the model's name in the file is the output's
lm-train "${g2[@]}" --batch 2 --steps $g2steps --dropout 0.1 -o g2full/model.gguf -q -t 2 > /dev/null
interrupt_run g2-part.jsonl g2-int.err lm-train "${g2[@]}" --batch 2 --steps $g2steps --dropout 0.1 \
  --metrics g2-part.jsonl -o g2part/model.gguf -t 2
expect_exit 0 "gpt2: resume" -- lm-train "${g2[@]}" --batch 2 --steps $g2steps --dropout 0.1 \
  --resume g2part/model.gguf.ckpt -o g2part/model.gguf -q -t 1
(( stopped < g2steps )) && pass || fail "the gpt2 run finished before the interrupt"
same_files g2full/model.gguf g2part/model.gguf "the resumed gpt2 run writes the same model"
expect_exit 1 "a gpt2 checkpoint does not resume as llama" -- lm-train "${g2[@]/gpt2/llama}" --batch 2 \
  --steps $g2steps --dropout 0.1 --resume g2part/model.gguf.ckpt -o x.gguf
expect_err "checkpoint belongs to another run: architecture gpt2 in the checkpoint but llama now" "names the difference"
expect_exit 0 "lm-train --arch gpt2 --dry-run" -- lm-train "${g2[@]}" --dry-run
grep -q "^model	gpt2: V [0-9]*, T 64, L 2, C 64, H 4, F 256, tied\$" "$T/out" && pass || fail "dry run: $(head -1 "$T/out")"
expect_exit 2 "--kv-heads with gpt2" -- lm-train "${g2[@]}" --kv-heads 2 --steps 1 -o x.gguf
expect_err "^lm-train: --kv-heads is llama's: gpt2 has as many key/value heads as heads\$" "says why"

# A full fine-tune of the random gpt2 file, against llama.cpp's figure for the same run's file.
expect_exit 0 "lm-finetune on gpt2" -- lm-finetune -q -m gpt2.gguf -o gpt2-ft.gguf --data "$A/text.txt" --steps 20 \
  --lr 3e-3 -t 2
like_llama gpt2-trained.txt perplexity-finetuned "the fine-tuned gpt2" -m gpt2-ft.gguf
"$LM_TEST_BIN/lm_test_edit_gguf" gpt2.gguf gpt2-nobias.gguf drop blk.0.attn_qkv.bias
expect_exit 1 "a gpt2 file without a bias does not train" -- lm-finetune -m gpt2-nobias.gguf -o ft.gguf \
  --data "$A/text.txt" --steps 1
expect_err "^lm-finetune: gpt2-nobias.gguf: has no tensor 'blk.0.attn_qkv.bias', which lm's gpt2 training needs\$" \
  "names the file and the tensor"
# LoRA on every projection (q, k, v: one pair on attn_qkv), applied at load time and merged,
# against llama.cpp's figures for the same files (its --lora applies the adapter).
ad=(-m gpt2.gguf --lora --lora-targets all --data "$A/text.txt" --steps 20 --lr 3e-3 -t 2)
expect_exit 0 "a gpt2 LoRA adapter" -- lm-finetune -q "${ad[@]}" -o gpt2-ad.gguf
expect_exit 0 "the same run merged" -- lm-finetune -q "${ad[@]}" --merge -o gpt2-merged.gguf
like_llama gpt2-trained.txt perplexity-lora "gpt2 lora" --lora gpt2-ad.gguf -m gpt2.gguf
like_llama gpt2-trained.txt perplexity-lora-merged "gpt2 lora-merged" -m gpt2-merged.gguf

# Fine-tuned files against llama.cpp's figures for the same files (tests/data/arch/ARCH-trained.txt,
# 0.1%): a full fine-tune, and a LoRA adapter on every projection applied at load time, of
# - llama-hd, a head size other than width / heads (4 heads of 24 in a 64-wide model: q is 96 wide);
# - gemma2: soft-capped attention and logits, GeGLU, post-norms, the embedding scale, its own head
#   size. Its windows are at most the file's sliding window (24): a longer context is refused
#   with the way out.
expect_exit 2 "gemma2: a context past the sliding window" -- lm-finetune -m gemma2.gguf -o ft.gguf --data "$A/text.txt" --steps 1
expect_err "sequence length 256 is past the model's sliding window of 24 tokens, which training does not support \\(use --context 24 or less\\)" "says why and what to do"
for run in "llama-hd" "gemma2 --context 24"; do
  set -- $run
  arch=$1
  shift
  ft=(-m $arch.gguf "$@" --data "$A/text.txt" --steps 20 --lr 3e-3 -t 2)
  expect_exit 0 "lm-finetune $arch" -- lm-finetune -q "${ft[@]}" -o $arch-ft.gguf
  expect_exit 0 "a $arch LoRA adapter" -- lm-finetune -q "${ft[@]}" --lora --lora-targets all -o $arch-ad.gguf
  like_llama $arch-trained.txt perplexity-finetuned "$arch finetuned" -m $arch-ft.gguf
  like_llama $arch-trained.txt perplexity-lora "$arch lora" --lora $arch-ad.gguf -m $arch.gguf
done

# Bad files: an architecture lm does not know, contradictory keys, a missing bias.
"$LM_TEST_BIN/lm_test_edit_gguf" qwen2.gguf falcon.gguf str general.architecture falcon
expect_exit 1 "an unknown architecture" -- lm-generate -m falcon.gguf -n 1 -p x
expect_err "falcon.gguf: architecture 'falcon' is not supported; supported: bert, gemma2, gpt2, llama, lstm, phi3, qwen2" "names it and the supported ones"
"$LM_TEST_BIN/lm_test_edit_gguf" qwen2.gguf heads.gguf u32 qwen2.attention.head_count 5
expect_exit 1 "heads that do not divide the width" -- lm-generate -m heads.gguf -n 1 -p x
expect_err "heads.gguf: embedding length 64 is not a multiple of head count 5" "names the file and the keys"
"$LM_TEST_BIN/lm_test_edit_gguf" qwen2.gguf nobias.gguf drop blk.1.attn_k.bias
expect_exit 1 "a missing bias" -- lm-generate -m nobias.gguf -n 1 -p x
expect_err "nobias.gguf: missing tensor 'blk.1.attn_k.bias'" "names the tensor"
# Keys that claim far more weights than the file holds: training checks every tensor before it
# allocates its parameters (1024 layers of a 2^20-wide MLP would be 3.3 TB of floats).
"$LM_TEST_BIN/lm_test_edit_gguf" qwen2.gguf big1.gguf u32 qwen2.feed_forward_length 1048576
"$LM_TEST_BIN/lm_test_edit_gguf" big1.gguf big.gguf u32 qwen2.block_count 1024
expect_exit 1 "a file claiming huge layers" -- lm-finetune -m big.gguf -o ft.gguf --data "$A/text.txt" --steps 1
expect_err "big.gguf: tensor 'blk.0.ffn_gate.weight' has shape \\{64, 128\\}, expected \\{64, 1048576\\}" "names the tensor"
"$LM_TEST_BIN/lm_test_edit_gguf" gpt2.gguf shape.gguf shape blk.0.attn_qkv.weight 64,100
expect_exit 1 "a fused tensor of the wrong shape" -- lm-generate -m shape.gguf -n 1 -p x
expect_err "shape.gguf: tensor 'blk.0.attn_qkv.weight' has shape \\{64, 100\\}, expected \\{64, 192\\}" "names the tensor and both shapes"
"$LM_TEST_BIN/lm_test_edit_gguf" llama.gguf dyn.gguf str llama.rope.scaling.type dynamic
expect_exit 1 "an unsupported rope scaling" -- lm-generate -m dyn.gguf -n 1 -p x
expect_err "dyn.gguf: key 'llama.rope.scaling.type' is 'dynamic', expected none, linear, yarn or longrope" "names the key and value"

finish
