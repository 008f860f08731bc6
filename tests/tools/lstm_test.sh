#!/usr/bin/env bash
# The LSTM architecture end to end (docs/lstm.md): lm-train --arch lstm (presets, dry run,
# metrics, dropout, weight-drop, BOS resets), exact resume after SIGINT with the carried states
# in the checkpoint (--grad-accum 2, so two groups of streams), the file (general.architecture
# lstm, its keys), lm-eval perplexity equal to the training run's validation on the same windows,
# contexts beyond the training window, lm-generate, lm-quantize and its copies' perplexity,
# lm-finetune on text and on prompt/completion pairs (and its exact resume), and the one-line
# errors: transformer options, weight-drop on a transformer, data too short for the streams,
# LoRA and classification on an LSTM.
source "$(dirname "$0")/lib.sh"

make_corpus 4000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
split -l 100 -d -a 2 corpus.txt doc.  # 40 documents, each starting with BOS in the token file
lm-tokenize encode -m tok.model --format bin --bos -o corpus.tok doc.??
lm-tokenize encode -m tok.model --format bin -o plain.tok corpus.txt
net=(--arch lstm --context 16 --layers 2 --embd 32 --hidden 48 --proj 32 --warmup 5 --lr 1e-2 -t 2)
shape=("${net[@]}" --batch 4)
common=(--tokenizer tok.model --data corpus.tok "${shape[@]}")

# ---- training ----
expect_exit 0 "dry run" -- lm-train --tokenizer tok.model --data corpus.tok --arch lstm --dry-run
grep -q "^model	lstm: V 400, T 128, L 2, E 384, H 1536, P 384, tied\$" "$T/out" && pass ||
  fail "dry run of lstm-small: $(head -1 "$T/out")"
expect_exit 0 "dry run of a preset" -- lm-train --tokenizer tok.model --data corpus.tok --preset lstm-tiny --hidden 64 --proj 0 --dry-run
grep -q "^model	lstm: V 400, T 64, L 2, E 256, H 64, P 0, untied\$" "$T/out" && pass ||
  fail "dry run of lstm-tiny, H 64 without a projection (untied: 64 != 256): $(head -1 "$T/out")"
expect_exit 0 "train" -- lm-train "${common[@]}" --steps 60 --eval-every 20 --metrics m.jsonl --json -o model.gguf -q
[[ $(wc -l < m.jsonl) == 60 ]] && pass || fail "metrics: $(wc -l < m.jsonl) lines"
first=$(field loss m.jsonl)
last=$(tail -1 m.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1) }' && pass || fail "loss did not fall: $first -> $last"
cp "$T/out" train.json
expect_exit 0 "describe" -- lm-eval perplexity -m model.gguf corpus.txt -v
grep -q "model.gguf: lstm, 2 layers, 32 wide" "$T/err" && pass || fail "-v does not describe the LSTM: $(head -3 "$T/err")"

# ---- the validation of lm-train is lm-eval's perplexity on the same held-out windows ----
# lm-train holds out the last 5% of the tokens and scores 8 windows of 16 from each of 4 streams,
# the state carried; with --valid and a single stream (--batch 1) that is the text read in
# windows of 16 with the state carried, which lm-eval does with one window as long as the text.
head -c 3000 corpus.txt > v.txt
expect_exit 0 "train with --valid" -- lm-train --tokenizer tok.model --data plain.tok "${net[@]}" \
  --batch 1 --eval-batches 1000 --steps 5 --eval-every 0 --valid v.txt --json -o v.gguf -q
vl=$(field valid_loss "$T/out")
# lm-eval scores every token after the first in one window from a zero state (--per-token);
# lm-train the first (n - 1) / 16 windows of 16 of them: their mean is lm-train's valid_loss.
expect_exit 0 "per token" -- lm-eval perplexity -m v.gguf -c 100000 --windows sliding --per-token pt.tsv v.txt
n_scored=$(( ($(wc -l < pt.tsv) - 1) / 16 * 16 ))
awk -F'\t' -v n="$n_scored" -v want="$vl" 'NR > 1 && NR <= n + 1 { s -= $5; k++ }
  END { m = s / k; exit !(k == n && n > 1000 && (m - want) ^ 2 < 1e-10) }' pt.tsv && pass ||
  fail "lm-eval's mean over the $n_scored tokens lm-train scores is not its valid_loss $vl: $(head -3 pt.tsv)"

