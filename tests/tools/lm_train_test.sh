#!/usr/bin/env bash
# lm-train end to end on a tiny model: training from token files and text, outputs, metrics,
# the --plot picture, dry run, exact resume after SIGINT, and one-line errors with their exit codes.
source "$(dirname "$0")/lib.sh"

make_corpus 4000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt
shape=(--context 32 --layers 2 --embd 32 --heads 4 --kv-heads 2 --ff 64 --batch 4 --warmup 5 --lr 3e-3 -t 2)

# ---- training ----
expect_exit 0 "train from a token file" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --steps 40 \
  --eval-every 10 --metrics m.jsonl --plot m.svg -o model.gguf -q
grep -q "^steps	40\$" "$T/out" && pass || fail "steps line: $(cat "$T/out")"
grep -Eq "^valid_loss	[0-9]+\.[0-9]+\$" "$T/out" && pass || fail "valid_loss line: $(cat "$T/out")"
cp "$T/out" token_run.txt
[[ $(wc -l < m.jsonl) == 40 ]] && pass || fail "metrics has $(wc -l < m.jsonl) lines, expected 40"
first=$(head -1 m.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 m.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1) }' && pass || fail "loss did not fall: $first -> $last"
grep -c '"valid_loss"' m.jsonl | grep -qx 4 && pass || fail "expected 4 validations in the metrics"
[[ ! -e model.gguf.ckpt ]] && pass || fail "a checkpoint was written without --checkpoint-every or an interrupt"
no_leftovers . "train"
# --plot: an SVG with the training loss (a point per step), the validation loss (a point per
# validation) and the learning rate; lm-eval plot draws the same picture from the metrics.
points() { sed -n "s/.*<polyline [^>]*data-name=\"$1\"[^>]*points=\"\([^\"]*\)\".*/\1/p" "$2" | wc -w; }
[[ $(head -2 m.svg | tail -1) == '<svg xmlns="http://www.w3.org/2000/svg"'* && $(tail -1 m.svg) == '</svg>' ]] && pass ||
  fail "--plot did not write an SVG document: $(head -c 200 m.svg)"
[[ $(points "training loss" m.svg) == 40 && $(points "validation loss" m.svg) == 4 && $(points "learning rate" m.svg) == 40 ]] &&
  pass || fail "--plot points: $(points "training loss" m.svg) training, $(points "validation loss" m.svg) validation, $(points "learning rate" m.svg) learning rate; expected 40, 4, 40"
expect_exit 0 "lm-eval plot of the run's metrics" -- lm-eval plot m.jsonl -o again.svg --title "lm-train: model.gguf"
same_files m.svg again.svg "lm-eval plot draws the picture --plot drew"
# The model carries its tokenizer: lm-tokenize reads it from the GGUF.
lm-tokenize vocab -m model.gguf > v1 && lm-tokenize vocab -m tok.model > v2
same_files v1 v2 "the model's embedded tokenizer equals the one it was trained with"
mkdir -p again
expect_exit 0 "train from text gives the same run" -- lm-train --tokenizer tok.model --data corpus.txt "${shape[@]}" \
  --steps 40 --eval-every 10 -o again/model.gguf -q
same_files "$T/out" token_run.txt "text and token file data train identically"
same_files model.gguf again/model.gguf "the same seed and data give the same model file"
# The thread count does not change the results (the reductions add in a fixed order), which is
# what lets the default -t 0 move steps between counts as the machine's load changes.
mkdir -p t1 t0
expect_exit 0 "train at one thread" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" -t 1 \
  --steps 40 --eval-every 10 -o t1/model.gguf -q
same_files model.gguf t1/model.gguf "one thread trains the model two threads train"
expect_exit 0 "train at the tuned count" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" -t 0 \
  --steps 40 --eval-every 10 -o t0/model.gguf -q
same_files model.gguf t0/model.gguf "-t 0 trains the model two threads train"
expect_exit 0 "--json" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --steps 2 --json -o j.gguf -q
grep -Eq '^\{"steps":2,"train_loss":[0-9.]+,"valid_loss":[0-9.]+,"valid_perplexity":[0-9.]+,"early_stop":false\}$' "$T/out" \
  && pass || fail "--json: $(cat "$T/out")"
expect_exit 0 "dry run" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --steps 100 --dry-run
grep -q "^parameters	" "$T/out" && grep -q "^estimated_time	" "$T/out" && pass || fail "dry run: $(cat "$T/out")"
expect_exit 0 "early stopping" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --steps 400 \
  --lr 0 --lr-min 0 --eval-every 1 --patience 2 --json -o es.gguf -q
