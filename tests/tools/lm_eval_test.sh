#!/usr/bin/env bash
# lm-eval end to end: perplexity on a tiny trained model (chunks and sliding windows, several
# files, per-token output that adds up to the totals), KL divergence against itself and a
# quantized copy, importance matrices (llama-imatrix's chunks, read back by lm-quantize), BLEU and chrF on sacreBLEU's README example, classification metrics on
# scikit-learn's classification_report example, the picture of a training run's metrics,
# progress lines only on a terminal, and one-line errors.
source "$(dirname "$0")/lib.sh"
W=$LM_TEST_BIN/lm_test_write_gguf

make_corpus 3000 > corpus.txt
head -n 400 corpus.txt > a.txt
tail -n 400 corpus.txt > b.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
# 300 steps, 60 under the sanitizers (LM_TEST_LEAN), where this training was most of the test's
# time; either way the run validates 3 times (the plot checks below count the points).
n=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 60 || echo 300)
lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 2 --embd 64 --heads 4 --kv-heads 2 \
  --ff 128 --batch 8 --warmup 5 --lr 3e-3 --steps "$n" --eval-every $((n / 3)) -t 2 --metrics run.jsonl -o m.gguf > /dev/null ||
  fail "training the test model"
ev=(lm-eval perplexity -m m.gguf -t 1)

# ---- perplexity ----
expect_exit 0 "perplexity" -- "${ev[@]}" a.txt
[[ ! -s $T/err ]] && pass || fail "perplexity wrote to stderr, which is not a terminal: $(head -c 300 "$T/err" | cat -v)"
[[ $(head -1 "$T/out") == $'file\ttokens\tbytes\tnll\tperplexity\terror\tbits_per_byte' ]] && pass || fail "header: $(head -1 "$T/out")"
tokens=$(awk -F'\t' 'NR == 2 { print $2 }' "$T/out")
row=$(awk -F'\t' 'NR == 2 { $1 = ""; print }' "$T/out")
(( tokens > 0 && tokens % 31 == 0 )) && pass || fail "chunks of 64 score 31 tokens each, got $tokens"
awk -F'\t' 'NR == 2 { exit !($5 > 1 && $5 < 400 && ($5 - exp($4)) ^ 2 < 1e-4 * $5 ^ 2) }' "$T/out" && pass ||
  fail "perplexity is not e^nll: $(sed -n 2p "$T/out")"
expect_exit 0 "perplexity from stdin" -- sh -c "${ev[*]} < a.txt"
[[ $(awk -F'\t' 'NR == 2 { $1 = ""; print }' "$T/out") == "$row" ]] && pass || fail "stdin and the file score differently"
# The model's context is 64, so -b 512 (the default) evaluates 8 chunks together; -b 64 one.
expect_exit 0 "one chunk per pass" -- "${ev[@]}" -b 64 -v a.txt
grep -q 'chunks of 64 tokens per evaluation' "$T/err" && fail "-b 64 still groups chunks: $(cat "$T/err")" || pass
paste <(sed -n 2p "$T/out") <(echo "x $row" | tr ' ' '\t') |
  awk -F'\t' '{ exit !($2 == $10 && $3 == $11 && ($5 - $13) ^ 2 < 1e-10 * $5 ^ 2) }' && pass ||
  fail "chunks one per pass and 8 per pass score differently: $(sed -n 2p "$T/out") against $row"
expect_exit 0 "-v names the chunks per pass" -- "${ev[@]}" -v a.txt
grep -q '8 chunks of 64 tokens per evaluation (-b 512)' "$T/err" && pass || fail "no grouping line: $(cat "$T/err")"
expect_exit 0 "--json" -- "${ev[@]}" --json a.txt
for key in perplexity perplexity_error nll bits_per_byte tokens bytes; do
  [[ -n $(field $key "$T/out") ]] && pass || fail "--json lacks $key: $(cat "$T/out")"
done
[[ $(field tokens "$T/out") == "$tokens" ]] && pass || fail "--json tokens differ from the table"
expect_exit 0 "two files" -- "${ev[@]}" a.txt b.txt
[[ $(grep -c $'^(micro)\t' "$T/out") == 1 && $(grep -c $'^(macro)\t' "$T/out") == 1 ]] && pass ||
  fail "two files: no micro/macro rows: $(cat "$T/out")"
