#!/usr/bin/env bash
# lm-quantize end to end on two tiny trained models: A (untied, every width a multiple of 256,
# so no fallbacks) and B (tied, 64 wide, --ff 100, so fallbacks): every file type reads back
# through lm-eval with a close perplexity, sizes and bits per weight, --dry-run against the real
# file, overrides, requantizing, --eval keys, determinism, importance matrices (ours and one
# llama-imatrix wrote), and one-line errors that leave an existing output alone.
source "$(dirname "$0")/lib.sh"

make_corpus 3000 > corpus.txt
# The scored text: 400 lines, or 100 in the sanitizer pass (scripts/test.sh sets LM_TEST_LEAN),
# where every perplexity below costs ten times as much.
head -n "$([[ -n ${LM_TEST_LEAN:-} ]] && echo 100 || echo 400)" corpus.txt > a.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
train=(lm-train -q --tokenizer tok.model --data corpus.txt --context 32 --heads 4 --layers 2 --batch 4 --warmup 5
       --lr 3e-3 -t 2)
fixture A.gguf "${train[@]}" --embd 256 --kv-heads 2 --ff 256 --untied --steps 300 -o A.gguf > /dev/null || fail "training model A"
fixture B.gguf "${train[@]}" --embd 64 --ff 100 --steps 60 -o B.gguf > /dev/null || fail "training model B"
q=(lm-quantize -t 2)
size() { stat -c %s "$1"; }
ppl() { lm-eval perplexity -t 1 -c 32 -m "$1" a.txt | awk -F'\t' 'NR == 2 { print $5 }'; }
# close A B TOLERANCE: |A - B| <= TOLERANCE * B
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= t * b) }'; }
# types FILE: "name type" per tensor, read back with a dry run
types() { lm-quantize -q -m "$1" -o unused.gguf --type f32 --allow-requantize --dry-run | awk -F'\t' 'NR > 1 && $1 !~ /^\(/ { print $1, $3 }'; }
type_of() { types "$1" | awk -v n="$2" '$1 == n { print $2 }'; }

# ---- every file type: reads back, perplexity close to the source's, size as planned ----
p_src=$(ppl A.gguf)
types_to_test="f32 f16 bf16 q8_0 q6_k q5_k_m q5_0 q4_k_m q4_1 q4_0 q3_k_m q2_k"
declare -A tol=([f32]=0 [f16]=0.002 [bf16]=0.01 [q8_0]=0.01 [q6_k]=0.03 [q5_k_m]=0.05 [q5_0]=0.05 [q4_k_m]=0.1
                [q4_1]=0.15 [q4_0]=0.15 [q3_k_m]=0.25 [q2_k]=0.6)
declare -A bpw=([f32]=32 [f16]=16 [bf16]=16 [q8_0]=8.5)
for t in $types_to_test; do
  expect_exit 0 "--dry-run $t" -- "${q[@]}" -m A.gguf -o "A-$t.gguf" --type "$t" --dry-run
  planned=$(awk -F'\t' '$1 == "(file)" { print $6 }' "$T/out")
  [[ ! -e A-$t.gguf ]] && pass || fail "--dry-run $t wrote a file"
  expect_exit 0 "quantize to $t" -- "${q[@]}" -m A.gguf -o "A-$t.gguf" --type "$t" --json
  [[ $(size "A-$t.gguf") == "$planned" && $(field bytes_out "$T/out") == "$planned" ]] && pass ||
    fail "$t: file of $(size "A-$t.gguf") bytes, dry run said $planned, --json $(field bytes_out "$T/out")"
  [[ -z ${bpw[$t]:-} ]] || awk -v b="$(field bpw "$T/out")" -v w="${bpw[$t]}" 'BEGIN { exit !(b == w) }' && pass ||
    fail "$t: bpw $(field bpw "$T/out"), expected ${bpw[$t]}"
  # Under the sanitizers (LM_TEST_LEAN) a few types are scored: the numbers are the Release
  # pass's job, the sanitizers' the conversions above and one scoring path per kernel family.
  if [[ -n ${LM_TEST_LEAN:-} && " f32 q8_0 q4_k_m q5_0 " != *" $t "* ]]; then continue; fi
  p=$(ppl "A-$t.gguf")
  close "$p" "$p_src" "${tol[$t]}" && pass || fail "$t: perplexity $p, source $p_src (tolerance ${tol[$t]})"
