#!/usr/bin/env bash
# lm-finetune end to end on a tiny lm-train model: full fine-tuning on text, LoRA adapters
# (applied by lm-eval/lm-generate with --lora, equal to --merge, scale 0 = the base), prompt/
# completion training, a classifier scored by lm-eval classify -m and used by lm-eval predict,
# exact resume of a LoRA run after SIGINT, and one-line errors.
source "$(dirname "$0")/lib.sh"

make_corpus 3000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
fixture base.gguf lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 2 --embd 64 --heads 4 \
  --kv-heads 2 --ff 128 --batch 8 --warmup 5 --lr 3e-3 --steps 150 -t 2 -o base.gguf > /dev/null || fail "training the base model"
ppl() { lm-eval perplexity -t 2 --json "$@" | sed -n 's/^{"perplexity":\([^,]*\),.*/\1/p'; }
# The text the perplexities below score: the training text, its first 600 lines under the
# sanitizers (LM_TEST_LEAN), where these six evaluations took about 115 s of the test's 280.
scored=corpus.txt
[[ -n ${LM_TEST_LEAN:-} ]] && { head -n 600 corpus.txt > scored.txt; scored=scored.txt; }
ft=(lm-finetune -m base.gguf -t 2 -q)
base_ppl=$(ppl -m base.gguf "$scored")

# ---- full fine-tuning on text ----
expect_exit 0 "full fine-tuning" -- "${ft[@]}" --data corpus.txt --steps 40 --lr 1e-3 --json --metrics full.jsonl \
  --plot full.svg -o full.gguf
[[ $(field output "$T/out") == '"model"' ]] && pass || fail "full: output $(cat "$T/out")"
# --plot: a point per step for the training loss and the learning rate, one per validation
# (every 50 steps, and the last).
points() { sed -n "s/.*<polyline [^>]*data-name=\"$1\"[^>]*points=\"\([^\"]*\)\".*/\1/p" "$2" | wc -w; }
[[ $(points "training loss" full.svg) == 40 && $(points "validation loss" full.svg) == 1 && $(points "learning rate" full.svg) == 40 ]] &&
  pass || fail "lm-finetune --plot: $(points "training loss" full.svg) training, $(points "validation loss" full.svg) validation points"
lm-eval plot full.jsonl --title "lm-finetune: full.gguf" -o full-again.svg && same_files full.svg full-again.svg "lm-eval plot of lm-finetune's metrics"
full_ppl=$(ppl -m full.gguf "$scored")
awk -v a="$full_ppl" -v b="$base_ppl" 'BEGIN { exit !(a < b) }' && pass || fail "fine-tuning did not lower perplexity: $base_ppl -> $full_ppl"

# ---- LoRA: the adapter, --lora in lm-eval and lm-generate, --merge ----
lora=(--data corpus.txt --lora --lora-rank 4 --lora-targets all --steps 40 --lr 3e-3)
expect_exit 0 "LoRA" -- "${ft[@]}" "${lora[@]}" --json -o lora.gguf
[[ $(field output "$T/out") == '"adapter"' ]] && pass || fail "LoRA: output $(cat "$T/out")"
# The thread count does not change what is trained (so -t 0 may follow the machine's load).
mkdir -p t1
expect_exit 0 "LoRA at one thread" -- "${ft[@]}" "${lora[@]}" -t 1 -o t1/lora.gguf
same_files lora.gguf t1/lora.gguf "one thread trains the adapter two threads train"
full_trainable=$(lm-finetune -m base.gguf --data corpus.txt --dry-run | awk -F'\t' '$1 == "trainable" { print $2 }')
lora_trainable=$(field trainable_parameters "$T/out")
(( lora_trainable * 5 < full_trainable )) && pass || fail "LoRA trains $lora_trainable of $full_trainable parameters"
grep -aq "adapter.lora.alpha" lora.gguf && grep -aq "blk.1.ffn_down.weight.lora_b" lora.gguf && pass ||
  fail "the adapter lacks llama.cpp's keys or tensor names"
