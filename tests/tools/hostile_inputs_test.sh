#!/usr/bin/env bash
# Inputs a hostile user tried (issue 27), each refused with one line naming the file and what is
# wrong, and the exit code of its kind: a token file with a wrong magic, a LoRA adapter of rank
# 0, classifiers with 100000 labels, NaN and Inf weights, models lm-quantize must not copy;
# NaN, Inf and absurd durations as option values, unknown options; and temp files left by a
# killed run, removed at the next start when their writer is dead. Models are tiny and made in
# a second, so this stays fast under the sanitizers.
source "$(dirname "$0")/lib.sh"
: "${LM_TEST_BIN:?set LM_TEST_BIN to the directory holding lm_test_edit_gguf}"
E=$LM_TEST_BIN/lm_test_edit_gguf

# expect_line LINE DESCRIPTION: the last command's stderr is exactly LINE (and, for a usage
# error, the "try" line after it).
expect_line() {
  if [[ $(head -1 "$T/err") == "$1" ]] && { [[ $(wc -l < "$T/err") -eq 1 ]] ||
       [[ $(wc -l < "$T/err") -eq 2 && $(tail -1 "$T/err") == "try '"*"--help'" ]]; }; then pass
  else fail "$2: stderr '$(head -c 300 "$T/err")', expected '$1'"; fi
}

make_corpus 300 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt || fail "tokenizer"
small=(--context 16 --heads 2 --layers 1 --embd 32 --ff 32 --batch 2 -t 1)
lm-train -q --tokenizer tok.model --data corpus.txt "${small[@]}" --steps 1 -o m.gguf > /dev/null || fail "model"

# ---- a token file with a wrong magic: the magic escaped, the whole line ----
lm-tokenize encode -m tok.model --format bin -o c.tok corpus.txt || fail "encode"
{ printf 'LMTOKE\001\002'; tail -c +9 c.tok; } > bad.tok
for format in auto bin; do
  expect_exit 1 "wrong magic, --format $format" -- lm-tokenize decode -m tok.model --format $format bad.tok
  expect_line "lm-tokenize: bad.tok: not a token file: magic 'LMTOKE\\x01\\x02', expected 'LMTOKENS'; make one with 'lm-tokenize encode --format bin' (at byte 0)" \
    "wrong magic message, --format $format"
done
printf '12 x\0\033[31m 7\n' > ids.txt  # text after all: the bad id is quoted escaped, the line complete
expect_exit 1 "a bad id with control bytes" -- lm-tokenize decode -m tok.model --format ids ids.txt
expect_line "lm-tokenize: ids.txt: line 1: 'x\\x00\\x1b[31m 7' is not a token id, expected integers separated by spaces" \
  "bad id message"

# ---- a LoRA adapter of rank 0: a data error naming file and tensor ----
lm-finetune -q -m m.gguf --data corpus.txt --lora --lora-rank 2 --lora-targets q --steps 1 -t 1 -o ad.gguf > /dev/null ||
  fail "adapter"
"$E" ad.gguf ad0.gguf shape blk.0.attn_q.weight.lora_a 32,0 shape blk.0.attn_q.weight.lora_b 0,32 || fail "edit ad0"
rank0="ad0.gguf: tensor 'blk.0.attn_q.weight.lora_a' has rank 0 (its second dimension), expected 1 to 32"
expect_exit 1 "LoRA rank 0, lm-generate" -- lm-generate -m m.gguf --lora ad0.gguf -p hi -n 1
expect_line "lm-generate: $rank0" "LoRA rank 0 message, lm-generate"
expect_exit 1 "LoRA rank 0, lm-eval" -- lm-eval perplexity -m m.gguf --lora ad0.gguf corpus.txt
expect_line "lm-eval: $rank0" "LoRA rank 0 message, lm-eval"

# ---- 100000 labels: data errors naming the file and the limit, refused before any model is built ----
awk '{ print "l" NR "\tsome text" }' < <(seq 100000) > many.tsv
expect_exit 1 "100000 labels in classification data" -- lm-finetune -m m.gguf --task classify --data many.tsv --steps 1 -o x.gguf
expect_line "lm-finetune: many.tsv:65537: has the file's 65537th distinct label 'l65537'; a classifier has at most 65536 labels" \
  "100000 labels message"