done
[[ $(size A-f16.gguf) -lt $(size A-f32.gguf) && $(size A-q8_0.gguf) -lt $(size A-f16.gguf) ]] && pass ||
  fail "sizes do not shrink with the type"
cmp -s A.gguf A-f32.gguf && fail "an f32 copy should carry lm.quantize keys" || pass
[[ $(ppl A-f32.gguf) == "$p_src" ]] && pass || fail "the f32 copy scores differently"
[[ $(type_of A-q8_0.gguf blk.1.ffn_down.weight) == q8_0 && $(type_of A-q8_0.gguf output.weight) == q8_0 &&
   $(type_of A-q8_0.gguf blk.1.ffn_norm.weight) == f32 && $(type_of A-bf16.gguf output.weight) == bf16 ]] && pass ||
  fail "types in the q8_0 / bf16 copies: $(types A-q8_0.gguf | tr '\n' ' ')"
[[ $(type_of A-q4_0.gguf output.weight) == q6_K && $(type_of A-q4_0.gguf token_embd.weight) == q4_0 ]] && pass ||
  fail "q4_0: the output tensor is q6_K: $(types A-q4_0.gguf | tr '\n' ' ')"
# Two layers: use_more_bits picks layer 1 only.
[[ $(type_of A-q4_k_m.gguf blk.0.attn_v.weight) == q4_K && $(type_of A-q4_k_m.gguf blk.1.attn_v.weight) == q6_K &&
   $(type_of A-q4_k_m.gguf blk.1.ffn_down.weight) == q6_K && $(type_of A-q4_k_m.gguf blk.1.ffn_up.weight) == q4_K ]] &&
  pass || fail "q4_k_m mix: $(types A-q4_k_m.gguf | tr '\n' ' ')"
# llama.cpp's mixes (the rules are unit-tested; these files match llama-quantize's byte for byte).
[[ $(type_of A-q5_k_m.gguf blk.0.attn_v.weight) == q5_K && $(type_of A-q5_k_m.gguf blk.1.ffn_down.weight) == q6_K &&
   $(type_of A-q5_k_m.gguf output.weight) == q6_K ]] && pass || fail "q5_k_m mix: $(types A-q5_k_m.gguf | tr '\n' ' ')"
[[ $(type_of A-q3_k_m.gguf blk.0.attn_v.weight) == q5_K && $(type_of A-q3_k_m.gguf blk.1.attn_output.weight) == q4_K &&
   $(type_of A-q3_k_m.gguf blk.1.ffn_down.weight) == q4_K && $(type_of A-q3_k_m.gguf blk.1.ffn_up.weight) == q3_K ]] &&
  pass || fail "q3_k_m mix: $(types A-q3_k_m.gguf | tr '\n' ' ')"
[[ $(type_of A-q2_k.gguf blk.0.attn_v.weight) == q3_K && $(type_of A-q2_k.gguf blk.0.ffn_down.weight) == q3_K &&
   $(type_of A-q2_k.gguf blk.0.attn_q.weight) == q2_K && $(type_of A-q4_1.gguf blk.0.attn_q.weight) == q4_1 &&
   $(type_of A-q5_0.gguf blk.0.attn_q.weight) == q5_0 ]] && pass || fail "q2_k mix: $(types A-q2_k.gguf | tr '\n' ' ')"
[[ $(size A-q2_k.gguf) -lt $(size A-q3_k_m.gguf) && $(size A-q3_k_m.gguf) -lt $(size A-q4_0.gguf) &&
   $(size A-q4_k_m.gguf) -lt $(size A-q5_k_m.gguf) && $(size A-q5_k_m.gguf) -lt $(size A-q6_k.gguf) ]] && pass ||
  fail "mix sizes out of order"
[[ $(size A-q4_0.gguf) -lt $(size A-q4_k_m.gguf) && $(size A-q4_k_m.gguf) -lt $(size A-q6_k.gguf) &&
   $(size A-q6_k.gguf) -lt $(size A-q8_0.gguf) ]] && pass || fail "K-quant sizes out of order"