expect_exit 0 "--merge" -- "${ft[@]}" "${lora[@]}" --merge -o merged.gguf
lora_ppl=$(ppl -m base.gguf --lora lora.gguf "$scored")
[[ $lora_ppl == "$(ppl -m merged.gguf "$scored")" ]] && pass || fail "--lora and --merge differ"
awk -v a="$lora_ppl" -v b="$base_ppl" 'BEGIN { exit !(a < b) }' && pass || fail "LoRA did not lower perplexity: $base_ppl -> $lora_ppl"
[[ $(ppl -m base.gguf --lora lora.gguf:0 "$scored") == "$base_ppl" ]] && pass || fail "--lora FILE:0 is not the base model"
expect_exit 0 "lm-generate --lora" -- lm-generate -m base.gguf --lora lora.gguf -p "the" -n 5 -s 1
expect_exit 2 "lm-generate writing over its adapter" -- lm-generate -m base.gguf --lora lora.gguf -p "the" -n 2 -o lora.gguf
lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 1 --embd 64 --heads 4 --kv-heads 2 \
  --ff 128 --batch 2 --steps 1 -t 2 -o base1.gguf > /dev/null || fail "training a one-layer model"
expect_exit 1 "an adapter of a deeper model" -- lm-eval perplexity -m base1.gguf --lora lora.gguf corpus.txt
expect_err "lora.gguf: tensor 'blk.1.*adapts no projection of this 1-layer model" "an adapter of a deeper model"
expect_exit 1 "an adapter as -m" -- lm-eval perplexity -m lora.gguf corpus.txt
expect_err "lora.gguf.*LoRA adapter" "an adapter as -m names the file"
expect_exit 2 "--lora with a bad scale" -- lm-eval perplexity -m base.gguf --lora lora.gguf:inf corpus.txt
expect_exit 2 "--train-norms without --merge" -- "${ft[@]}" "${lora[@]}" --train-norms -o x.gguf
expect_err "need --merge" "--train-norms without --merge"

# ---- --patience writes the best weights: their validation loss is the best reported ----
tail -n 300 corpus.txt > valid.txt
expect_exit 0 "early stopping keeps the best weights" -- lm-finetune -m base.gguf -t 2 --data corpus.txt --valid valid.txt \
  --steps 300 --lr 1e-2 --eval-every 1 --eval-batches 2 --patience 1 --json --metrics best.jsonl -o best.gguf
cp "$T/out" best.json
best_step=$(field best_step best.json)
(( ${best_step:-999} < $(field steps best.json) )) && [[ $(field early_stop best.json) == true ]] && pass ||
  fail "--patience: expected an early stop after the best step: $(cat best.json)"
grep -q "writing the weights of step $best_step, the best validation loss" "$T/err" && pass ||
  fail "--patience: stderr does not say which weights are written: $(cat "$T/err")"
expect_exit 0 "validation loss of the written model" -- "${ft[@]/base.gguf/best.gguf}" --data corpus.txt --valid valid.txt \
  --eval-batches 2 --lr 0 --lr-min 0 --warmup 0 --steps 1 --json -o best-again.gguf
best_weights_written "$(field valid_loss "$T/out")" "$(field valid_loss best.json)" "$best_step" best.jsonl
expect_exit 0 "warmup longer than the steps" -- lm-finetune -m base.gguf -t 2 --data corpus.txt --steps 2 -o w.gguf
grep -qx "lm-finetune: warning: --warmup 10 is not shorter than the run (2 steps): the learning rate never gets past its warmup to the cosine decay; lower --warmup" \
  "$T/err" && pass || fail "warmup warning: $(cat "$T/err")"

# ---- prompt/completion ----
awk 'NR <= 800 { n = split($0, w, " "); p = w[1]; for (i = 2; i <= n / 2; i++) p = p " " w[i]; c = "";
  for (i = int(n / 2) + 1; i <= n; i++) c = c " " w[i]; printf "{\"prompt\": \"%s\", \"completion\": \"%s\", \"id\": %d}\n", p, c, NR }' corpus.txt > pc.jsonl