# ---- interrupt and resume: bit for bit, dropout, weight-drop and two groups of streams included ----
# Under the sanitizers (LM_TEST_LEAN) a shorter run: each step is slower, so the interrupt still
# comes before its end.
n=300
[[ -n ${LM_TEST_LEAN:-} ]] && n=100
long=("${common[@]}" --steps $n --grad-accum 2 --dropout 0.1 --weight-drop 0.2 --eval-every 50)
mkdir -p full part
lm-train "${long[@]}" --metrics full.jsonl -o full/model.gguf -q > /dev/null
interrupt_run part.jsonl int.err lm-train "${long[@]}" --metrics part.jsonl -o part/model.gguf
expect_exit 0 "resume" -- lm-train "${long[@]}" --resume part/model.gguf.ckpt --metrics rest.jsonl -o part/model.gguf -q
(( stopped < n )) && pass || fail "the run finished before the interrupt"
same_resumed_steps full.jsonl rest.jsonl "resumed steps $((stopped + 1))..$n equal the uninterrupted run"
same_files full/model.gguf part/model.gguf "resumed run writes the same model"
expect_exit 0 "resume with the architecture from the checkpoint" -- lm-train --tokenizer tok.model --data corpus.tok \
  "${shape[@]:2}" --steps $n --grad-accum 2 --dropout 0.1 --weight-drop 0.2 --eval-every 50 \
  --resume part/model.gguf.ckpt -o again.gguf -q
expect_exit 1 "resume with another batch" -- lm-train "${long[@]/--grad-accum/--eval-batches}" \
  --resume part/model.gguf.ckpt -o x.gguf
expect_err "checkpoint (belongs to another run|carries the states of 8 streams, this run has 4)" "another stream count"
expect_exit 1 "resume with another width" -- lm-train "${long[@]/48/64}" --resume part/model.gguf.ckpt -o x.gguf
expect_err "^lm-train: part/model.gguf.ckpt: checkpoint belongs to another run: hidden 48 in the checkpoint but 64 now; resume with the same options\$" \
  "another hidden width"
expect_exit 1 "resume with another weight-drop" -- lm-train "${long[@]/0.2/0.3}" --resume part/model.gguf.ckpt -o x.gguf
expect_err "--weight-drop 0.2 in the checkpoint but 0.3 now" "another weight-drop"

# ---- the file and the tools that read it ----
# Greedy tokens of a trained model are far more likely than chance (log 1/400 = -5.99): the
# generator reads the LSTM's logits, not noise.
expect_exit 0 "generate" -- lm-generate -m full/model.gguf -p "The jury" -n 40 --greedy --ignore-eos --json
mean=$(grep -o '"logprob":[-0-9.e]*' "$T/out" | cut -d: -f2 | awk '{ s += $1; k++ } END { if (k) printf "%.3f", s / k }')
awk -v m="$mean" 'BEGIN { exit !(m != "" && m > -4) }' && pass ||
  fail "lm-generate --greedy: mean log-probability $mean of its tokens, expected above -4"
expect_exit 0 "generate past the training window" -- lm-generate -m model.gguf -p "The jury" -n 300 --seed 3 --ignore-eos -v
grep -q "context 4096" "$T/err" && pass || fail "an LSTM's default context is not 4096: $(grep context "$T/err")"
printf 'The jury\nThe county said\n' > prompts.txt
expect_exit 0 "generate, two prompts together" -- lm-generate -m model.gguf --each-line --parallel 2 -n 8 --seed 1 \
  --ignore-eos -f prompts.txt
cp "$T/out" par.txt
expect_exit 0 "generate, one at a time" -- lm-generate -m model.gguf --each-line -n 8 --seed 1 --ignore-eos -f prompts.txt
same_files par.txt "$T/out" "--parallel 2 writes what one sequence at a time writes"
# Embeddings are the top layer's output: H = 48 values without a projection (E is 32).
lm-train --tokenizer tok.model --data corpus.tok --arch lstm --context 16 --layers 1 --embd 32 --hidden 48 --proj 0 \
  --batch 4 --steps 2 -t 2 -o wide.gguf -q > /dev/null