# ---- --dry-run table and JSON ----
expect_exit 0 "--dry-run --json" -- "${q[@]}" -m A.gguf -o x.gguf --type q8_0 --dry-run --json
[[ $(field dry_run "$T/out") == true && $(grep -o '"name":' "$T/out" | wc -l) == 21 ]] && pass ||
  fail "--dry-run --json: $(head -c 300 "$T/out")"
grep -q '{"name":"blk.0.attn_norm.weight","shape":\[256\],"type_in":"f32","type_out":"f32","bytes_in":1024,"bytes_out":1024,"reason":"copy"}' "$T/out" &&
  pass || fail "--dry-run --json plan entry"
"${q[@]}" -m A.gguf -o x.gguf --type q8_0 --dry-run > plan.tsv 2> /dev/null
awk -F'\t' '$1 == "(weights)" { exit !($7 == "8.5000") }' plan.tsv && pass || fail "(weights) row: $(grep weights plan.tsv)"
[[ ! -e x.gguf ]] && no_leftovers . "--dry-run" || fail "--dry-run wrote x.gguf"

# ---- --eval: results printed, stored, shown by the other tools ----
expect_exit 0 "--eval" -- "${q[@]}" -m A.gguf -o E.gguf --type q8_0 --eval a.txt -c 32 --json
# stderr is not a terminal: the summary and the scores, no progress line.
[[ $(wc -l < "$T/err") == 2 ]] && ! grep -q $'\r' "$T/err" && pass || fail "--eval stderr: $(cat -v "$T/err")"
if command -v script > /dev/null; then
  script -qec "lm-quantize -t 2 -m A.gguf -o E2.gguf --type q8_0 --eval a.txt -c 32" /dev/null < /dev/null > tty.txt
  for what in "reading a.txt" "writing E2.gguf" "scoring on a.txt"; do
    grep -q $'\r\e\\[K'"$what: " tty.txt && pass || fail "no '$what' progress on a terminal: $(head -c 300 tty.txt | cat -v)"
  done
  same_files E.gguf E2.gguf "the progress line changes nothing in the file"
fi
for key in perplexity perplexity_source kld top1_agreement tokens ctx; do
  [[ -n $(field $key "$T/out") ]] && pass || fail "--json eval lacks $key: $(cat "$T/out")"
done
[[ $(field bytes_out "$T/out") == "$(size E.gguf)" ]] && pass || fail "--eval: bytes_out is not the file size"
ep=$(field perplexity "$T/out")
close "$ep" "$(ppl E.gguf)" 0.0001 && pass || fail "--eval perplexity $ep differs from lm-eval's $(ppl E.gguf)"
close "$(field perplexity_source "$T/out")" "$p_src" 0.0001 && pass || fail "--eval source perplexity"
awk -v k="$(field kld "$T/out")" -v a="$(field top1_agreement "$T/out")" 'BEGIN { exit !(k >= 0 && k < 0.01 && a > 0.9) }' &&
  pass || fail "--eval q8_0 kld and agreement: $(cat "$T/out")"
expect_exit 0 "--dry-run with --eval" -- "${q[@]}" -m A.gguf -o E2.gguf --type q8_0 --eval a.txt -c 32 --dry-run
[[ $(awk -F'\t' '$1 == "(file)" { print $6 }' "$T/out") == "$(size E.gguf)" ]] && pass || fail "--dry-run --eval size"
expect_exit 0 "--eval text output" -- "${q[@]}" -m A.gguf -o E.gguf --type q8_0 --eval a.txt -c 32
[[ $(cut -f1 "$T/out" | paste -sd,) == perplexity_source,perplexity,kld,top1_agreement,tokens ]] && pass ||
  fail "--eval output: $(cat "$T/out")"
want="quantized from A.gguf \(f32\); on a.txt \([0-9]+ tokens, chunks of 32\): perplexity [0-9.]+ \(source [0-9.]+\), KL divergence"
lm-eval perplexity -v -t 1 -c 32 -m E.gguf a.txt > /dev/null 2> ev.err
grep -Eq "^lm-eval: E.gguf: llama, 2 layers, 256 wide, .*; q8_0, .*$want" ev.err && pass || fail "lm-eval -v: $(cat ev.err)"
lm-generate -v -t 1 -m E.gguf -p "The jury" -n 2 -s 1 > /dev/null 2> gen.err
grep -Eq "^lm-generate: E.gguf: .*$want" gen.err && pass || fail "lm-generate -v: $(cat gen.err)"
lm-tokenize stats -v -m E.gguf a.txt > /dev/null 2> tok.err
grep -Eq "^lm-tokenize: E.gguf: .*$want" tok.err && pass || fail "lm-tokenize stats -v: $(cat tok.err)"
lm-eval kld -v -t 1 -c 32 -m E.gguf --ref A.gguf a.txt > /dev/null 2> kld.err
grep -Eq "^lm-eval: A.gguf: llama, 2 layers, 256 wide, [0-9.]+M parameters; f32, 32.00 bits per weight$" kld.err &&
  pass || fail "lm-eval kld -v: $(cat kld.err)"