expect_exit 0 "prompt-completion" -- "${ft[@]}" --task prompt-completion --data pc.jsonl --lora --steps 20 --lr 3e-3 --json -o pc.gguf
[[ $(field valid_loss "$T/out") != null ]] && pass || fail "prompt-completion: no validation loss: $(cat "$T/out")"
printf '{"prompt": "a"}\n' > bad.jsonl
expect_exit 1 "a line without completion" -- "${ft[@]}" --task prompt-completion --data bad.jsonl --steps 1 -o x.gguf
expect_err "bad.jsonl:1: has no string member 'completion'" "names the file, line and member"
printf '{"prompt": "a", "completion": "b"\n' > bad.jsonl
expect_exit 1 "bad JSON" -- "${ft[@]}" --task prompt-completion --data bad.jsonl --steps 1 -o x.gguf
expect_err "bad.jsonl:1: is not a JSON object: .* at byte [0-9]+$" "bad JSON names the byte"

# ---- classification: train, score, predict ----
awk '{ print (($0 ~ /(^| )(the|of|and)( |$)/) ? "common" : "rare") "\t" $0 }' corpus.txt > labeled.tsv
head -n 2500 labeled.tsv > train.tsv
tail -n 500 labeled.tsv > test.tsv
# 300 steps, enough to learn the rule; under the sanitizers (LM_TEST_LEAN) 80, where the 300 took
# 15 s of the test's 72: the same code, and whether it learns is the Release pass's check.
cls_steps=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 80 || echo 300)
expect_exit 0 "classify" -- "${ft[@]}" --task classify --data train.tsv --valid test.tsv --steps "$cls_steps" --lr 1e-3 \
  --batch 16 --json -o cls.gguf
[[ $(field output "$T/out") == '"classifier"' ]] && pass || fail "classify: output $(cat "$T/out")"
for t in 1 2; do
  mkdir -p "cls-t$t"
  "${ft[@]}" --task classify --data train.tsv --valid test.tsv --steps 10 --lr 1e-3 --batch 16 -t "$t" -o "cls-t$t/c.gguf" > /dev/null
done
same_files cls-t1/c.gguf cls-t2/c.gguf "one thread trains the classifier two threads train"
acc=$(field valid_accuracy "$T/out")
majority=$(cut -f1 test.tsv | sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 / 500 }')
[[ -n ${LM_TEST_LEAN:-} ]] || { awk -v a="$acc" -v m="$majority" 'BEGIN { exit !(a > m + 0.05) }' && pass ||
  fail "accuracy $acc is not above the majority $majority"; }
expect_exit 0 "lm-eval classify -m" -- lm-eval classify -m cls.gguf test.tsv --json -t 2
awk -v a="$(field accuracy "$T/out")" -v b="$acc" 'BEGIN { exit !((a - b) ^ 2 < 1e-12) }' && pass || fail "lm-eval classify -m accuracy $(field accuracy "$T/out") differs from lm-finetune's $acc"
expect_exit 0 "classify, mean pooling" -- "${ft[@]}" --task classify --pooling mean --data train.tsv --valid test.tsv \
  --steps 60 --lr 1e-3 --batch 16 --json -o mean.gguf
mean_acc=$(field valid_accuracy "$T/out")
expect_exit 0 "lm-eval classify -m, mean pooling" -- lm-eval classify -m mean.gguf test.tsv --json -t 2
awk -v a="$(field accuracy "$T/out")" -v b="$mean_acc" 'BEGIN { exit !((a - b) ^ 2 < 1e-12) }' && pass ||
  fail "the mean-pooling classifier scores $(field accuracy "$T/out") in lm-eval but $mean_acc in lm-finetune"
# A linear probe trains the head alone (2 labels x (width + 1) values), then full fine-tuning
# starts from its head.
width=$(lm-finetune -m base.gguf --task classify --data train.tsv --dry-run | awk -F'\t' '$1 == "trainable" { print $2 }')
expect_exit 0 "probe dry run" -- lm-finetune -m base.gguf --task classify --head-only --data train.tsv --dry-run
probe_trainable=$(awk -F'\t' '$1 == "trainable" { print $2 }' "$T/out")
[[ $probe_trainable -gt 0 && $probe_trainable -lt $((width / 100)) ]] && pass ||
  fail "--head-only trains $probe_trainable of the full $width parameters"
expect_exit 0 "classify, linear probe" -- "${ft[@]}" --task classify --pooling mean --head-only --data train.tsv \
  --valid test.tsv --steps 40 --lr 1e-2 --batch 16 --json -o probe.gguf