expect_exit 0 "embeddings" -- lm-eval embed -m wide.gguf < prompts.txt
[[ $(wc -l < "$T/out") == 2 && $(head -1 "$T/out" | tr '\t' '\n' | grep -c .) == 48 ]] && pass ||
  fail "lm-eval embed: $(wc -l < "$T/out") lines, the first of $(head -1 "$T/out" | tr '\t' '\n' | grep -c .) fields"
# The whole corpus, or 800 lines under the sanitizers (LM_TEST_LEAN), where scoring the quantized
# files (a matrix-vector product per token) took 32 s of the test's 65.
head -n "$([[ -n ${LM_TEST_LEAN:-} ]] && echo 800 || echo 4000)" corpus.txt > scored.txt
expect_exit 0 "perplexity" -- lm-eval perplexity -m model.gguf --json scored.txt
ppl=$(field perplexity "$T/out")
for type in q8_0 q4_k_m; do
  expect_exit 0 "quantize $type" -- lm-quantize -m model.gguf -o "$type.gguf" --type "$type" -q
  expect_exit 0 "perplexity of $type" -- lm-eval perplexity -m "$type.gguf" --json scored.txt
  q=$(field perplexity "$T/out")
  awk -v a="$ppl" -v b="$q" -v t="$type" 'BEGIN { tol = t == "q8_0" ? 0.01 : 0.1; exit !(b > a * (1 - tol) && b < a * (1 + tol)) }' &&
    pass || fail "$type perplexity $q far from the f32 model's $ppl"
done

# ---- errors ----
expect_exit 2 "--heads on an LSTM" -- lm-train "${common[@]}" --heads 4 --steps 1 -o x.gguf
expect_err "^lm-train: --heads, --kv-heads and --ff are a transformer's; an LSTM takes --hidden and --proj\$" "--heads"
expect_exit 2 "--hidden on a transformer" -- lm-train --tokenizer tok.model --data corpus.tok --hidden 8 --steps 1 -o x.gguf
expect_err "^lm-train: --hidden and --proj are an LSTM's \(--arch lstm\)\$" "--hidden without --arch lstm"
expect_exit 2 "an LSTM preset with --arch llama" -- lm-train --tokenizer tok.model --data corpus.tok --arch llama \
  --preset lstm-small --steps 1 -o x.gguf
expect_err "^lm-train: --preset lstm-small is an LSTM's, but --arch is llama\$" "preset and --arch disagree"
head -c 400 corpus.txt > short.txt
expect_exit 1 "too few tokens for the streams" -- lm-train "${common[@]/corpus.tok/short.txt}" --batch 16 --steps 1 -o x.gguf
expect_err "^lm-train: short.txt: has [0-9]+ tokens, too few for 16 streams \(--batch x --grad-accum x ranks\) of 17 tokens \(--context \+ 1\); lower them or add data\$" \
  "short data"
expect_exit 2 "--weight-drop on a transformer" -- lm-train --tokenizer tok.model --data corpus.tok --weight-drop 0.2 \
  --steps 1 -o x.gguf
expect_err "^lm-train: --weight-drop masks an LSTM's recurrent matrices; a transformer has none \(use --dropout\)\$" \
  "weight-drop without an LSTM"
expect_exit 2 "lm-finetune --lora on an LSTM" -- lm-finetune -m model.gguf --data corpus.txt --lora --steps 1 -o x.gguf
expect_err "^lm-finetune: an LSTM is fine-tuned in full: LoRA adapts a transformer's projections \(leave out --lora\)\$" \
  "LoRA on an LSTM"
printf 'yes\tThe jury said\nno\tThe county said\n' > labeled.tsv
expect_exit 2 "lm-finetune --task classify on an LSTM" -- lm-finetune -m model.gguf --data labeled.tsv --task classify \
  --steps 1 -o x.gguf
expect_err "^lm-finetune: --task classify puts a head on a transformer; an LSTM fine-tunes on text or prompt-completion\$" \
  "classification on an LSTM"
[[ ! -e x.gguf ]] && pass || fail "a failed run wrote x.gguf"