# Quantizing again replaces the eval keys.
expect_exit 0 "requantize an evaluated file" -- "${q[@]}" -m E.gguf -o E-f16.gguf --type f16 --allow-requantize
lm-eval perplexity -v -t 1 -c 32 -m E-f16.gguf a.txt > /dev/null 2> ev.err
grep -q "quantized from E.gguf (q8_0)$" ev.err && pass || fail "stale eval keys copied: $(cat ev.err)"

# ---- --tensor-type ----
expect_exit 0 "--tensor-type" -- "${q[@]}" -m A.gguf -o O.gguf --type q8_0 --tensor-type 'blk\.0\.attn_v=f16' \
  --tensor-type 'attn_(v|k)=BF16' --tensor-type '^output\.weight$=f32'
[[ $(type_of O.gguf blk.0.attn_v.weight) == f16 && $(type_of O.gguf blk.1.attn_v.weight) == bf16 &&
   $(type_of O.gguf blk.0.attn_k.weight) == bf16 && $(type_of O.gguf output.weight) == f32 &&
   $(type_of O.gguf blk.0.attn_output.weight) == q8_0 ]] && pass || fail "--tensor-type: $(types O.gguf | tr '\n' ' ')"
close "$(ppl O.gguf)" "$p_src" 0.01 && pass || fail "--tensor-type copy perplexity"

# ---- fallbacks (model B: rows of 100 values) ----
expect_exit 0 "fallback to f16" -- "${q[@]}" -m B.gguf -o B-q8.gguf --type q8_0
[[ $(grep -c "warning: tensor 'blk\.[01]\.ffn_down\.weight' has 100 values per row, not a multiple of 32 for q8_0: it is f16 instead" "$T/err") == 2 ]] &&
  pass || fail "fallback warnings: $(cat "$T/err")"
[[ $(type_of B-q8.gguf blk.0.ffn_down.weight) == f16 && $(type_of B-q8.gguf blk.0.ffn_up.weight) == q8_0 &&
   $(type_of B-q8.gguf token_embd.weight) == q8_0 ]] && pass || fail "fallback types: $(types B-q8.gguf | tr '\n' ' ')"
close "$(ppl B-q8.gguf)" "$(ppl B.gguf)" 0.01 && pass || fail "B q8_0 perplexity"
expect_exit 0 "K-quant fallbacks" -- "${q[@]}" -m B.gguf -o B-k.gguf --type q4_k_m
[[ $(type_of B-k.gguf blk.0.attn_q.weight) == q5_0 && $(type_of B-k.gguf blk.1.attn_v.weight) == q8_0 &&
   $(type_of B-k.gguf blk.0.ffn_down.weight) == f16 ]] && pass || fail "K-quant fallbacks: $(types B-k.gguf | tr '\n' ' ')"
grep -q "'blk.0.attn_q.weight' has 64 values per row, not a multiple of 256 for q4_K: it is q5_0 instead" "$T/err" &&
  pass || fail "K-quant fallback warning: $(cat "$T/err")"

# ---- requantizing ----
expect_exit 1 "already quantized" -- "${q[@]}" -m A-q8_0.gguf -o R.gguf --type f16
expect_err "^lm-quantize: A-q8_0.gguf: tensor 'token_embd.weight' is already quantized \(q8_0\), expected f32, f16 or bf16 weights; .*--allow-requantize$" \
  "requantize message"
[[ ! -e R.gguf ]] && pass || fail "a refused run wrote R.gguf"
expect_exit 0 "same type: copies, no refusal" -- "${q[@]}" -m A-q8_0.gguf -o R8.gguf --type q8_0
expect_exit 0 "--allow-requantize" -- "${q[@]}" -m A-q8_0.gguf -o R.gguf --type f16 --allow-requantize
close "$(ppl R.gguf)" "$(ppl A-q8_0.gguf)" 0.002 && pass || fail "requantized perplexity"

