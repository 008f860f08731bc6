#!/usr/bin/env bash
# lm-tokenize end to end: training, SentencePiece-identical encode/decode, token-file round
# trips, stdin/stdout, exit codes and one-line errors for bad inputs (docs/reliability.md C, F).
source "$(dirname "$0")/lib.sh"
: "${LM_TEST_BIN:?set LM_TEST_BIN to the directory holding lm_test_write_gguf}"

make_corpus 3000 > corpus.txt
printf 'tail line without newline \xe2\x82\xac' >> corpus.txt

# ---- train ----
expect_exit 0 "train bpe" -- lm-tokenize train --vocab-size 400 -o tok.model -q corpus.txt
[[ -s tok.model ]] && pass || fail "train wrote no model"
no_leftovers . "train"
expect_exit 0 "train unigram from stdin" -- sh -c 'lm-tokenize train --model-type unigram --vocab-size 500 -o uni.model -q < corpus.txt'
[[ -s uni.model ]] && pass || fail "unigram train wrote no model"
expect_exit 0 "train is reproducible" -- lm-tokenize train --vocab-size 400 -o tok2.model -q corpus.txt
same_files tok.model tok2.model "same data and options give the same model"

# ---- default character coverage 1: a character seen once is a piece, not bytes ----
{ make_corpus 3000; echo "Vivid colours"; } > once.txt
expect_exit 0 "train with the defaults" -- lm-tokenize train --vocab-size 400 -o once.model once.txt
expect_exit 0 "encode a capital seen once" -- sh -c 'echo "Vivid" | lm-tokenize encode -m once.model --format pieces'
grep -q '<0x' "$T/out" && fail "V seen once in training is encoded as bytes: $(cat "$T/out")" || pass
grep -q 'V' "$T/out" && pass || fail "no piece holds V: $(cat "$T/out")"
# Train reports the byte-piece share of its text's tokens; stats counts the same tokens.
expect_exit 0 "train reports the byte-piece share" -- lm-tokenize train --vocab-size 400 -o once.model once.txt
# Every character is a piece, so only the newlines (always <0x0A>) are byte pieces.
share=$(sed -n "s/^lm-tokenize: byte pieces are 0.00% of the \([0-9]*\) tokens of the training text, \([0-9.]*\)% with the newlines' <0x0A>\$/\1 \2/p" "$T/err")
lm-tokenize stats -m once.model once.txt > once.stats
want=$(awk -F'\t' '$1 == "tokens" { t = $2 } $1 == "byte_pieces" { b = $2 } END { printf "%d %.2f\n", t, 100 * b / t }' once.stats)
[[ -n $share && $share == "$want" ]] && pass || fail "train's tokens and byte-piece share '$share' are not stats' '$want': $(cat "$T/err")"
expect_exit 0 "the share from stdin" -- sh -c 'lm-tokenize train --vocab-size 400 -o once2.model < once.txt'
grep -q "byte pieces are 0.00% of the ${share% *} tokens of the training text, ${share#* }% with" "$T/err" && pass ||
  fail "from stdin: $(cat "$T/err")"
expect_exit 0 "a lower coverage leaves rare characters to bytes" -- lm-tokenize train --vocab-size 400 \
  --character-coverage 0.999 -o low.model once.txt
grep -q "byte pieces are 0.[0-9][1-9]% of the\|byte pieces are 0.[1-9][0-9]% of the" "$T/err" && pass ||
  fail "--character-coverage 0.999: $(cat "$T/err")"
expect_exit 0 "train -q prints nothing" -- lm-tokenize train -q --vocab-size 400 -o once2.model once.txt
[[ ! -s $T/err ]] && pass || fail "train -q: $(cat "$T/err")"

# ---- stdin on a terminal: one line says it is read; nothing from a pipe ----
if script -qec true /dev/null < /dev/null > /dev/null 2>&1; then
  script -qec "lm-tokenize encode -m tok.model > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ $(cat tty.err) == "lm-tokenize: reading text from standard input (end with Ctrl-D)" ]] && pass ||
    fail "terminal stdin: stderr is '$(head -c 300 tty.err)'"
  script -qec "lm-tokenize encode -m tok.model corpus.txt > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ -s tty.out && ! -s tty.err ]] && pass || fail "a file input on a terminal: stderr is '$(head -c 300 tty.err)'"
else
  echo "no working script(1): the terminal checks are skipped" >&2
fi
expect_exit 0 "encode from a pipe" -- sh -c 'echo hello | lm-tokenize encode -m tok.model'
[[ ! -s $T/err ]] && pass || fail "stdin from a pipe: stderr is '$(head -c 300 "$T/err")'"

