#!/usr/bin/env bash
# Tokenizers of GGUF vocabularies (docs/tokenizers.md): byte-level BPE and WordPiece
# vocabularies lm made (tests/data/vocab/) give, text by text, the ids llama.cpp's
# llama-tokenize gave on the same files; byte-exact round trips, special tokens, training a
# byte-level BPE vocabulary, and one-line errors for bad vocabularies.
source "$(dirname "$0")/lib.sh"
: "${LM_TEST_BIN:?set LM_TEST_BIN to the directory holding lm_test_edit_gguf}"
V=$LM_TEST_DATA/vocab

# ---- conformance with llama.cpp on lm's own vocabularies ----
expect_exit 0 "llama.cpp's ids on lm's vocabularies" -- env LM_BIN="$LM_BIN" bash "$LM_SRC/bench/vocab_conformance.sh" -v "$V"
for v in bytebpe-gpt-2 bytebpe-llama-bpe bytebpe-qwen2 wordpiece; do
  grep -qx "$v: 50 passed, 0 failed" "$T/out" && pass || fail "$v: $(grep "^$v" "$T/out"; cat "$T/out" | head -20)"
done

# ---- byte-exact round trips: any bytes, with invalid UTF-8 and blank lines ----
printf 'caf\xc3\xa9 \xff\xfe bad bytes\n\n  indented\tline\n\xe2\x82\n' > bytes.txt
for v in bytebpe-gpt-2 bytebpe-llama-bpe bytebpe-qwen2; do
  expect_exit 0 "$v: encode as a token file" -- lm-tokenize encode -m "$V/$v.gguf" --format bin -o bytes.tok bytes.txt
  expect_exit 0 "$v: decode the token file" -- lm-tokenize decode -m "$V/$v.gguf" -o back.txt bytes.tok
  same_files bytes.txt back.txt "$v: decode(encode(x)) = x"
  # The token file holds the whole text's ids, as --whole gives them (blank and indented
  # lines are where a line-by-line encoding would differ), and so does stats on the text.
  expect_exit 0 "$v: --whole" -- lm-tokenize encode -m "$V/$v.gguf" --whole bytes.txt
  whole=$(wc -w < "$T/out")
  # (decode writes each line of ids as a line: the text, then one more newline)
  lm-tokenize decode -m "$V/$v.gguf" --format ids < "$T/out" | cmp -s - <(cat bytes.txt; echo) && pass || fail "$v: --whole ids do not decode to the text"
  for f in bytes.tok bytes.txt; do
    n=$(lm-tokenize stats -m "$V/$v.gguf" $f | awk -F'\t' '$1 == "tokens" { print $2 }')
    [[ $n == "$whole" ]] && pass || fail "$v: stats of $f counts $n tokens, --whole gives $whole"
  done
done

# ---- special tokens: user-defined always, control only with --parse-special ----
expect_exit 0 "control text is text" -- sh -c "printf 'a<|endoftext|>b\n' | lm-tokenize encode -m $V/bytebpe-gpt-2.gguf"
[[ $(wc -w < "$T/out") -gt 3 ]] && pass || fail "<|endoftext|> became one token without --parse-special: $(cat "$T/out")"
eot=$(lm-tokenize vocab -m "$V/bytebpe-gpt-2.gguf" | awk -F'\t' '$2 == "<|endoftext|>" { print $1 }')
expect_exit 0 "--parse-special" -- sh -c "printf 'a<|endoftext|>b\n' | lm-tokenize encode -m $V/bytebpe-gpt-2.gguf --parse-special"
[[ " $(cat "$T/out") " == *" $eot "* && $(wc -w < "$T/out") -eq 3 ]] && pass || fail "--parse-special: $(cat "$T/out") (eot $eot)"