# ---- determinism ----
"${q[@]}" -q -m A.gguf -o D1.gguf --type q8_0 --eval a.txt -c 32 > /dev/null
lm-quantize -q -t 1 -m A.gguf -o D2.gguf --type q8_0 --eval a.txt -c 32 > /dev/null
same_files D1.gguf D2.gguf "-t 2 and -t 1"
"${q[@]}" -q -m A.gguf -o D3.gguf --type q8_0 --eval a.txt -c 32 > /dev/null
same_files D1.gguf D3.gguf "two runs"

# ---- errors: one line, right code, nothing written, an existing output intact ----
cp A-q8_0.gguf keep.gguf
expect_exit 2 "unknown --type" -- "${q[@]}" -m A.gguf -o keep.gguf --type q4_k_s
expect_err "^lm-quantize: --type 'q4_k_s': unknown type, expected one of f32, f16, bf16, q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_1, q4_0, q3_k_m, q2_k \\(q4_k = q4_k_m, q5_k = q5_k_m, q3_k = q3_k_m\\)$" "type message"
expect_exit 2 "--tensor-type without =" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --tensor-type attn_v
expect_err "--tensor-type 'attn_v': expected REGEX=TYPE" "--tensor-type syntax message"
expect_exit 2 "--tensor-type bad regex" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --tensor-type '(=q8_0'
expect_err "bad regular expression" "regex message"
expect_exit 2 "--tensor-type unknown type" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --tensor-type 'a=q8_1'
expect_err "unknown tensor type 'q8_1', expected one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs$" "tensor type message"
expect_exit 2 "output is the input" -- "${q[@]}" -m keep.gguf -o ./keep.gguf --type q8_0
expect_err "is the input model" "same file message"
expect_exit 2 "--ctx-size without --eval" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 -c 16
expect_exit 2 "--ctx-size beyond the model's" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --eval a.txt -c 64
# ---- importance matrices ----
# tests/data/quant/llama_imatrix_tiny.gguf was written by llama-imatrix for a model of A's shapes
# (its README): it has the 14 layer matrices, not token_embd or output.
LLAMA_IMX=$LM_TEST_DATA/quant/llama_imatrix_tiny.gguf
expect_exit 0 "--imatrix from llama-imatrix" -- "${q[@]}" -m A.gguf -o A-imx-q4_k_m.gguf --type q4_k_m --imatrix "$LLAMA_IMX"
[[ $(grep -c "warning" "$T/err") == 1 ]] &&
  grep -Eq "^lm-quantize: warning: .*llama_imatrix_tiny.gguf has no entry for 2 of the tensors it could weigh \(token_embd.weight, output.weight\): they are quantized without one$" "$T/err" &&
  pass || fail "missing entries: not one warning naming them: $(cat "$T/err")"
[[ $(types A-imx-q4_k_m.gguf) == "$(types A-q4_k_m.gguf)" ]] && pass || fail "an imatrix changed the types of q4_k_m"
cmp -s A-imx-q4_k_m.gguf A-q4_k_m.gguf && fail "--imatrix changed no byte" || pass
grep -q "quantize.imatrix.file" A-imx-q4_k_m.gguf && grep -q "quantize.imatrix.entries_count" A-imx-q4_k_m.gguf &&
  pass || fail "no quantize.imatrix.* keys in the output"