expect_exit 0 "--per-token" -- "${ev[@]}" a.txt --per-token pt.tsv --json
[[ $(($(wc -l < pt.tsv) - 1)) == "$tokens" ]] && pass || fail "--per-token has $(wc -l < pt.tsv) lines for $tokens tokens"
nll=$(field nll "$T/out")
awk -F'\t' -v want="$nll" 'NR > 1 { s -= $5; n++ } END { exit !((s / n - want) ^ 2 < 1e-8) }' pt.tsv && pass ||
  fail "per-token log-probabilities do not add up to the mean NLL $nll"
awk -F'\t' 'NR > 1 && ($6 < 1 || $7 < 0) { bad = 1 } END { exit bad }' pt.tsv && pass || fail "bad rank or entropy"
expect_exit 0 "--per-token .jsonl" -- "${ev[@]}" a.txt --per-token pt.jsonl
[[ $(grep -c '^{"file":"a.txt","position":[0-9]*,"id":[0-9]*,"piece":".*","logprob":-\?[0-9.e-]*,"rank":[0-9]*,"entropy":[0-9.e-]*}$' pt.jsonl) == "$tokens" ]] &&
  pass || fail "--per-token JSON Lines: $(head -2 pt.jsonl)"
expect_exit 0 "sliding windows" -- "${ev[@]}" --windows sliding --stride 16 --json a.txt
sliding=$(field tokens "$T/out")
(( sliding > tokens * 2 )) && pass || fail "sliding windows scored $sliding tokens, chunks $tokens"
expect_exit 0 "sliding windows, stride 1 less than the window" -- "${ev[@]}" --windows sliding --stride 63 --json a.txt
[[ $(field tokens "$T/out") == "$sliding" ]] && pass || fail "every token is scored once whatever the stride"

# ---- KL divergence ----
expect_exit 0 "kld against itself" -- lm-eval kld -m m.gguf --ref m.gguf a.txt --json -t 1
[[ ! -s $T/err ]] && pass || fail "kld wrote to stderr, which is not a terminal: $(head -c 300 "$T/err" | cat -v)"
awk -v k="$(field kld "$T/out")" -v a="$(field top1_agreement "$T/out")" 'BEGIN { exit !(k == 0 && a == 1) }' && pass ||
  fail "self kld: $(cat "$T/out")"
"$W" --convert m.gguf m-q4.gguf q4_0 || fail "convert to q4_0"
expect_exit 0 "kld of a q4_0 copy" -- lm-eval kld -m m-q4.gguf --ref m.gguf a.txt --json -t 1
# (After the 60 steps of the sanitizer pass the model is flat enough that the copy may agree on
# every top token: the KL divergence is what must be above 0.)
awk -v k="$(field kld "$T/out")" -v a="$(field top1_agreement "$T/out")" 'BEGIN { exit !(k > 0 && k < 1 && a > 0.5 && a <= 1) }' &&
  pass || fail "q4_0 kld: $(cat "$T/out")"

# ---- importance matrix ----
imx=(lm-eval imatrix -m m.gguf -t 1)
expect_exit 0 "imatrix" -- "${imx[@]}" -o m.imatrix.gguf a.txt
[[ ! -s $T/err ]] && pass || fail "imatrix wrote to stderr: $(head -c 300 "$T/err" | cat -v)"
# a.txt's tokens after BOS in chunks of 64 (the model's context; below llama-imatrix's 512):
# every one of the 14 layer matrices (2 layers x q k v output gate up down) counted.
[[ $(head -1 "$T/out") == $'file\tentries\tchunks\tchunk_size\ttokens' ]] && pass || fail "imatrix header: $(head -1 "$T/out")"
chunks=$(( (tokens / 31 * 64 + 1) / 64 ))  # perplexity's chunks above: the same cut
awk -F'\t' -v c="$chunks" 'NR == 2 { exit !($1 == "m.imatrix.gguf" && $2 == 14 && $3 == c && $4 == 64 && $5 == c * 64) }' "$T/out" &&
  pass || fail "imatrix row: $(sed -n 2p "$T/out"), expected 14 entries and $chunks chunks of 64"
expect_exit 0 "imatrix from stdin, --json" -- sh -c "${imx[*]} -o stdin.imatrix.gguf --json < a.txt"
[[ $(field entries "$T/out") == 14 && $(field chunks "$T/out") == "$chunks" && $(field tokens "$T/out") == $((chunks * 64)) ]] &&
  pass || fail "imatrix --json: $(cat "$T/out")"