grep -q '"early_stop":true' "$T/out" && pass || fail "early stop: $(cat "$T/out")"
# --patience writes the weights of the best validation, not those of the last step: the written
# model's validation loss (measured by lm-finetune at --lr 0, which leaves the weights as they
# are) equals the best one the run reports, from a step before the last.
tail -n 400 corpus.txt > valid.txt
expect_exit 0 "early stopping keeps the best weights" -- lm-train --tokenizer tok.model --data corpus.tok \
  --valid valid.txt "${shape[@]}" --steps 400 --lr 2e-2 --eval-every 1 --patience 2 --json --metrics best.jsonl -o best.gguf
cp "$T/out" best.json
best_step=$(field best_step best.json)
steps=$(field steps best.json)
[[ $(field early_stop best.json) == true && -n $best_step ]] && (( best_step < steps )) && pass ||
  fail "--patience: expected an early stop after the best step: $(cat best.json)"
grep -q "^lm-train: stopped early at step $steps; writing the weights of step $best_step, the best validation loss" "$T/err" &&
  pass || fail "--patience: stderr does not say which weights are written: $(cat "$T/err")"
expect_exit 0 "validation loss of the written model" -- lm-finetune -m best.gguf --data corpus.txt --valid valid.txt \
  --batch 4 --lr 0 --lr-min 0 --warmup 0 --steps 1 -t 2 --json -o best-again.gguf -q
best_weights_written "$(field valid_loss "$T/out")" "$(field valid_loss best.json)" "$best_step" best.jsonl
# A warmup as long as the run never reaches the decay: one warning line.
expect_exit 0 "warmup longer than the steps" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" \
  --warmup 10 --steps 4 --eval-every 0 -o w.gguf
[[ $(grep -c warmup "$T/err") == 1 ]] &&
  grep -qx "lm-train: warning: --warmup 10 is not shorter than the run (4 steps): the learning rate never gets past its warmup to the cosine decay; lower --warmup" \
  "$T/err" && pass || fail "warmup warning: $(cat "$T/err")"
expect_exit 0 "warmup shorter than the steps" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" \
  --warmup 3 --steps 4 --eval-every 0 -o w.gguf
grep -q "warmup" "$T/err" && fail "a warning for a warmup shorter than the run: $(cat "$T/err")" || pass

# ---- interrupt and resume: the resumed steps repeat the uninterrupted run bit for bit, dropout included,
# at another thread count (the run at 2 threads, the resume at 1) ----
plain=(--tokenizer tok.model --data corpus.tok "${shape[@]}" --eval-every 0)
long=("${plain[@]}" --steps 300 --dropout 0.1)
mkdir -p full part
lm-train "${long[@]}" --metrics full.jsonl -o full/model.gguf -q
lm-train "${plain[@]}" --steps 1 --metrics nodrop.jsonl -o nodrop.gguf -q
loss() { head -1 "$1" | grep -o '"loss":[^,]*'; }
[[ -n $(loss full.jsonl) && $(loss full.jsonl) != "$(loss nodrop.jsonl)" ]] && pass \
  || fail "--dropout 0.1 left the first loss unchanged: $(loss full.jsonl)"
interrupt_run part.jsonl int.err lm-train "${long[@]}" --metrics part.jsonl --plot part.svg -o part/model.gguf
grep -q "interrupted at step [0-9]*; checkpoint saved to part/model.gguf.ckpt" int.err && pass || fail "interrupt message: $(cat int.err)"
[[ -s part/model.gguf.ckpt && ! -e part/model.gguf ]] && pass || fail "after SIGINT: checkpoint only, no model"
[[ $(points "training loss" part.svg) == "$stopped" ]] && pass ||
  fail "an interrupted run's --plot has $(points "training loss" part.svg) steps, expected $stopped"
expect_exit 0 "resume" -- lm-train "${long[@]}" -t 1 --resume part/model.gguf.ckpt --metrics rest.jsonl -o part/model.gguf -q
(( stopped < 300 )) && pass || fail "the run finished before the interrupt"
same_resumed_steps full.jsonl rest.jsonl "resumed steps $((stopped + 1))..300 equal the uninterrupted run"
same_files full/model.gguf part/model.gguf "resumed run writes the same model"
expect_exit 1 "resume with another batch size (E3)" -- lm-train "${long[@]}" --batch 2 --resume part/model.gguf.ckpt -o x.gguf
expect_err "^lm-train: part/model.gguf.ckpt: checkpoint belongs to another run: --batch 4 in the checkpoint but 2 now" "E3 message"
# The budget sets the cosine schedule: another --steps is a changed option like the others.
expect_exit 1 "resume with a larger --steps" -- lm-train "${long[@]/300/600}" --resume part/model.gguf.ckpt -o x.gguf
expect_err "^lm-train: part/model.gguf.ckpt: checkpoint belongs to another run: --steps 300 in the checkpoint but 600 now; resume with the same options, or add --force-resume\$" \
  "a changed --steps is refused"