head -200 corpus.txt | awk '{ print (NR % 2 ? "a" : "b") "\t" $0 }' > two.tsv
lm-finetune -q -m m.gguf --task classify --head-only --data two.tsv --steps 1 -t 1 -o cls.gguf > /dev/null || fail "classifier"
"$E" cls.gguf cls-names.gguf labels 100000 || fail "edit cls-names"
expect_exit 1 "100000 label names" -- lm-eval classify -m cls-names.gguf two.tsv
expect_line "lm-eval: cls-names.gguf: key 'llama.classifier.output_labels' has 100000 labels, but cls.output.weight has 2 rows" \
  "100000 label names message"
"$E" cls.gguf cls-rows.gguf shape cls.output.weight 32,100000 shape cls.output.bias 100000 || fail "edit cls-rows"
expect_exit 1 "a head of 100000 rows" -- lm-eval predict -m cls-rows.gguf two.tsv
expect_line "lm-eval: cls-rows.gguf: tensor 'cls.output.weight' has shape {32, 100000}, expected {32, labels} with 2 to 65536 labels" \
  "100000 rows message"

# ---- NaN and Inf weights: found at load, named with the file, tensor and element ----
"$E" m.gguf nan.gguf set blk.0.attn_q.weight 5 nan || fail "edit nan"
expect_exit 1 "NaN weight" -- lm-generate -m nan.gguf -p hi -n 1
expect_err "^lm-generate: nan.gguf: tensor 'blk.0.attn_q.weight' contains NaN at element 5; the model is corrupted or diverged in training \(at byte [0-9]+\)$" \
  "NaN weight message"
"$LM_TEST_BIN/lm_test_write_gguf" --convert m.gguf m16.gguf f16 || fail "f16 copy"
"$E" m16.gguf inf.gguf set blk.0.ffn_down.weight 70 -inf || fail "edit inf"
expect_exit 1 "Inf f16 weight" -- lm-eval perplexity -m inf.gguf corpus.txt
expect_err "^lm-eval: inf.gguf: tensor 'blk.0.ffn_down.weight' contains Inf at element 70; .* \(at byte [0-9]+\)$" \
  "Inf weight message"
"$LM_TEST_BIN/lm_test_write_gguf" --convert m.gguf m8.gguf q8_0 || fail "q8_0 copy"
"$E" m8.gguf q8nan.gguf scale blk.0.ffn_up.weight 3 nan || fail "edit q8_0 scale"
expect_exit 1 "NaN block scale" -- lm-generate -m q8nan.gguf -p hi -n 1
expect_err "^lm-generate: q8nan.gguf: tensor 'blk.0.ffn_up.weight' contains NaN in the scale of the block of elements 96 to 127; the model is corrupted \(at byte [0-9]+\)$" \
  "NaN scale message"

# ---- lm-quantize copies only what the loaders read: nothing written otherwise ----
cp m.gguf keep.gguf
"$E" m.gguf no-norm.gguf drop output_norm.weight || fail "edit no-norm"
"$E" m.gguf no-q.gguf drop blk.0.attn_q.weight || fail "edit no-q"
"$E" m.gguf zero.gguf shape blk.0.ffn_norm.weight 0 || fail "edit zero"
for bad in "no-norm.gguf: missing tensor 'output_norm.weight'" "no-q.gguf: missing tensor 'blk.0.attn_q.weight'" \
           "zero.gguf: tensor 'blk.0.ffn_norm.weight' has shape {0, 1}, expected {32, 1}"; do
  expect_exit 1 "lm-quantize ${bad%%:*}" -- lm-quantize -m "${bad%%:*}" -o keep.gguf --type q8_0
  expect_line "lm-quantize: $bad" "lm-quantize ${bad%%:*} message"
done
expect_exit 1 "lm-quantize of NaN weights" -- lm-quantize -m nan.gguf -o keep.gguf --type f16 --dry-run
expect_err "^lm-quantize: nan.gguf: tensor 'blk.0.attn_q.weight' contains NaN at element 5;" "lm-quantize NaN message"
same_files keep.gguf m.gguf "the output after refused copies"
no_leftovers . "refused copies"