expect_exit 0 "imatrix again" -- "${imx[@]}" -o again.imatrix.gguf a.txt
same_files again.imatrix.gguf m.imatrix.gguf "imatrix is deterministic"
grep -q "a.txt" m.imatrix.gguf && grep -q "imatrix.chunk_count" m.imatrix.gguf && pass ||
  fail "imatrix metadata: no dataset name or chunk count"
expect_exit 0 "lm-quantize reads it" -- lm-quantize -q -m m.gguf -o m-imx.gguf --type q4_0 --imatrix m.imatrix.gguf
# m is tied: its head (token_embd) is q8_0, which takes no importance; every q4_0 matrix has an entry.
[[ ! -s $T/err ]] && pass || fail "lm-quantize --imatrix warned: $(cat "$T/err")"
expect_exit 0 "smaller chunks, --process-output" -- "${imx[@]}" -o small.imatrix.gguf -c 32 -b 16 --process-output a.txt --json
[[ $(field chunks "$T/out") -ge $((2 * chunks)) && $(field entries "$T/out") == 14 ]] && pass ||
  fail "-c 32: $(cat "$T/out") (a tied head is never collected)"
expect_exit 1 "imatrix: text too short" -- sh -c "head -c 100 a.txt > short.txt && ${imx[*]} -o short.gguf short.txt"
expect_err "^lm-eval: short.txt: [0-9]+ tokens, too few for one chunk of 64" "imatrix short text message"
[[ ! -e short.gguf ]] && pass || fail "imatrix wrote a file for a text too short"
expect_exit 2 "imatrix: --ctx-size beyond the model's" -- "${imx[@]}" -o x.gguf -c 128 a.txt
expect_err "^lm-eval: --ctx-size 128 is larger than the model's context length 64" "imatrix ctx message"
expect_exit 2 "imatrix: batch below 16" -- "${imx[@]}" -o x.gguf -b 8 a.txt
expect_exit 2 "imatrix: output is the model" -- "${imx[@]}" -o m.gguf a.txt
expect_err "^lm-eval: output 'm.gguf' is the model" "imatrix output message"

# ---- BLEU and chrF: sacreBLEU's README example ----
printf '%s\n' 'The dog bit the man.' "It wasn't surprising." 'The man had just bitten him.' > sys.txt
printf '%s\n' 'The dog bit the man.' 'It was not unexpected.' 'The man bit him first.' > ref1.txt
printf '%s\n' 'The dog had bit the man.' 'No one was surprised.' 'The man had bitten the dog.' > ref2.txt
expect_exit 0 "bleu" -- lm-eval bleu sys.txt -r ref1.txt -r ref2.txt
grep -q '^BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:lm-[0-9.]* = 48.53 ' "$T/out" && pass ||
  fail "bleu: $(cat "$T/out")"
expect_exit 0 "chrf" -- sh -c "lm-eval chrf -r ref1.txt -r ref2.txt < sys.txt"
grep -q '^chrF2|nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:lm-[0-9.]* = 59.73$' "$T/out" && pass ||
  fail "chrf: $(cat "$T/out")"
if script -qec true /dev/null < /dev/null > /dev/null 2>&1; then
  script -qec "lm-eval bleu -r ref1.txt > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ $(head -1 tty.err) == "lm-eval: reading hypotheses from standard input (end with Ctrl-D)" ]] && pass ||
    fail "terminal stdin: stderr is '$(head -c 300 tty.err)'"
fi
expect_exit 0 "bleu --json" -- lm-eval bleu sys.txt -r ref1.txt -r ref2.txt --json
[[ $(printf '%.2f' "$(field score "$T/out")") == 48.53 ]] && pass || fail "bleu --json: $(cat "$T/out")"
# Numbers keep the digits that read back to the same double, not six significant ones.
[[ $(field score "$T/out") == 48.530827009929865 ]] && pass || fail "bleu --json score digits: $(field score "$T/out")"

# ---- errors ----
{ head -n 3 a.txt; head -c 1048577 /dev/zero | tr '\0' a; } > longline.txt
expect_exit 1 "perplexity: a line over the 1 MiB limit" -- "${ev[@]}" longline.txt
expect_err "^lm-eval: longline.txt: line 4 is longer than 1 MiB, the maximum line length; split the input into shorter lines$" \
  "perplexity line limit message"