# ---- identical to SentencePiece's own tools ----
for m in tok.model uni.model; do
  for fmt in ids pieces; do
    spm_fmt=$([[ $fmt == ids ]] && echo id || echo piece)
    lm-tokenize encode -m $m --format $fmt corpus.txt > ours.$fmt
    spm_encode --model=$m --output_format=$spm_fmt < corpus.txt > spm.$fmt
    same_files ours.$fmt spm.$fmt "encode --format $fmt on $m equals spm_encode"
  done
  lm-tokenize decode -m $m ours.ids > ours.dec
  spm_decode --model=$m --input_format=id < spm.ids > spm.dec
  same_files ours.dec spm.dec "decode ids on $m equals spm_decode"
  lm-tokenize decode -m $m --format pieces ours.pieces > ours.pdec
  same_files ours.pdec spm.dec "decode pieces on $m equals spm_decode"
done
lm-tokenize encode -m tok.model -t 1 -o one.ids corpus.txt
lm-tokenize encode -m tok.model -t 2 -o two.ids corpus.txt
same_files one.ids two.ids "output does not depend on the thread count"

# ---- token files ----
expect_exit 0 "encode bin" -- lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt
expect_exit 0 "decode bin" -- lm-tokenize decode -m tok.model -o back.txt corpus.tok
same_files corpus.txt back.txt "token file round trip is byte exact"
lm-tokenize encode -m tok.model --format bin < corpus.txt | lm-tokenize decode -m tok.model > piped.txt
same_files corpus.txt piped.txt "token file through a pipe (non-seekable output, stdin input)"
printf 'a\r\nb\0c\n\n  two spaces  \n\xff\xfe invalid \xc0\xaf\xed\xa0\x80 utf8\nlast' > odd.txt
expect_exit 0 "encode CRLF, NUL, invalid UTF-8 (F2, F3)" -- lm-tokenize encode -m tok.model --format bin -o odd.tok odd.txt
expect_exit 0 "decode them" -- lm-tokenize decode -m tok.model -o odd.back odd.tok
head -c 15 odd.txt > odd.head; head -c 15 odd.back > odd.back.head
same_files odd.head odd.back.head "CRLF, NUL and spaces survive"
expect_exit 0 "stats on a token file" -- lm-tokenize stats -m tok.model corpus.tok
grep -q "^tokens	$(( ($(stat -c %s corpus.tok) - 64) / 2 ))\$" "$T/out" && pass || fail "stats token count: $(cat "$T/out")"
grep -q "^bytes	$(stat -c %s corpus.txt)\$" "$T/out" && pass || fail "stats byte count: $(cat "$T/out")"
lm-tokenize stats -m tok.model corpus.txt > text.stats
same_files "$T/out" text.stats "stats agree on text and on its token file"
expect_exit 0 "stats --json" -- lm-tokenize stats -m tok.model --json corpus.tok
grep -q '^{"tokens":[0-9]*,"bytes":[0-9]*,"bytes_per_token":' "$T/out" && pass || fail "stats --json: $(cat "$T/out")"
expect_exit 0 "encode --bos --eos" -- sh -c 'echo hello | lm-tokenize encode -m tok.model --bos --eos'
[[ $(cut -d' ' -f1 "$T/out") == 1 && $(awk '{print $NF}' "$T/out") == 2 ]] && pass || fail "bos/eos ids: $(cat "$T/out")"

# ---- GGUF models as -m (with the SentencePiece bytes embedded, and rebuilt from arrays) ----
"$LM_TEST_BIN/lm_test_write_gguf" tok.model embed.gguf && pass || fail "write embed.gguf"
"$LM_TEST_BIN/lm_test_write_gguf" tok.model arrays.gguf --no-embed && pass || fail "write arrays.gguf"
for g in embed.gguf arrays.gguf; do
  lm-tokenize encode -m $g corpus.txt > gguf.ids
  lm-tokenize encode -m tok.model corpus.txt > spm.ids2
  same_files gguf.ids spm.ids2 "encode with -m $g equals the .model"
done
expect_exit 0 "token file made with the .model decodes with the embedding GGUF" -- lm-tokenize decode -m embed.gguf -o g.txt corpus.tok
same_files g.txt corpus.txt "decode through GGUF"
# GGUF v3, no tensors, one key: general.architecture = "llama"
printf 'GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x14\0\0\0\0\0\0\0general.architecture\x08\0\0\0\x05\0\0\0\0\0\0\0llama' > no_tokenizer.gguf
expect_exit 1 "GGUF without tokenizer" -- lm-tokenize vocab -m no_tokenizer.gguf
expect_err "no_tokenizer.gguf: has no tokenizer" "no tokenizer message"
printf 'GGUF\x03\x00\x00\x00' > trunc.gguf
expect_exit 1 "truncated GGUF (A2)" -- lm-tokenize vocab -m trunc.gguf
expect_err "^lm-tokenize: trunc.gguf: truncated header: need 24 bytes, file has 8" "truncated GGUF message"