# ---- option values: NaN, Inf and beyond the float range are usage errors at parse time ----
expect_exit 2 "--lr nan, lm-train" -- lm-train --tokenizer tok.model --data corpus.txt "${small[@]}" --lr nan --steps 1 -o x.gguf
expect_line "lm-train: --lr: nan is not a finite number" "--lr nan message"
expect_exit 2 "--lr-min nan, lm-finetune" -- lm-finetune -m m.gguf --data corpus.txt --lr-min NaN --steps 1 -o x.gguf
expect_line "lm-finetune: --lr-min: NaN is not a finite number" "--lr-min nan message"
expect_exit 2 "--lora-alpha inf" -- lm-finetune -m m.gguf --data corpus.txt --lora --lora-alpha inf --steps 1 -o x.gguf
expect_exit 2 "--temp nan" -- lm-generate -m m.gguf --temp nan -p hi
expect_line "lm-generate: --temp: nan is not a finite number" "--temp nan message"
expect_exit 2 "--presence-penalty -nan" -- lm-generate -m m.gguf --presence-penalty -nan -p hi
expect_exit 2 "--smooth-value nan" -- lm-eval bleu --smooth floor --smooth-value nan -r corpus.txt corpus.txt
expect_line "lm-eval: --smooth-value: nan is not a finite number" "--smooth-value nan message"
expect_exit 2 "--temp nan, lm-eval predict" -- lm-eval predict -m cls.gguf --temp nan two.tsv
expect_exit 2 "--dropout 1e39 (Inf as a float)" -- lm-train --tokenizer tok.model --data corpus.txt "${small[@]}" --dropout 1e39 --steps 1 -o x.gguf
[[ ! -e x.gguf ]] && pass || fail "a refused option left x.gguf"

# ---- --time: at most 8760h ----
# (--steps 1 everywhere: a tool that wrongly accepted the value would stop after one step)
expect_exit 2 "--time 1e30h" -- lm-train --tokenizer tok.model --data corpus.txt "${small[@]}" --time 1e30h --steps 1 -o x.gguf
expect_line "lm-train: --time '1e30h': longer than 8760h (365 days), the longest duration accepted" "--time 1e30h message"
expect_exit 2 "--time 8761h, lm-finetune" -- lm-finetune -m m.gguf --data corpus.txt --time 8761h --steps 1 -o x.gguf
expect_exit 0 "--time 8760h --dry-run" -- lm-train --tokenizer tok.model --data corpus.txt --time 8760h --dry-run "${small[@]}"

# ---- an unknown option is named before a missing required option or a bad value ----
expect_exit 2 "lm-quantize --no-such-option" -- lm-quantize --no-such-option
expect_line "lm-quantize: unknown option '--no-such-option'" "lm-quantize unknown option message"
for cmd in "lm-train --steps x" "lm-finetune --lr nan" "lm-generate" "lm-eval perplexity" "lm-eval" "lm-tokenize encode" \
           "lm-quantize -m m.gguf"; do
  tool=${cmd%% *}
  expect_exit 2 "$cmd --no-such-option" -- $cmd --no-such-option
  expect_line "$tool: unknown option '--no-such-option'" "$cmd unknown option message"
done

# ---- temp files of a killed run: removed at the next start when their writer is dead ----
( exit 0 ) & dead=$!
wait $dead
for out in q.gguf t.gguf t.gguf.ckpt; do
  touch ".$out.$dead.AbC123.tmp" ".$out.$$.XyZ789.tmp"
done
expect_exit 0 "lm-quantize after a killed run" -- lm-quantize -q -m m.gguf -o q.gguf --type q8_0
[[ ! -e .q.gguf.$dead.AbC123.tmp && -e .q.gguf.$$.XyZ789.tmp ]] && pass ||
  fail "lm-quantize: temp files now $(ls -a | grep '\.tmp$' | tr '\n' ' ')"
expect_exit 0 "lm-train after a killed run" -- lm-train -q --tokenizer tok.model --data corpus.txt "${small[@]}" --steps 1 -o t.gguf
[[ ! -e .t.gguf.$dead.AbC123.tmp && ! -e .t.gguf.ckpt.$dead.AbC123.tmp && -e .t.gguf.$$.XyZ789.tmp &&
   -e .t.gguf.ckpt.$$.XyZ789.tmp ]] && pass || fail "lm-train: temp files now $(ls -a | grep '\.tmp$' | tr '\n' ' ')"
rm -f ./.*."$$".XyZ789.tmp
# The real thing: lm-train killed with SIGKILL while its output's temp file exists.
lm-train -q --tokenizer tok.model --data corpus.txt "${small[@]}" --steps 1000000 -o k.gguf > /dev/null 2>&1 &
killed=$!
for _ in $(seq 600); do compgen -G ".k.gguf.$killed.*.tmp" > /dev/null && break; sleep 0.05; done
kill -9 $killed
wait $killed 2> /dev/null
compgen -G ".k.gguf.$killed.*.tmp" > /dev/null && pass || fail "no temp file of the killed lm-train to clean"
expect_exit 0 "lm-train after kill -9" -- lm-train -q --tokenizer tok.model --data corpus.txt "${small[@]}" --steps 1 -o k.gguf
no_leftovers . "after the runs"
finish
