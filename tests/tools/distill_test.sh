#!/usr/bin/env bash
# Distillation (docs/distillation.md) end to end on tiny models: lm-train and lm-finetune with
# --teacher (F32, quantized, top-k, a classifier teacher), alpha 0 equal to plain training bit for
# bit, a teacher equal to the student giving no KL term, exact resume with the teacher recorded in
# the checkpoint, and the one-line errors for another vocabulary, a short context and bad flags.
source "$(dirname "$0")/lib.sh"

make_corpus 3000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt
student=(--context 32 --layers 1 --embd 32 --heads 4 --ff 64 --batch 4 --warmup 2 --lr 3e-3 -t 2 --eval-every 0)
common=(--tokenizer tok.model --data corpus.tok)

# ---- a teacher, then students ----
expect_exit 0 "train the teacher" -- lm-train "${common[@]}" --context 64 --layers 2 --embd 48 --heads 4 --ff 96 \
  --batch 4 --warmup 5 --lr 3e-3 -t 2 --steps 60 --eval-every 0 -o teacher.gguf -q
expect_exit 0 "distill a student" -- lm-train "${common[@]}" "${student[@]}" --steps 20 --teacher teacher.gguf \
  --metrics d.jsonl --json -o d.gguf -q
[[ $(wc -l < d.jsonl) == 20 ]] && pass || fail "metrics: $(wc -l < d.jsonl) lines"
awk -v k="$(field kl d.jsonl)" -v t="$(field teacher_s d.jsonl)" 'BEGIN { exit !(k > 0 && t > 0) }' && pass ||
  fail "metrics without a positive kl and teacher_s: $(head -1 d.jsonl)"
mkdir -p plain a0
expect_exit 0 "labels alone" -- lm-train "${common[@]}" "${student[@]}" --steps 20 --json -o plain/s.gguf -q
cp "$T/out" plain.json
expect_exit 0 "alpha 0" -- lm-train "${common[@]}" "${student[@]}" --steps 20 --teacher teacher.gguf \
  --distill-alpha 0 --json -o a0/s.gguf
same_files plain/s.gguf a0/s.gguf "--distill-alpha 0 trains bit for bit as without a teacher"
same_files plain.json "$T/out" "--distill-alpha 0 reports what training without a teacher reports"
grep -q "teacher is not run" "$T/err" && pass || fail "alpha 0: no warning: $(cat "$T/err")"
lm-quantize -q -m teacher.gguf --type q8_0 -o teacher-q8.gguf
expect_exit 0 "a quantized teacher, top-k" -- lm-train "${common[@]}" "${student[@]}" --steps 5 \
  --teacher teacher-q8.gguf --distill-top-k 8 --distill-temp 1.5 --metrics k.jsonl -o k.gguf -q
awk -v k="$(field kl k.jsonl)" 'BEGIN { exit !(k > 0) }' && pass || fail "top-k: kl $(field kl k.jsonl)"
expect_exit 0 "dry run with a teacher" -- lm-train "${common[@]}" "${student[@]}" --steps 5 --teacher teacher.gguf --dry-run
grep -Eq "^teacher	[0-9]+ MiB; forward [0-9.]+ s per step" "$T/out" && pass || fail "dry run: $(cat "$T/out")"

# A teacher equal to the student: the inference session's logits are the trained model's, so the
# KL term is 0 (to rounding) and with --lr 0 the weights stay.
expect_exit 0 "teacher = student" -- lm-finetune -m teacher.gguf --data corpus.tok -t 2 --batch 2 --context 64 \
  --teacher teacher.gguf --distill-alpha 1 --lr 0 --lr-min 0 --warmup 0 --steps 2 --eval-every 0 --metrics self.jsonl \
  -o self.gguf -q
awk -v k="$(field kl self.jsonl)" 'BEGIN { exit !(k >= 0 && k < 1e-4) }' && pass || fail "teacher = student: kl $(field kl self.jsonl)"

# ---- interrupt and resume: bit for bit, the teacher recorded ----
# 200 steps, 60 under the sanitizers (LM_TEST_LEAN), where a step is many times slower.
nlong=$([[ -n ${LM_TEST_LEAN:-} ]] && echo 60 || echo 200)
long=("${common[@]}" "${student[@]}" --steps "$nlong" --teacher teacher.gguf)
mkdir -p full part
lm-train "${long[@]}" --metrics full.jsonl -o full/model.gguf -q > /dev/null
interrupt_run part.jsonl int.err lm-train "${long[@]}" --metrics part.jsonl -o part/model.gguf
[[ -s part/model.gguf.ckpt ]] && pass || fail "SIGINT left no checkpoint: $(cat int.err)"
expect_exit 1 "resume with another teacher" -- lm-train "${long[@]/teacher.gguf/teacher-q8.gguf}" \
  --resume part/model.gguf.ckpt -o part/model.gguf
expect_err "checkpoint belongs to another run: --teacher 'teacher.gguf' in the checkpoint but 'teacher-q8.gguf' now \(other weights\); resume with the same options, or add --force-resume" \
  "another teacher is refused"
expect_exit 1 "resume without the teacher" -- lm-train "${common[@]}" "${student[@]}" --steps "$nlong" \
  --resume part/model.gguf.ckpt -o part/model.gguf