# ---- vocab ----
expect_exit 0 "vocab" -- lm-tokenize vocab -m tok.model
[[ $(wc -l < "$T/out") == 400 ]] && pass || fail "vocab lists $(wc -l < "$T/out") pieces, expected 400"
grep -q "^0	<unk>	0	unknown\$" "$T/out" && pass || fail "vocab first line: $(head -1 "$T/out")"
grep -q "^[0-9]*	<0x0A>	0	byte\$" "$T/out" && pass || fail "vocab has the newline byte piece"
expect_exit 0 "vocab --json" -- lm-tokenize vocab -m tok.model --json
head -1 "$T/out" | grep -q '^{"id":0,"piece":"<unk>","score":0.0,"type":"unknown"}$' && pass || fail "vocab --json: $(head -1 "$T/out")"

# ---- exit codes and one-line errors ----
expect_exit 2 "no subcommand" -- lm-tokenize
expect_exit 2 "unknown flag (F7)" -- lm-tokenize encode -m tok.model --frobnicate
expect_err "^lm-tokenize: .*frobnicate" "unknown flag message"
expect_exit 2 "non-numeric vocab size (F7)" -- lm-tokenize train --vocab-size abc -o x.model corpus.txt
expect_exit 2 "vocab size out of range" -- lm-tokenize train --vocab-size 3 -o x.model corpus.txt
expect_exit 2 "bad format" -- lm-tokenize encode -m tok.model --format xml
expect_exit 0 "--help" -- lm-tokenize encode --help
grep -q -- "--format" "$T/out" && pass || fail "encode --help lists --format"
expect_exit 0 "--version" -- lm-tokenize --version
expect_exit 1 "missing model file" -- lm-tokenize encode -m nope.model corpus.txt
expect_err "^lm-tokenize: nope.model: cannot open: No such file or directory" "missing model message"
expect_exit 1 "input is a directory (F9)" -- lm-tokenize encode -m tok.model .
expect_err "^lm-tokenize: \.: .*directory" "directory input message"
head -c 3000 /dev/urandom > random.model
expect_exit 1 "random bytes as model (C1)" -- lm-tokenize encode -m random.model corpus.txt
expect_err "^lm-tokenize: random.model: " "random model message"
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n' > lfs.model
expect_exit 1 "git-lfs pointer as model" -- lm-tokenize encode -m lfs.model corpus.txt
expect_err "^lm-tokenize: lfs.model: .*LFS" "lfs message"
expect_exit 1 "empty model file" -- lm-tokenize encode -m /dev/null corpus.txt
expect_exit 1 "token id out of range (F8)" -- sh -c 'echo "5 99999" | lm-tokenize decode -m tok.model'
expect_err "^lm-tokenize: <stdin>: line 1: token id 99999 out of range \[0, 400\)" "out of range message"
expect_exit 1 "negative token id (F8)" -- sh -c 'echo "-3" | lm-tokenize decode -m tok.model'
expect_exit 1 "garbage id" -- sh -c 'echo "12 x7" | lm-tokenize decode -m tok.model'
expect_err "^lm-tokenize: <stdin>: line 1: 'x7' is not a token id" "garbage id message"
expect_exit 1 "token file from another tokenizer" -- lm-tokenize decode -m uni.model corpus.tok
expect_err "^lm-tokenize: corpus.tok: .*tokenizer" "fingerprint mismatch message"
head -c 100 corpus.tok > short.tok
expect_exit 1 "truncated token file (D3)" -- lm-tokenize decode -m tok.model short.tok
expect_err "^lm-tokenize: short.tok: " "truncated token file message"
expect_exit 0 "empty stdin (F1)" -- sh -c 'lm-tokenize encode -m tok.model < /dev/null'
[[ ! -s $T/out && ! -s $T/err ]] && pass || fail "empty input gives no output"
expect_exit 1 "train on empty input (F1)" -- sh -c 'lm-tokenize train -o e.model < /dev/null'
expect_err "^lm-tokenize: .*no training data" "empty training data message"
[[ ! -e e.model ]] && pass || fail "failed train left e.model behind"
no_leftovers . "failed train"
expect_exit 1 "write to /dev/full (F6)" -- lm-tokenize encode -m tok.model -o /dev/full corpus.txt
expect_exit 1 "stdout is /dev/full (F6)" -- sh -c 'lm-tokenize encode -m tok.model corpus.txt > /dev/full'
expect_err "^lm-tokenize: <stdout>: write error: No space left on device" "/dev/full message"
expect_exit 1 "stdout closed (F6)" -- sh -c 'lm-tokenize encode -m tok.model corpus.txt >&-'
expect_err "^lm-tokenize: <stdout>: write error: Bad file descriptor" "closed stdout message"
# A closed pipe ends the tool by SIGPIPE: exit status 141 (README, EXIT STATUS in the man
# pages), and nothing on stderr. The input is large enough that output is still being written.
for _ in 1 2 3 4 5 6 7 8; do cat corpus.txt; done > big.txt
for i in 1 2 3; do
  lm-tokenize encode -m tok.model big.txt 2> pipe.err | head -c1 > /dev/null
  rc=${PIPESTATUS[0]}
  [[ ! -s pipe.err ]] && pass || fail "| head -c1 printed on stderr (F5): $(cat pipe.err)"
  [[ $rc == 141 ]] && pass || fail "| head -c1: exit $rc, expected 141 (SIGPIPE)"