grep -q "quantize.imatrix" A-q4_k_m.gguf && fail "quantize.imatrix keys without --imatrix" || pass
p_imx=$(ppl A-imx-q4_k_m.gguf)
close "$p_imx" "$p_src" 0.1 && pass || fail "q4_k_m with llama's imatrix: perplexity $p_imx, source $p_src"
# Ours, on the scored text: q3_k_m with it stays close to the source.
# The whole corpus, or 600 lines under the sanitizers (LM_TEST_LEAN), where it took 32 s of the
# test's 88.
head -n "$([[ -n ${LM_TEST_LEAN:-} ]] && echo 600 || echo 3000)" corpus.txt > imx.txt
expect_exit 0 "lm-eval imatrix on A" -- lm-eval imatrix -t 2 -m A.gguf -o A.imatrix.gguf -c 32 imx.txt
expect_exit 0 "--imatrix from lm-eval" -- "${q[@]}" -m A.gguf -o A-imx-q3_k_m.gguf --type q3_k_m --imatrix A.imatrix.gguf
expect_exit 0 "--imatrix again" -- "${q[@]}" -m A.gguf -o A-imx-q3_k_m-2.gguf --type q3_k_m --imatrix A.imatrix.gguf
same_files A-imx-q3_k_m.gguf A-imx-q3_k_m-2.gguf "--imatrix output is deterministic"
p_imx=$(ppl A-imx-q3_k_m.gguf)
close "$p_imx" "$p_src" 0.25 && pass || fail "q3_k_m with an imatrix: perplexity $p_imx, source $p_src"
# q4_0 with one: llama-quantize's ffn_down guard needs n_layer >= 8, so A's types are q4_0's.
expect_exit 0 "--imatrix with q4_0" -- "${q[@]}" -m A.gguf -o A-imx-q4_0.gguf --type q4_0 --imatrix A.imatrix.gguf
[[ $(types A-imx-q4_0.gguf) == "$(types A-q4_0.gguf)" ]] && pass || fail "q4_0 types with an imatrix"
# Errors: another model's matrix, a model given as one, a missing file; the output is left alone.
expect_exit 0 "lm-eval imatrix on B" -- lm-eval imatrix -t 2 -m B.gguf -o B.imatrix.gguf -c 32 a.txt
expect_exit 1 "another model's imatrix" -- "${q[@]}" -m A.gguf -o keep.gguf --type q4_k_m --imatrix B.imatrix.gguf
expect_err "^lm-quantize: B.imatrix.gguf: entry blk\\.0\\.[a-z_]+\\.weight has 64 columns x 1 matrices, but A.gguf has 256 x 1: is it the importance matrix of another model\?$" \
  "another model's imatrix message"
expect_exit 1 "a model as the imatrix" -- "${q[@]}" -m A.gguf -o keep.gguf --type q4_k_m --imatrix B.gguf
expect_err "^lm-quantize: B.gguf: is not an importance matrix" "a model as the imatrix message"
expect_exit 1 "missing imatrix" -- "${q[@]}" -m A.gguf -o keep.gguf --type q4_k_m --imatrix nope.imatrix.gguf
expect_err "nope.imatrix.gguf" "missing imatrix message"

expect_exit 1 "missing input" -- "${q[@]}" -m nope.gguf -o keep.gguf --type q8_0
expect_err "nope.gguf" "missing input message"
expect_exit 1 "not GGUF" -- "${q[@]}" -m tok.model -o keep.gguf --type q8_0
expect_err "^lm-quantize: tok.model: .*GGUF" "not GGUF message"
LC_ALL=C perl -0777 -pe 's/\x05\x00{7}llama/\x05\x00\x00\x00\x00\x00\x00\x00mamba/' A.gguf > mamba.gguf
expect_exit 1 "an architecture lm does not run" -- "${q[@]}" -m mamba.gguf -o keep.gguf --type q8_0
expect_err "^lm-quantize: mamba.gguf: architecture 'mamba' is not supported; supported: bert, gemma2, gpt2, llama, lstm, phi3, qwen2" "architecture message"
head -c 40 a.txt > short.txt
expect_exit 1 "--eval text too short" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --eval short.txt -c 32
expect_err "short.txt: [0-9]+ tokens, too few to score one chunk of 32" "short text message"
expect_exit 1 "missing --eval text" -- "${q[@]}" -m A.gguf -o keep.gguf --type q8_0 --eval nope.txt
expect_err "nope.txt" "missing text message"
expect_exit 1 "write error" -- "${q[@]}" -m A.gguf -o /dev/full --type q8_0
expect_err "/dev/full" "write error message"
expect_exit 1 "output directory missing" -- "${q[@]}" -m A.gguf -o no/such/dir.gguf --type q8_0
same_files keep.gguf A-q8_0.gguf "an existing output after failed runs"
no_leftovers . "failed runs"
expect_exit 0 "-q" -- "${q[@]}" -q -m A.gguf -o quiet.gguf --type f16
[[ ! -s $T/err && ! -s $T/out ]] && pass || fail "-q printed something"
finish