echo "keep me" > keep.tsv
expect_exit 1 "--per-token keeps an existing file when the run fails" -- "${ev[@]}" --per-token keep.tsv a.txt nope.txt
[[ $(cat keep.tsv) == "keep me" ]] && pass || fail "a failed run damaged --per-token's file"
# A model claiming a 2^20 context: the window is the model's, the cache only what was fed.
cp m.gguf huge.gguf
off=$(grep -obUa 'llama.context_length' huge.gguf | head -1 | cut -d: -f1)
printf '\000\000\020\000' | dd of=huge.gguf bs=1 seek=$((off + 20 + 4)) conv=notrunc 2> /dev/null  # u32 1048576
expect_exit 1 "perplexity, model context 2^20" -- lm-eval perplexity -m huge.gguf -t 1 a.txt
expect_err "^lm-eval: a.txt: [0-9]+ tokens, too few to score one window of 1048576" "2^20 window message"
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -f '%M' -o rss.txt lm-eval perplexity -m huge.gguf -t 1 a.txt > /dev/null 2>&1
  (( $(tail -1 rss.txt) < 400000 )) && pass || fail "perplexity, context 2^20: peak RSS $(tail -1 rss.txt) KiB"
fi
head -c 100 a.txt > short.txt
expect_exit 1 "input shorter than one window" -- "${ev[@]}" short.txt
expect_err "short.txt: .*too few to score one window of 64" "short input message"
head -n 2 ref1.txt > ref_short.txt
expect_exit 1 "references with fewer lines" -- lm-eval bleu sys.txt -r ref_short.txt
expect_err "ref_short.txt: has 2 lines" "line count message"
expect_exit 2 "bleu without references" -- lm-eval bleu sys.txt
expect_exit 2 "--stride without --windows sliding" -- "${ev[@]}" --stride 8 a.txt
expect_exit 2 "context beyond the model's" -- "${ev[@]}" -c 65 a.txt
expect_exit 1 "missing model" -- lm-eval perplexity -m nope.gguf a.txt
expect_err "nope.gguf" "missing model message"
expect_exit 1 "missing input" -- "${ev[@]}" nope.txt
expect_err "nope.txt" "missing input message"
lm-tokenize train -q --vocab-size 380 -o tok2.model corpus.txt
# ---- classify: scikit-learn's example, y_true [0 1 2 2 2], y_pred [0 0 2 2 1] ----
printf '__label__0 a\n__label__1 b\n__label__2 c\n__label__2 d\n__label__2 e\n' > gold.txt
printf '0\t0.9\n0\t0.8\n2\n2\n1\n' > pred.txt
expect_exit 0 "classify" -- lm-eval classify gold.txt --predictions pred.txt --confusion
[[ $(sed -n 2,8p "$T/out") == $'0\t0.5000\t1.0000\t0.6667\t1\n1\t0.0000\t0.0000\t0.0000\t1\n2\t1.0000\t0.6667\t0.8000\t3\naccuracy\t\t\t0.6000\t5\nmicro avg\t0.6000\t0.6000\t0.6000\t5\nmacro avg\t0.5000\t0.5556\t0.4889\t5\nweighted avg\t0.7000\t0.6000\t0.6133\t5' ]] &&
  pass || fail "classify report: $(cat "$T/out")"
[[ $(tail -4 "$T/out") == $'gold\\predicted\t0\t1\t2\n0\t1\t0\t0\n1\t1\t0\t0\n2\t0\t1\t2' ]] && pass ||
  fail "confusion matrix: $(cat "$T/out")"
expect_exit 0 "classify --json, predictions on stdin" -- sh -c "lm-eval classify gold.txt --predictions - --json --confusion < pred.txt"
[[ $(field accuracy "$T/out") == 0.6 && $(field macro_f1 "$T/out") == 0.4888888888888889 &&
   $(sed -n 's/.*"confusion":\(.*\)}$/\1/p' "$T/out") == '[[1,0,0],[1,0,0],[0,1,2]]' ]] && pass ||
  fail "classify --json: $(cat "$T/out")"
expect_exit 0 "classify --json without --confusion" -- lm-eval classify gold.txt --predictions pred.txt --json
[[ $(field accuracy "$T/out") == 0.6 ]] && ! grep -q confusion "$T/out" && pass ||
  fail "classify --json without --confusion: $(cat "$T/out")"