# ---- lm-finetune: every weight of an LSTM, on text and on prompt/completion pairs ----
# Text in another style than the corpus: the fine-tuned model's perplexity on held-out text of
# that style falls far below the base model's, and the file it writes is an LSTM's.
for i in $(seq 300); do echo "the county said the jury was fine on day $((i % 9))"; done > style.txt
for i in $(seq 30); do echo "the county said the jury was fine on day $((i % 7))"; done > style_valid.txt
expect_exit 0 "base perplexity on the new style" -- lm-eval perplexity -m full/model.gguf --json style_valid.txt
base_ppl=$(field perplexity "$T/out")
expect_exit 0 "fine-tune on text" -- lm-finetune -m full/model.gguf --data style.txt --valid style_valid.txt \
  --weight-drop 0.1 --batch 4 --steps 40 --lr 3e-3 --warmup 0 --eval-every 0 -t 2 --json -o ft.gguf
grep -q '"output":"model"' "$T/out" && pass || fail "lm-finetune --json: $(cat "$T/out")"
expect_exit 0 "fine-tuned perplexity" -- lm-eval perplexity -m ft.gguf --json style_valid.txt -v
ft_ppl=$(field perplexity "$T/out")
grep -q "ft.gguf: lstm, 2 layers" "$T/err" && pass || fail "the fine-tuned file is no LSTM: $(head -2 "$T/err")"
awk -v a="$base_ppl" -v b="$ft_ppl" 'BEGIN { exit !(b < a / 3) }' && pass ||
  fail "fine-tuning on text: perplexity $base_ppl -> $ft_ppl, expected below a third"
# Prompt/completion: the completion (always the same answer) is learnt; the prompt is not
# scored. Interrupted and resumed, the run is the uninterrupted one.
for i in $(seq 200); do
  printf '{"prompt": "The jury %d said", "completion": " the county was fine"}\n' "$i"
done > pc.jsonl
pc=(-m full/model.gguf --data pc.jsonl --task prompt-completion --batch 4 --lr 3e-3 --warmup 0 --eval-every 10 -t 2)
m=60
[[ -n ${LM_TEST_LEAN:-} ]] && m=30
mkdir -p pcf pcp
expect_exit 0 "fine-tune on prompt/completion pairs" -- lm-finetune "${pc[@]}" --steps $m --metrics pc_full.jsonl \
  -o pcf/pc.gguf -q
v_first=$(grep -o '"valid_loss":[0-9.e+-]*' pc_full.jsonl | head -1 | cut -d: -f2)
v_last=$(grep -o '"valid_loss":[0-9.e+-]*' pc_full.jsonl | tail -1 | cut -d: -f2)
awk -v a="$v_first" -v b="$v_last" 'BEGIN { exit !(a != "" && b < a / 2) }' && pass ||
  fail "prompt/completion: held-out loss $v_first -> $v_last, expected to halve"
lm-finetune "${pc[@]}" --steps $m --metrics pc_part.jsonl -o pcp/pc.gguf 2> pc_int.err &
pid=$!
for _ in $(seq 200); do [[ -s pc_part.jsonl ]] && (( $(wc -l < pc_part.jsonl 2>/dev/null || echo 0) >= 5 )) && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
[[ $rc == 130 ]] && pass || fail "lm-finetune SIGINT exit $rc, expected 130: $(cat pc_int.err)"
stopped=$(grep -o 'interrupted at step [0-9]*' pc_int.err | grep -o '[0-9]*$')
expect_exit 0 "resume the fine-tune" -- lm-finetune "${pc[@]}" --steps $m --resume pcp/pc.gguf.ckpt \
  --metrics pc_rest.jsonl -o pcp/pc.gguf -q
(( stopped < m )) && pass || fail "the fine-tune finished before the interrupt"
tail -n +"$((stopped + 1))" pc_full.jsonl | sed 's/"tokens_per_s".*"skipped"/"skipped"/' > want.jsonl
sed 's/"tokens_per_s".*"skipped"/"skipped"/' pc_rest.jsonl > got.jsonl
same_files want.jsonl got.jsonl "resumed fine-tune steps $((stopped + 1))..$m equal the uninterrupted run"
same_files pcf/pc.gguf pcp/pc.gguf "the resumed fine-tune writes the same model"
expect_exit 1 "resume the fine-tune as another task" -- lm-finetune -m full/model.gguf --data style.txt --steps $m -t 2 \
  --resume pcp/pc.gguf.ckpt -o x.gguf
expect_err "is not a checkpoint of an lm-finetune text run \(lm.finetune.task is 'prompt-completion'\)" "another task"
finish