expect_err "--teacher 'teacher.gguf' in the checkpoint but none now" "a missing teacher is refused"
expect_exit 1 "resume with another temperature" -- lm-train "${long[@]}" --distill-temp 3 \
  --resume part/model.gguf.ckpt -o part/model.gguf
expect_err "--distill-temp 2 in the checkpoint but 3 now" "another temperature is refused"
cp teacher.gguf moved.gguf
expect_exit 0 "resume (the teacher moved, same bytes)" -- lm-train "${long[@]/teacher.gguf/moved.gguf}" \
  --resume part/model.gguf.ckpt --metrics rest.jsonl -o part/model.gguf -q
(( stopped < nlong )) && pass || fail "the run finished before the interrupt"
strip() { sed 's/"tokens_per_s".*"skipped"/"skipped"/; s/,"teacher_s":[^,}]*//'; }
tail -n +"$((stopped + 1))" full.jsonl | strip > want.jsonl
strip < rest.jsonl > got.jsonl
same_files want.jsonl got.jsonl "resumed distillation steps equal the uninterrupted run"
same_files full/model.gguf part/model.gguf "resumed distillation writes the same model"

# ---- a classifier distilled from a classifier ----
awk '{ print (($0 ~ /(^| )(the|of|and)( |$)/) ? "common" : "rare") "\t" $0 }' corpus.txt > labeled.tsv
head -n 2500 labeled.tsv > train.tsv
tail -n 500 labeled.tsv > test.tsv
cls=(--task classify --data train.tsv --valid test.tsv --batch 8 -t 2 --eval-every 0 --lr 1e-3)
expect_exit 0 "teacher classifier" -- lm-finetune -m teacher.gguf "${cls[@]}" --steps 60 -o tcls.gguf -q
expect_exit 0 "student classifier distilled" -- lm-finetune -m d.gguf "${cls[@]}" --steps 20 --teacher tcls.gguf \
  --distill-temp 1 --metrics c.jsonl --json -o scls.gguf -q
[[ -n $(field valid_accuracy "$T/out") && $(field output "$T/out") == '"classifier"' ]] && pass ||
  fail "distilled classifier: $(cat "$T/out")"
awk -v k="$(field kl c.jsonl)" 'BEGIN { exit !(k > 0) }' && pass || fail "classifier distillation: kl $(field kl c.jsonl)"
awk '{ print ($1 == "common" ? "x" : "y") "\t" substr($0, index($0, "\t") + 1) }' train.tsv > relabeled.tsv
expect_exit 1 "a classifier teacher with other labels" -- lm-finetune -m d.gguf --task classify --data relabeled.tsv \
  --steps 1 -t 2 --teacher tcls.gguf -o x.gguf
expect_err "tcls.gguf: the teacher's labels \(common,rare\) are not the student's \(x,y\)" "other labels name both sets"
expect_exit 1 "a language model as a classifier's teacher" -- lm-finetune -m d.gguf "${cls[@]}" --steps 1 \
  --teacher teacher.gguf -o x.gguf
expect_err "teacher.gguf: has no classifier head" "a teacher without a head"

# ---- bad input ----
lm-tokenize train -q --vocab-size 450 -o other.model corpus.txt
lm-train --tokenizer other.model --data corpus.txt "${student[@]}" --steps 2 -o other.gguf -q > /dev/null
expect_exit 1 "another vocabulary" -- lm-train "${common[@]}" "${student[@]}" --steps 2 --teacher other.gguf -o x.gguf
expect_err "^lm-train: other.gguf: the teacher's vocabulary \(450 tokens\) is not the student's, 'tok.model' \(400 tokens\); distillation needs one tokenizer for both\$" \
  "another vocabulary names both"
expect_exit 2 "a teacher with a shorter context" -- lm-train "${common[@]}" "${student[@]}" --context 128 --steps 2 \
  --teacher teacher.gguf -o x.gguf
expect_err "teacher 'teacher.gguf' has a context of 64 tokens, shorter than the student's windows of 128" "short context"
expect_exit 2 "alpha above 1" -- lm-train "${common[@]}" "${student[@]}" --steps 2 --teacher teacher.gguf --distill-alpha 1.5 -o x.gguf
expect_err "^lm-train: --distill-alpha must be in \[0, 1\]" "alpha out of range"
expect_exit 2 "temperature 0" -- lm-train "${common[@]}" "${student[@]}" --steps 2 --teacher teacher.gguf --distill-temp 0 -o x.gguf
expect_err "^lm-train: --distill-temp must be a positive number" "temperature 0"
expect_exit 2 "top-k above the vocabulary" -- lm-train "${common[@]}" "${student[@]}" --steps 2 --teacher teacher.gguf \
  --distill-top-k 401 -o x.gguf
expect_err "^lm-train: --distill-top-k 401 is above the vocabulary of 400" "top-k above the vocabulary"
expect_exit 2 "--distill-alpha without --teacher" -- lm-finetune -m teacher.gguf --data corpus.txt --steps 1 \
  --distill-alpha 0.3 -o x.gguf
expect_err "^lm-finetune: --distill-alpha sets up distillation and goes with --teacher\$" "a distill flag alone"
expect_exit 1 "a missing teacher" -- lm-train "${common[@]}" "${student[@]}" --steps 2 --teacher nope.gguf -o x.gguf
expect_err "nope.gguf" "a missing teacher names the file"
[[ ! -e x.gguf ]] && pass || fail "a refused run left its output"
no_leftovers . "distill"
finish