# The matrix is made only when asked for, and then for 4096 labels at most (issue 27: 10000
# labels took 791 MB without --confusion).
awk 'BEGIN { for (i = 0; i < 5000; i++) print "__label__l" i " text" }' > many.txt
awk 'BEGIN { for (i = 0; i < 5000; i++) print "l" (i % 2 ? i : i + 1) }' > many_pred.txt
expect_exit 0 "classify, 5000 labels" -- lm-eval classify many.txt --predictions many_pred.txt --json
[[ $(field accuracy "$T/out") == 0.5 ]] && pass || fail "5000 labels: $(head -c 300 "$T/out")"
expect_exit 1 "classify --confusion, 5000 labels" -- lm-eval classify many.txt --predictions many_pred.txt --confusion
expect_err "^lm-eval: many.txt: more than 4096 labels \(gold and predicted\), the most --confusion shows; leave out --confusion for the scores alone$" \
  "too many labels for --confusion message"
head -n 3 gold.txt > gold3.txt
expect_exit 1 "classify with fewer gold lines" -- lm-eval classify gold3.txt --predictions pred.txt
expect_err "^lm-eval: gold3.txt: has 3 lines, fewer than pred.txt \(one example per line\)$" "line count message"
printf '0\n\n1\n' > nolabel.txt
expect_exit 1 "classify line without a label" -- lm-eval classify nolabel.txt --predictions nolabel.txt
expect_err "^lm-eval: nolabel.txt: line 2 has no label" "no label message"
expect_exit 2 "classify both on stdin" -- lm-eval classify - --predictions -

# ---- embed and similar: sentence embeddings of a decoder (its hidden states after the output norm) ----
head -n 40 a.txt > e.txt
expect_exit 0 "embed" -- lm-eval embed -m m.gguf -t 1 e.txt
cp "$T/out" e.tsv
[[ $(wc -l < e.tsv) == 40 && $(awk -F'\t' '{ print NF }' e.tsv | sort -u) == 64 ]] && pass ||
  fail "embed: 40 lines of 64 values expected, got $(wc -l < e.tsv) lines of $(awk -F'\t' '{ print NF }' e.tsv | sort -u | tr '\n' ' ')"
# A line's embedding does not depend on the lines evaluated beside it.
expect_exit 0 "embed one line" -- sh -c "sed -n 7p e.txt | lm-eval embed -m m.gguf -t 1"
paste <(tr '\t' '\n' < "$T/out") <(sed -n 7p e.tsv | tr '\t' '\n') |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { exit !(NR == 64 && m < 1e-5) }' && pass ||
  fail "line 7 alone and among 40 lines embed differently"
expect_exit 0 "embed --normalize --json" -- lm-eval embed -m m.gguf -t 1 --normalize --json e.txt
[[ $(wc -l < "$T/out") == 40 && $(head -1 "$T/out") == '{"line":0,"embedding":['* ]] && pass || fail "embed --json: $(head -c 100 "$T/out")"
sed -n 's/.*"embedding":\[\(.*\)\]}/\1/p' "$T/out" | awk -F, '{ s = 0; for (i = 1; i <= NF; i++) s += $i * $i; if ((s - 1) ^ 2 > 1e-8) bad = 1 } END { exit bad }' &&
  pass || fail "--normalize: embeddings are not of unit length"
expect_exit 0 "embed --pooling last" -- lm-eval embed -m m.gguf -t 1 --pooling last e.txt
cmp -s "$T/out" e.tsv && fail "--pooling last gives the mean's embeddings" || pass
expect_exit 0 "embed a line longer than -c" -- lm-eval embed -m m.gguf -t 1 -c 8 e.txt
[[ $(grep -c "only its first 8 (the context) are embedded" "$T/err") -ge 1 && $(wc -l < "$T/out") == 40 ]] && pass ||
  fail "a long line: $(head -c 200 "$T/err")"
expect_exit 0 "similar" -- lm-eval similar -m m.gguf -t 1 --query "$(sed -n 12p e.txt)" --top 3 e.txt
[[ $(head -1 "$T/out" | cut -f1,2,3) == $'1\t11\t1.000000' && $(wc -l < "$T/out") == 3 ]] && pass ||
  fail "similar: the query's own line is not first with score 1: $(head -1 "$T/out")"
expect_exit 2 "embed --pooling bad" -- lm-eval embed -m m.gguf --pooling first e.txt
expect_err "pooling: first not in \{mean,cls,last\}" "--pooling names the choices"