[[ $(field trainable_parameters "$T/out") == "$probe_trainable" ]] && pass || fail "probe: $(cat "$T/out")"
expect_exit 0 "fine-tuning after the probe" -- "${ft[@]}" -m probe.gguf --task classify --data train.tsv --steps 2 -o lpft.gguf
expect_exit 2 "--head-only with --lora" -- "${ft[@]}" --task classify --head-only --lora --data train.tsv --steps 1 -o x.gguf
expect_err "needs --task classify and no --lora" "--head-only with --lora"
cut -f2 test.tsv > texts.txt
expect_exit 0 "predict" -- lm-eval predict -m cls.gguf --top 2 -t 2 texts.txt
[[ ! -s $T/err ]] && pass || fail "predict wrote to stderr, which is not a terminal: $(head -c 300 "$T/err" | cat -v)"
[[ $(wc -l < "$T/out") == 500 ]] && pass || fail "predict: $(wc -l < "$T/out") lines for 500"
awk -F'\t' 'NF != 4 || ($2 + $4 - 1) ^ 2 > 1e-8 || $2 < $4 { bad = 1 } END { exit bad }' "$T/out" && pass ||
  fail "predict --top 2: two labels whose probabilities add to 1, best first: $(head -2 "$T/out")"
cut -f1 "$T/out" | paste - test.tsv | awk -F'\t' '$1 == $2 { n++ } END { printf "%.6f\n", n / NR }' > agree.txt
awk -v a="$(cat agree.txt)" -v b="$acc" 'BEGIN { exit !((a - b) ^ 2 < 1e-12) }' && pass || fail "predict's labels give accuracy $(cat agree.txt), not $acc"
if command -v script > /dev/null; then
  # On a terminal: a progress line while the answers go to a file, none when they come to the terminal.
  script -qec "lm-eval predict -m cls.gguf -t 2 texts.txt > pred.out" /dev/null < /dev/null > tty.txt
  grep -q $'\r\e\\[Kpredict texts\.txt: [0-9]*/[0-9]* KiB' tty.txt && [[ $(wc -l < pred.out) == 500 ]] && pass ||
    fail "predict to a file on a terminal: $(head -c 300 tty.txt | cat -v)"
  script -qec "lm-eval predict -m cls.gguf -t 2 texts.txt" /dev/null < /dev/null > tty.txt
  ! grep -q $'\e\\[K' tty.txt && pass || fail "predict showed a progress line among its answers on the terminal"
fi
expect_exit 0 "predict from a pipe, JSON" -- sh -c "head -2 texts.txt | lm-eval predict -m cls.gguf --json"
[[ $(grep -c '^{"label":"[a-z]*","probability":[0-9.]*,"top":\[' "$T/out") == 2 ]] && pass || fail "predict --json: $(cat "$T/out")"
expect_exit 1 "predict with a plain model" -- lm-eval predict -m base.gguf texts.txt
expect_err "base.gguf.*no classification head" "a model without head"
expect_exit 2 "classify needs -m or --predictions" -- lm-eval classify test.tsv
printf 'rare\tx\nother\ty\n' > unknown.tsv
expect_exit 0 "further training of the classifier" -- "${ft[@]}" -m cls.gguf --task classify --data train.tsv --steps 2 -o cls2.gguf
expect_exit 1 "a label the classifier lacks" -- "${ft[@]}" -m cls.gguf --task classify --data unknown.tsv --steps 2 -o x.gguf
expect_err "unknown.tsv:2: has the label 'other', which the classifier does not have \\(common, rare\\)" \
  "a label the classifier lacks names the line"
expect_exit 1 "held-out labels the training data lacks" -- "${ft[@]}" --task classify --data train.tsv --valid unknown.tsv \
  --steps 2 -o x.gguf