expect_exit 0 "resume with another --steps, forced" -- lm-train "${long[@]/300/$((stopped + 2))}" \
  --resume part/model.gguf.ckpt --force-resume -o x.gguf
grep -q "warning: resuming with other options than the checkpoint's: --steps 300 in the checkpoint but $((stopped + 2)) now" \
  "$T/err" && pass || fail "--force-resume does not list the changed --steps: $(head -3 "$T/err")"
expect_exit 1 "resume from a model file (no optimizer state)" -- lm-train "${long[@]}" --resume full/model.gguf -o x.gguf
expect_err "full/model.gguf: missing key 'lm.train.batch'" "not a checkpoint message"
# A checkpoint at the budget's last step (saved just before the model: a run killed while writing
# it) resumes with no step left and writes the model of the uninterrupted run.
mkdir -p last
lm-train "${plain[@]}" --steps 3 --checkpoint-every 3 --json -o last/model.gguf > last.json
mv last/model.gguf last.gguf
expect_exit 0 "resume a checkpoint at the last step" -- lm-train "${plain[@]}" --steps 3 --resume last/model.gguf.ckpt \
  --json -o last/model.gguf
same_files last.gguf last/model.gguf "a checkpoint at the last step writes the uninterrupted run's model"
[[ $(field train_loss "$T/out") == null && $(field valid_loss "$T/out") == "$(field valid_loss last.json)" ]] && pass ||
  fail "resumed at the last step: $(cat "$T/out"), expected no train_loss and the valid_loss of $(cat last.json)"
grep -qx "lm-train: last/model.gguf.ckpt is at the budget's last step, 3: no step left to run" "$T/err" && pass ||
  fail "resumed at the last step: $(cat "$T/err")"
expect_exit 2 "resume a checkpoint past the budget" -- lm-train "${plain[@]}" --steps 2 --resume last/model.gguf.ckpt -o x.gguf
expect_err "^lm-train: checkpoint 'last/model.gguf.ckpt' is at step 3, already past this budget of 2 steps\$" "past the budget"

# ---- errors ----
expect_exit 2 "no budget" -- lm-train --tokenizer tok.model --data corpus.tok -o x.gguf
expect_err "^lm-train: no training budget: give --steps, --tokens or --time" "no budget message"
expect_exit 2 "no data" -- lm-train --tokenizer tok.model --steps 1 -o x.gguf
expect_exit 2 "bad duration" -- lm-train --tokenizer tok.model --data corpus.tok --time 10x -o x.gguf
expect_err "^lm-train: --time '10x': expected a positive duration" "bad duration message"
expect_exit 2 "kv heads not dividing heads" -- lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --kv-heads 3 --steps 1 -o x.gguf
expect_err "not a multiple of the kv head count 3" "kv heads message"
expect_exit 2 "output over the data" -- lm-train --tokenizer tok.model --data corpus.tok --steps 1 -o corpus.tok
expect_exit 2 "--plot to stdout" -- lm-train --tokenizer tok.model --data corpus.tok --steps 1 --plot - -o x.gguf
expect_err "^lm-train: --plot needs a file name: the results go to stdout$" "--plot - message"
expect_exit 2 "--plot over the metrics" -- lm-train --tokenizer tok.model --data corpus.tok --steps 1 --metrics p.jsonl \
  --plot p.jsonl -o x.gguf
expect_err "^lm-train: --plot 'p.jsonl' is also another file of the run; choose another file$" "--plot over --metrics message"
expect_exit 1 "--plot in a missing directory, before training" -- lm-train --tokenizer tok.model --data corpus.tok \
  "${shape[@]}" --steps 1000000 --plot no/dir/p.svg -o x.gguf
expect_err "^lm-train: no/dir/p.svg: cannot create output" "--plot directory message"
lm-tokenize train -q --vocab-size 420 -o other.model corpus.txt
expect_exit 1 "token file of another tokenizer" -- lm-train --tokenizer other.model --data corpus.tok --steps 1 -o x.gguf
expect_err "^lm-train: corpus.tok: tokenizer fingerprint" "fingerprint message"
echo "too short" > short.txt
expect_exit 1 "data shorter than one sequence (D5)" -- lm-train --tokenizer tok.model --data short.txt "${shape[@]}" --steps 1 -o x.gguf
expect_err "short.txt: has [0-9]+ tokens, expected at least 33" "short data message"
expect_exit 1 "missing output directory, before training" -- lm-train --tokenizer tok.model --data corpus.tok --steps 1000000 -o no/dir/x.gguf
expect_err "^lm-train: no/dir/x.gguf: cannot create output" "output directory message"
expect_exit 1 "missing tokenizer" -- lm-train --tokenizer nope.model --data corpus.tok --steps 1 -o x.gguf
no_leftovers . "errors"
finish