# ---- training a byte-level BPE vocabulary ----
make_corpus 2000 > corpus.txt
expect_exit 0 "train bytebpe" -- lm-tokenize train --model-type bytebpe --pre-tokenizer llama-bpe --vocab-size 600 -o b1.gguf -q corpus.txt
expect_exit 0 "train bytebpe again" -- lm-tokenize train --model-type bytebpe --pre-tokenizer llama-bpe --vocab-size 600 -o b2.gguf -q corpus.txt
same_files b1.gguf b2.gguf "same text and options give the same vocabulary"
no_leftovers . "bytebpe training"
expect_exit 0 "a trained vocabulary encodes" -- lm-tokenize encode -m b1.gguf --format pieces corpus.txt
expect_exit 0 "its vocab lists 600 pieces" -- lm-tokenize vocab -m b1.gguf
[[ $(wc -l < "$T/out") -eq 600 ]] && pass || fail "vocab has $(wc -l < "$T/out") pieces"
expect_exit 2 "an unknown pre-tokenizer" -- lm-tokenize train --model-type bytebpe --pre-tokenizer klingon -o b3.gguf corpus.txt
expect_err "klingon" "the unknown pre-tokenizer is named"
expect_exit 2 "too small a vocabulary" -- lm-tokenize train --model-type bytebpe --vocab-size 100 -o b3.gguf corpus.txt
expect_err "--vocab-size 100" "the vocabulary size is named"

# ---- a model with a byte-level BPE vocabulary: train, generate, score, quantize ----
steps=20
[[ -n ${LM_TEST_LEAN:-} ]] && steps=3
expect_exit 0 "lm-train with a bytebpe vocabulary" -- lm-train -q --tokenizer b1.gguf --data corpus.txt --context 32 \
  --layers 1 --embd 32 --heads 2 --ff 64 --steps $steps -t 2 -o m.gguf
expect_exit 0 "lm-generate" -- sh -c "echo 'the jury' | lm-generate -m m.gguf -n 8 -s 1 -t 1"
expect_exit 0 "lm-eval perplexity" -- lm-eval perplexity -m m.gguf -t 1 corpus.txt
# A control token written in a prompt is text, unless --parse-special: 'a' + <|endoftext|> is 2 tokens.
expect_exit 0 "lm-generate reads <|endoftext|> as text" -- lm-generate -m m.gguf -n 1 -s 1 -t 1 --json -p 'a<|endoftext|>'
grep -q '"prompt_tokens":2,' "$T/out" && fail "<|endoftext|> became one token without --parse-special" || pass
expect_exit 0 "lm-generate --parse-special" -- lm-generate -m m.gguf -n 1 -s 1 -t 1 --json --parse-special -p 'a<|endoftext|>'
grep -q '"prompt_tokens":2,' "$T/out" && pass || fail "--parse-special: $(tail -n 1 "$T/out")"
expect_exit 0 "lm-quantize" -- lm-quantize -q -m m.gguf -o q.gguf --type q8_0
expect_exit 0 "the quantized model keeps the vocabulary" -- lm-tokenize encode -m q.gguf corpus.txt
lm-tokenize encode -m b1.gguf corpus.txt > b1.ids
same_files "$T/out" b1.ids "same ids from the vocabulary and from the quantized model"

# ---- bad vocabularies: one line naming the file ----
"$LM_TEST_BIN/lm_test_edit_gguf" "$V/bytebpe-gpt-2.gguf" badpre.gguf str tokenizer.ggml.pre klingon
expect_exit 1 "a vocabulary with an unknown pre-tokenizer" -- sh -c "echo hi | lm-tokenize encode -m badpre.gguf"
expect_err "badpre.gguf: .*klingon.*" "the file and the pre-tokenizer are named"
"$LM_TEST_BIN/lm_test_edit_gguf" "$V/wordpiece.gguf" badbos.gguf u32 tokenizer.ggml.bos_token_id 999999
expect_exit 1 "a special id outside the vocabulary" -- sh -c "echo hi | lm-tokenize encode -m badbos.gguf"
expect_err "badbos.gguf: .*bos_token_id.*999999" "the file and the key are named"

finish