expect_err "unknown.tsv:2: has the label 'other'" "held-out labels are checked too"
printf 'common\tthe cat\nrare lines without a tab\n' > notab.tsv
expect_exit 1 "a line without a label" -- "${ft[@]}" --task classify --data notab.tsv --steps 2 -o x.gguf
expect_err "notab.tsv:2: has no label" "a line without tab or __label__ has no label"
expect_exit 1 "lm-eval classify -m, a line without a label" -- lm-eval classify -m cls.gguf notab.tsv
expect_err "notab.tsv: line 2 has no label" "lm-eval classify -m: a line without tab or __label__ has no label"
# A classifier trained further on text keeps its head's label names.
expect_exit 0 "text training of a classifier" -- "${ft[@]}" -m cls.gguf --data corpus.txt --steps 2 -o clstext.gguf
expect_exit 0 "predict after text training" -- lm-eval predict -m clstext.gguf texts.txt
grep -q "^\(common\|rare\)	" "$T/out" && pass || fail "text-trained classifier lost its labels: $(head -2 "$T/out")"
expect_exit 0 "lm-eval classify with a gold label the classifier lacks" -- lm-eval classify -m cls.gguf unknown.tsv
expect_err "unknown.tsv: 1 of 2 examples have labels the classifier does not have \\('other'\\)" "unknown gold labels warned"
expect_exit 1 "an adapter scaled into NaN" -- lm-eval predict -m cls.gguf --lora lora.gguf:1e30 texts.txt
expect_err "non-finite probability" "NaN probabilities are an error, not output"
printf 'only\tone\n' > one.tsv
expect_exit 1 "one label" -- "${ft[@]}" --task classify --data one.tsv --steps 1 -o x.gguf
expect_err "one.tsv: has only the label 'only'" "one label"

# ---- interrupt and resume a LoRA run with dropout: bit for bit ----
# 300 steps, 60 under the sanitizers (LM_TEST_LEAN), where a step is many times slower: the
# interrupt still comes early in the run.
n=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 60 || echo 300)
long=(-m base.gguf -t 2 --data corpus.txt --lora --lora-dropout 0.1 --steps $n --eval-every 0 --lr 1e-3)
mkdir -p a b
lm-finetune "${long[@]}" --metrics a.jsonl -o a/l.gguf -q > /dev/null
interrupt_run b.jsonl int.err lm-finetune "${long[@]}" --metrics b.jsonl -o b/l.gguf
expect_exit 0 "resume" -- lm-finetune "${long[@]}" --resume b/l.gguf.ckpt --metrics rest.jsonl -o b/l.gguf -q
(( ${stopped:-$n} < n )) && pass || fail "the run finished before the interrupt"
same_resumed_steps a.jsonl rest.jsonl "resumed LoRA steps equal the uninterrupted run"
same_files a/l.gguf b/l.gguf "resumed LoRA run writes the same adapter"
expect_exit 1 "resume as another task" -- lm-finetune -m base.gguf -t 2 --task prompt-completion --data pc.jsonl --lora \
  --steps $n --resume b/l.gguf.ckpt -o c.gguf
expect_err "not a checkpoint of an lm-finetune prompt-completion run" "resume as another task"
expect_exit 1 "resume with another --lr" -- lm-finetune "${long[@]/1e-3/2e-3}" --resume b/l.gguf.ckpt -o c.gguf
expect_err "checkpoint belongs to another run: --lr 0.001 in the checkpoint but 0.002 now; .*--force-resume" \
  "a changed learning rate is listed"
expect_exit 1 "resume a LoRA run on another base" -- lm-finetune "${long[@]/base.gguf/full.gguf}" --resume b/l.gguf.ckpt \
  -o c.gguf
expect_err "-m is not the model the checkpoint's run started from" "a LoRA checkpoint knows its base"
forced=("${long[@]/1e-3/2e-3}")
forced=("${forced[@]/#$n/$((stopped + 2))}")  # two steps past the checkpoint are enough here
expect_exit 0 "--force-resume" -- lm-finetune "${forced[@]}" --resume b/l.gguf.ckpt --force-resume -o c.gguf
grep -q "warning: resuming with other options than the checkpoint's: --lr 0.001 in the checkpoint but 0.002 now, --steps $n in the checkpoint but $((stopped + 2)) now" \
  "$T/err" && pass || fail "--force-resume does not warn: $(head -3 "$T/err")"