# ---- progress: a line on stderr rewritten in place, only when stderr is a terminal ----
if command -v script > /dev/null; then
  script -qec "lm-eval perplexity -m m.gguf -t 1 a.txt b.txt" /dev/null < /dev/null > tty.txt
  grep -q $'\r\e\\[Kperplexity a\.txt: [0-9]*/[0-9]* KiB ([0-9]*%)' tty.txt && pass ||
    fail "no progress line on a terminal: $(head -c 300 tty.txt | cat -v)"
  grep -q $'\r\e\\[Kperplexity b\.txt: ' tty.txt && pass || fail "the progress line does not name the second file"
  # Erased before the results: the table starts right after the last erase.
  grep -q $'\r\e\\[Kfile\ttokens\t' tty.txt && pass || fail "the progress line was not erased: $(tail -c 300 tty.txt | cat -v)"
  script -qec "lm-eval perplexity -q -m m.gguf -t 1 a.txt" /dev/null < /dev/null > tty.txt
  ! grep -q $'\r\e' tty.txt && pass || fail "-q still shows a progress line"
fi

# ---- plot: a training run's metrics as an SVG picture ----
points() { sed -n "s/.*<polyline [^>]*data-name=\"$1\"[^>]*points=\"\([^\"]*\)\".*/\1/p" "$2" | wc -w; }
expect_exit 0 "plot" -- lm-eval plot run.jsonl -o run.svg
[[ ! -s $T/out && ! -s $T/err ]] && pass || fail "plot printed something: $(cat "$T/out" "$T/err")"
[[ $(points "training loss" run.svg) == "$n" && $(points "validation loss" run.svg) == 3 &&
   $(points "learning rate" run.svg) == "$n" ]] && pass || fail "plot: $(points "training loss" run.svg) training, $(points "validation loss" run.svg) validation, $(points "learning rate" run.svg) learning rate points; expected $n, 3, $n"
grep -q '<title>run.jsonl</title>' run.svg && pass || fail "plot: the title is not the file's name"
no_leftovers . "plot"
expect_exit 0 "plot from stdin to stdout" -- sh -c "lm-eval plot - -o - --title 'a & b' < run.jsonl"
grep -q '<title>a &amp; b</title>' "$T/out" && [[ $(points "training loss" "$T/out") == "$n" ]] && pass ||
  fail "plot to stdout: $(head -c 300 "$T/out")"
printf '{"step":1,"loss":6}\n{"step":2,"loss":5\n' > bad.jsonl
expect_exit 1 "plot of a line that is not JSON" -- lm-eval plot bad.jsonl -o bad.svg
expect_err "^lm-eval: bad.jsonl:2: is not a JSON object: unexpected end of input; expected '}' at byte 19$" "plot bad line message"
[[ ! -e bad.svg ]] && pass || fail "a failed plot left bad.svg"
printf '{"step":1,"loss":6}\n{"step":2,"lr":0.001}\n' > noloss.jsonl
expect_exit 1 "plot of a line without loss" -- lm-eval plot noloss.jsonl -o bad.svg
expect_err "^lm-eval: noloss.jsonl:2: has no number member 'loss'" "plot no loss message"
printf '{"loss":6}\n' > nostep.jsonl
expect_exit 1 "plot of a line without step" -- lm-eval plot nostep.jsonl -o bad.svg
expect_err "^lm-eval: nostep.jsonl:1: has no number member 'step'" "plot no step message"
: > empty.jsonl
expect_exit 1 "plot of an empty file" -- lm-eval plot empty.jsonl -o bad.svg
expect_err "^lm-eval: empty.jsonl: has no metrics, expected JSON Lines with numbers 'step' and 'loss'" "plot empty message"
expect_exit 1 "plot of a missing file" -- lm-eval plot absent.jsonl -o bad.svg
expect_err "^lm-eval: absent.jsonl: " "plot missing file message"
expect_exit 2 "plot without -o" -- lm-eval plot run.jsonl
expect_exit 2 "plot over its input" -- lm-eval plot run.jsonl -o run.jsonl
expect_err "^lm-eval: output 'run.jsonl' is the metrics file; choose another file$" "plot over its input message"
[[ -s run.jsonl ]] && pass || fail "plot over its input damaged it"

lm-train -q --tokenizer tok2.model --data a.txt --context 64 --layers 1 --embd 32 --heads 2 --ff 64 --steps 2 \
  -o other.gguf > /dev/null || fail "training the second model"
expect_exit 2 "kld with another vocabulary" -- lm-eval kld -m other.gguf --ref m.gguf a.txt
expect_err "different vocabularies" "vocabulary message"
finish