done
expect_exit 1 "missing output directory" -- lm-tokenize encode -m tok.model -o no/such/dir/x.ids corpus.txt
expect_err "^lm-tokenize: no/such/dir/x.ids: cannot create output" "missing directory message"
expect_exit 2 "output over an input" -- lm-tokenize encode -m tok.model -o corpus.txt corpus.txt
cp corpus.txt keep.txt; same_files corpus.txt keep.txt "input untouched"
echo "old" > existing.ids
expect_exit 1 "failed encode keeps the existing output" -- lm-tokenize encode -m tok.model -o existing.ids corpus.txt .
[[ $(cat existing.ids) == old ]] && pass || fail "existing output was damaged"
no_leftovers . "failed encode"
# decode and vocab keep an existing -o too (issue 27: every -o is committed only on success)
printf '1 2\n999999\n' > bad.ids
expect_exit 1 "failed decode keeps the existing output" -- lm-tokenize decode -m tok.model -o existing.ids bad.ids
expect_err "^lm-tokenize: bad.ids: line 2: token id 999999 out of range" "bad id message"
expect_exit 1 "failed vocab keeps the existing output" -- lm-tokenize vocab -m nope.model -o existing.ids
[[ $(cat existing.ids) == old ]] && pass || fail "a failed decode or vocab damaged the existing output"
no_leftovers . "failed decode and vocab"

# ---- one line-length limit, 1 MiB, for every text reader (issue 27: a 100 MB line took 8 GB) ----
{ echo short; head -c 1048577 /dev/zero | tr '\0' a; echo; } > longline.txt
want='longline.txt: line 2 is longer than 1 MiB, the maximum line length; split the input into shorter lines$'
for cmd in "encode -m tok.model" "encode -m tok.model --format bin -o long.tok" "stats -m tok.model"; do
  expect_exit 1 "$cmd: a line over the limit" -- lm-tokenize $cmd longline.txt
  expect_err "^lm-tokenize: $want" "$cmd: line limit message"
done
{ echo 1 2; head -c 1048577 /dev/zero | tr '\0' 1; } > longline.ids
expect_exit 1 "decode: a line over the limit" -- lm-tokenize decode -m tok.model longline.ids
expect_err "^lm-tokenize: longline.ids: line 2 is longer than 1 MiB" "decode line limit message"
expect_exit 1 "encode from stdin: a line over the limit" -- sh -c 'lm-tokenize encode -m tok.model < longline.txt'
expect_err "^lm-tokenize: <stdin>: line 2 is longer than 1 MiB" "stdin line limit message"
[[ ! -e long.tok ]] && pass || fail "a failed encode left long.tok"

# ---- tokenizers that are not regular files are refused before reading (issue 27) ----
expect_exit 1 "-m /dev/zero" -- timeout 20 lm-tokenize encode -m /dev/zero corpus.txt
expect_err "^lm-tokenize: /dev/zero: is a character device, not a regular file; models and tokenizers are read from files$" \
  "/dev/zero tokenizer message"
mkfifo tok.fifo
expect_exit 1 "-m FIFO" -- timeout 20 lm-tokenize vocab -m tok.fifo
expect_err "^lm-tokenize: tok.fifo: is a pipe \(FIFO\), not a regular file" "FIFO tokenizer message"
finish