expect_exit 1 "resume with a larger --steps" -- lm-finetune "${long[@]/#$n/$((2 * n))}" --resume b/l.gguf.ckpt -o c.gguf
expect_err "checkpoint belongs to another run: --steps $n in the checkpoint but $((2 * n)) now; .*--force-resume" \
  "a changed budget is refused"
expect_exit 2 "resume past the budget" -- lm-finetune "${long[@]/#$n/2}" --resume b/l.gguf.ckpt -o c.gguf
expect_err "already past this budget of 2 steps" "resume past the budget"
expect_exit 2 "output is the checkpoint resumed" -- lm-finetune "${long[@]}" --resume b/l.gguf.ckpt -o b/l.gguf.ckpt
expect_err "is the checkpoint --resume reads" "-o equal to --resume"
# One flipped byte in the last tensor (an optimizer moment) fails the checksum.
cp b/l.gguf.ckpt flip.ckpt
size=$(stat -c %s flip.ckpt)
byte=$(od -An -tu1 -j $((size - 3)) -N1 flip.ckpt)
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of=flip.ckpt bs=1 seek=$((size - 3)) conv=notrunc status=none
expect_exit 1 "a damaged checkpoint" -- lm-finetune "${long[@]}" --resume flip.ckpt -o c.gguf
expect_err "flip.ckpt: checkpoint tensor 'adam_v.*fails its checksum" "a damaged checkpoint names the tensor"

# ---- usage and file errors ----
expect_exit 2 "no budget" -- lm-finetune -m base.gguf --data corpus.txt -o x.gguf
expect_exit 1 "missing model" -- lm-finetune -m nope.gguf --data corpus.txt --steps 1 -o x.gguf
expect_err "nope.gguf" "missing model names the file"
expect_exit 2 "bad LoRA target" -- "${ft[@]}" --data corpus.txt --lora --lora-targets q,x --steps 1 -o x.gguf
expect_err "LoRA target 'x'" "bad target"
expect_exit 2 "--merge without --lora" -- "${ft[@]}" --data corpus.txt --merge --steps 1 -o x.gguf
for opt in "--lora-rank 4" "--lora-alpha 8" "--lora-targets all" "--lora-dropout 0.1"; do
  expect_exit 2 "$opt without --lora" -- "${ft[@]}" --data corpus.txt $opt --steps 1 -o x.gguf
  expect_err "^lm-finetune: ${opt% *} sets up LoRA adapters and goes with --lora \(without it every weight is trained\)\$" \
    "$opt without --lora names it"
  [[ ! -e x.gguf ]] && pass || fail "$opt without --lora wrote a model"
done
expect_exit 2 "output is the model" -- "${ft[@]}" --data corpus.txt --steps 1 -o base.gguf
head -c 40 corpus.txt > short.txt
expect_exit 1 "held-out text shorter than the context" -- "${ft[@]}" --data corpus.txt --valid short.txt --steps 1 -o x.gguf
expect_err "short.txt: has [0-9]+ tokens, fewer than the 65 one validation window needs" "a short --valid"
expect_exit 2 "a --lora scale that is not a number" -- lm-eval perplexity -m base.gguf --lora lora.gguf:abc corpus.txt
expect_err "--lora scale 'abc' is not a number" "a bad --lora scale is a usage error"
expect_exit 1 "a model as training text" -- "${ft[@]}" --data lora.gguf --steps 1 -o x.gguf
expect_err "lora.gguf: is a GGUF model file, not training text" "a GGUF file as --data"
expect_exit 1 "checkpoint directory missing" -- "${ft[@]}" --data corpus.txt --steps 1 --checkpoint no/dir/x.ckpt -o x.gguf
expect_err "no/dir/x.ckpt: cannot create output" "a checkpoint that cannot be written fails before training"
awk 'NR <= 20 { printf "{\"prompt\": \"%s %s %s\", \"completion\": \" end\"}\n", $0, $0, $0 }' corpus.txt > longp.jsonl
expect_exit 1 "prompts longer than the context" -- "${ft[@]}" --task prompt-completion --data longp.jsonl --context 8 \
  --steps 1 -o x.gguf
expect_err "longp.jsonl: has no example whose completion starts within the context of 8 tokens" "prompts past the context"
no_leftovers . "no temp files"
finish
