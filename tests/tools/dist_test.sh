#!/usr/bin/env bash
# Data-parallel training under mpirun (docs/distributed.md): 2 ranks x batch B train like one
# process with --grad-accum 2 x batch B (losses, validation and final weights within 1e-5
# relative), whether the gradient sums overlap backward or follow it; --zero 1 gives the same run and checkpoint with less memory per rank; rank 0 alone prints
# and writes; SIGTERM to mpirun saves one checkpoint that resumes bit for bit on 2 ranks and on
# one process; a rank killed with SIGKILL ends the job. A build without MPI, started under a
# launcher, says so and exits 2.
source "$(dirname "$0")/lib.sh"
# Under the sanitizers, no leak check in these runs: OpenMPI keeps what MPI_Init allocates past
# MPI_Finalize in components it loads and unloads itself (dlclose), so LeakSanitizer reports
# frames of no module that no suppression can name. The same code paths without mpirun are
# leak-checked by lm_train_test and lm_finetune_test.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

make_corpus 4000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt
shape=(--context 32 --layers 2 --embd 32 --heads 4 --kv-heads 2 --ff 64 --batch 4 --warmup 5 --lr 3e-3 -t 1)

if [[ ${LM_MPI:-ON} == OFF ]]; then
  expect_exit 2 "started by a launcher without MPI" -- env OMPI_COMM_WORLD_SIZE=2 lm-train --tokenizer tok.model \
    --data corpus.tok "${shape[@]}" --steps 1 -o x.gguf
  expect_err "^lm-train: started by mpirun \(OMPI_COMM_WORLD_SIZE=2\) but built without MPI; rebuild with -DLM_MPI=ON" \
    "lm-train under a launcher, built without MPI"
  expect_exit 2 "lm-finetune started by a launcher without MPI" -- env OMPI_COMM_WORLD_SIZE=2 lm-finetune -m x.gguf \
    --data corpus.txt --steps 1 -o y.gguf
  expect_err "^lm-finetune: started by mpirun .* but built without MPI" "lm-finetune under a launcher, built without MPI"
  [[ ! -e x.gguf && ! -e y.gguf ]] && pass || fail "a build without MPI under a launcher wrote a file"
  finish
  exit
fi
if ! command -v mpirun > /dev/null; then
  echo "SKIP: mpirun not found (apt-get install openmpi-bin); the data-parallel tests need it"
  exit 0
fi
# Root in containers and CI; more ranks than cores on small machines.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi2=(mpirun -np 2)

# losses_close A.jsonl B.jsonl KEY WHAT [TOL]: the KEY values of two metrics files agree within TOL
# (default 1e-5) relative, line by line, and there are as many.
losses_close() {
  grep -o "\"$3\":[0-9.e+-]*" "$1" | cut -d: -f2 > a.txt
  grep -o "\"$3\":[0-9.e+-]*" "$2" | cut -d: -f2 > b.txt
  if [[ -s a.txt ]] && paste a.txt b.txt | awk -v n="$(wc -l < a.txt)" -v m="$(wc -l < b.txt)" \
    -v tol="${5:-1e-5}" 'n != m { exit 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > tol * ($1 < 0 ? -$1 : $1)) exit 1 }'; then pass
  else fail "$4: $3 differs: $(paste a.txt b.txt | head -3 | tr '\n' ' ') ($(wc -l < a.txt) and $(wc -l < b.txt) lines)"; fi
}
weights_close() {
  if "$LM_TEST_BIN/lm_test_compare_gguf" "$1" "$2" 1e-5 > cmp.txt; then pass
  else fail "$3: weights differ: $(cat cmp.txt)"; fi
}

# ---- lm-train: 2 ranks x batch 4 = 1 process x --grad-accum 2 x batch 4 ----
train=(lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --steps 20 --eval-every 5 --dropout 0.1)
expect_exit 0 "one process, --grad-accum 2" -- "${train[@]}" --grad-accum 2 --metrics one.jsonl -o one.gguf
cp "$T/out" one.out
sed 's/ [0-9]* tok\/s MFU [0-9]*% ETA [^ ]*//' "$T/err" > one.err
expect_exit 0 "2 ranks" -- "${mpi2[@]}" "${train[@]}" --metrics two.jsonl -o two.gguf
same_files "$T/out" one.out "2 ranks print the results of one process with --grad-accum 2, once"
sed 's/ [0-9]* tok\/s MFU [0-9]*% ETA [^ ]*//' "$T/err" > two.err
same_files one.err two.err "2 ranks log the validations of one process, once"
losses_close one.jsonl two.jsonl loss "2 ranks vs --grad-accum 2"
losses_close one.jsonl two.jsonl valid_loss "2 ranks vs --grad-accum 2"
losses_close one.jsonl two.jsonl grad_norm "2 ranks vs --grad-accum 2"
[[ $(wc -l < two.jsonl) == 20 ]] && pass || fail "rank 0 alone writes --metrics: $(wc -l < two.jsonl) lines, expected 20"
[[ $(grep -c '"comm_s":[0-9.e-]*' two.jsonl) == 20 && $(grep -c comm_s one.jsonl) == 0 ]] && pass ||
  fail "--metrics: comm_s on every step of 2 ranks and never for one process: $(head -1 two.jsonl)"
weights_close one.gguf two.gguf "lm-train, 2 ranks vs --grad-accum 2"
no_leftovers . "2 ranks"
# The sums overlapped with backward (the default, above) or after it: the same sums of two
# numbers, so the same weights.
expect_exit 0 "2 ranks, --overlap 0" -- "${mpi2[@]}" "${train[@]}" --overlap 0 --metrics after.jsonl -o after.gguf
"$LM_TEST_BIN/lm_test_compare_gguf" two.gguf after.gguf 0 > cmp.txt && pass ||
  fail "--overlap 0 trained other weights than the overlapped sums: $(cat cmp.txt)"
# Distillation (docs/distillation.md): each rank runs the teacher on its own micro-batches; the
# KL term and the weights are those of one process.
expect_exit 0 "distillation, one process" -- "${train[@]}" --grad-accum 2 --teacher one.gguf --metrics d1.jsonl -o d1.gguf
expect_exit 0 "distillation, 2 ranks" -- "${mpi2[@]}" "${train[@]}" --teacher one.gguf --metrics d2.jsonl -o d2.gguf
losses_close d1.jsonl d2.jsonl loss "distillation, 2 ranks vs --grad-accum 2"
# The KL term is a difference of terms near log(V) computed in float: 1e-4 of its size.
losses_close d1.jsonl d2.jsonl kl "distillation, 2 ranks vs --grad-accum 2" 1e-4
weights_close d1.gguf d2.gguf "distillation, 2 ranks vs --grad-accum 2"
# An LSTM (docs/lstm.md): each rank carries the states of its own streams, and a checkpoint
# gathers them on rank 0: the checkpoints (states included) are those of one process.
lstm=(lm-train --tokenizer tok.model --data corpus.tok --arch lstm --context 16 --layers 1 --embd 32 --hidden 32
  --proj 0 --batch 4 --warmup 5 --lr 1e-2 -t 1 --steps 20 --eval-every 5 --dropout 0.1 --checkpoint-every 10)
expect_exit 0 "lstm, one process" -- "${lstm[@]}" --grad-accum 2 --metrics l1.jsonl -o l1.gguf
expect_exit 0 "lstm, 2 ranks" -- "${mpi2[@]}" "${lstm[@]}" --metrics l2.jsonl -o l2.gguf
losses_close l1.jsonl l2.jsonl loss "lstm, 2 ranks vs --grad-accum 2"
losses_close l1.jsonl l2.jsonl valid_loss "lstm, 2 ranks vs --grad-accum 2"
weights_close l1.gguf.ckpt l2.gguf.ckpt "lstm checkpoints with their carried states, 2 ranks vs --grad-accum 2"
# 2 ranks x --grad-accum 2 = 1 process x --grad-accum 4.
expect_exit 0 "one process, --grad-accum 4" -- "${train[@]}" --grad-accum 4 --metrics one4.jsonl -o one4.gguf
expect_exit 0 "2 ranks, --grad-accum 2" -- "${mpi2[@]}" "${train[@]}" --grad-accum 2 --metrics two4.jsonl -o two4.gguf
losses_close one4.jsonl two4.jsonl loss "2 ranks x --grad-accum 2 vs --grad-accum 4"
weights_close one4.gguf two4.gguf "2 ranks x --grad-accum 2 vs --grad-accum 4"

# ---- --zero 1: the moments sharded by tensor; the same run as plain data parallel, the same
# checkpoint (moments gathered by rank 0), and less memory per rank ----
expect_exit 0 "2 ranks, plain" -- "${mpi2[@]}" "${train[@]}" --checkpoint-every 10 -o plain.gguf -q
expect_exit 0 "2 ranks, --zero 1" -- "${mpi2[@]}" "${train[@]}" --zero 1 --checkpoint-every 10 -o zero.gguf -q
if "$LM_TEST_BIN/lm_test_compare_gguf" plain.gguf zero.gguf 0 > cmp.txt &&
   "$LM_TEST_BIN/lm_test_compare_gguf" plain.gguf.ckpt zero.gguf.ckpt 0 >> cmp.txt; then pass
else fail "--zero 1 differs from plain data parallel: $(cat cmp.txt)"; fi
expect_exit 0 "a --zero 1 checkpoint resumes on one process" -- "${train[@]}" --grad-accum 2 --steps 20 \
  --resume zero.gguf.ckpt -o zero1.gguf -q
# Peak RSS per rank: the moments are 8 bytes per parameter, half of them on each of 2 ranks.
rss=(lm-train --tokenizer tok.model --data corpus.tok --preset tiny --batch 1 -t 1 --steps 2 --eval-every 0 -q)
params=$("${rss[@]}" --dry-run | awk -F'\t' '$1 == "parameters" { print $2 }')
[[ -x /usr/bin/time ]] || echo "SKIP: /usr/bin/time not found (apt-get install time): --zero 1's peak RSS not measured"
for z in 0 1; do
  [[ -x /usr/bin/time ]] || { echo 0 > rss$z.txt; continue; }
  # Each rank's figure goes to its own file: the ranks' stderr lines can interleave through mpirun.
  rm -f rss$z.rank*
  "${mpi2[@]}" bash -c '/usr/bin/time -o "$0.rank$OMPI_COMM_WORLD_RANK" -f %M "$@"' rss$z "${rss[@]}" \
    --zero $z -o rss$z.gguf > /dev/null || fail "the --zero $z run measured for peak RSS"
  cat rss$z.rank* | sort -n | tail -1 > rss$z.txt
  [[ $(cat rss$z.txt) =~ ^[0-9]+$ ]] || { fail "no peak RSS for --zero $z: $(cat rss$z.rank* 2>&1)"; echo 0 > rss$z.txt; }
done
saved=$(( $(cat rss0.txt) - $(cat rss1.txt) ))
echo "--zero 1, tiny preset ($params parameters): peak RSS per rank $(cat rss0.txt) KB -> $(cat rss1.txt) KB," \
  "$saved KB less (the other rank's moments: about $(( params * 4 / 1024 )) KB)"
[[ ! -x /usr/bin/time ]] || (( saved * 1024 > params * 2 )) && pass ||
  fail "--zero 1 saved $saved KB of peak RSS per rank, expected about $(( params * 4 / 1024 ))"

# ---- a signal to one rank: every rank stops after the same step, one checkpoint; it resumes
# bit for bit on 2 ranks, and on one process with the same global batch ----
run=(lm-train --tokenizer tok.model --data corpus.tok "${shape[@]}" --eval-every 0 --dropout 0.1)
n=60
long=("${run[@]}" --steps $n)
mkdir -p full part
"${mpi2[@]}" "${long[@]}" --metrics full.jsonl -o full/model.gguf -q > /dev/null || fail "the uninterrupted 2-rank run"
"${mpi2[@]}" "${long[@]}" --metrics part.jsonl -o part/model.gguf 2> int.err &
pid=$!
for _ in $(seq 2000); do [[ -s part.jsonl ]] && (( $(wc -l < part.jsonl 2>/dev/null || echo 0) >= 2 )) && break; sleep 0.01; done
# Stopped, so that the short run cannot end before the signal; rank 1 alone gets it.
ranks=$(pgrep -P $pid)
rank1=
for p in $ranks; do grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2> /dev/null && rank1=$p; done
kill -STOP $ranks
[[ -n $rank1 ]] && kill -TERM "$rank1" || fail "no rank 1 among mpirun's children: $ranks"
kill -CONT $ranks
wait $pid
rc=$?
[[ $rc == 143 ]] && pass || fail "SIGTERM to rank 1: mpirun exit $rc, expected 143 (the ranks' status)"
[[ $(grep -c "interrupted at step [0-9]*; checkpoint saved to part/model.gguf.ckpt" int.err) == 1 ]] && pass ||
  fail "SIGTERM: expected one interrupt line: $(head -c 400 int.err)"
[[ -s part/model.gguf.ckpt && ! -e part/model.gguf ]] && pass || fail "after SIGTERM: checkpoint only, no model"
stopped=$(grep -o 'interrupted at step [0-9]*' int.err | grep -o '[0-9]*$')
(( ${stopped:-$n} < n )) && pass || fail "the run finished before the interrupt"
cp part/model.gguf.ckpt part.ckpt
expect_exit 0 "resume on 2 ranks" -- "${mpi2[@]}" "${long[@]}" --resume part/model.gguf.ckpt --metrics rest.jsonl \
  -o part/model.gguf -q
tail -n +"$((stopped + 1))" full.jsonl | sed -e 's/"tokens_per_s".*"skipped"/"skipped"/' -e 's/,"comm_s":[0-9.e+-]*//' > want.jsonl
sed -e 's/"tokens_per_s".*"skipped"/"skipped"/' -e 's/,"comm_s":[0-9.e+-]*//' rest.jsonl > got.jsonl
same_files want.jsonl got.jsonl "resumed steps $((stopped + 1))..$n on 2 ranks equal the uninterrupted run"
same_files full/model.gguf part/model.gguf "resumed on 2 ranks, the same model"
# The same global batch on one process: --grad-accum 2 continues the 2-rank run.
mkdir -p one
expect_exit 0 "resume on one process with --grad-accum 2" -- "${long[@]}" --grad-accum 2 --resume part.ckpt \
  --metrics one_rest.jsonl -o one/model.gguf -q
losses_close rest.jsonl one_rest.jsonl loss "resumed on one process"
weights_close full/model.gguf one/model.gguf "2-rank checkpoint resumed on one process"
expect_exit 1 "resume with another global batch" -- "${long[@]}" --resume part.ckpt -o x.gguf
expect_err "^lm-train: part.ckpt: checkpoint belongs to another run: --grad-accum x ranks 2 in the checkpoint but 1 now; " \
  "resume with another global batch"

# ---- SIGTERM to mpirun: it sends SIGCONT, waits odls_base_sigkill_timeout (1 s), sends SIGTERM,
# waits as long again and SIGKILLs: the ranks save one checkpoint in that second and exit 143 ----
mkdir -p term
mpirun -np 2 "${run[@]}" --steps 100000 --metrics term.jsonl -o term/model.gguf > term.out 2> term.err &
pid=$!
for _ in $(seq 400); do [[ -s term.jsonl ]] && (( $(wc -l < term.jsonl 2>/dev/null || echo 0) >= 5 )) && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
[[ $rc != 0 ]] && pass || fail "SIGTERM to mpirun: exit 0"
[[ $(grep -c "^lm-train: interrupted at step [0-9]*; checkpoint saved to term/model.gguf.ckpt" term.err) == 1 ]] && pass ||
  fail "SIGTERM to mpirun: expected one interrupt line: $(head -c 400 term.err)"
[[ -s term/model.gguf.ckpt && ! -e term/model.gguf ]] && pass || fail "SIGTERM to mpirun: checkpoint only, no model"

# ---- a rank that dies: the job ends, the last checkpoint loads ----
mkdir -p dead
mpirun -np 2 "${run[@]}" --steps 100000 --checkpoint-every 5 --metrics dead.jsonl -o dead/model.gguf \
  > dead.out 2> dead.err &
pid=$!
for _ in $(seq 400); do [[ -s dead.jsonl ]] && (( $(wc -l < dead.jsonl 2>/dev/null || echo 0) >= 12 )) && break; sleep 0.05; done
victim=
ranks=$(pgrep -P $pid)
for p in $ranks; do
  grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2> /dev/null && victim=$p
done
if [[ -z $victim ]]; then
  fail "no rank 1 among mpirun's children: $(pgrep -P $pid | tr '\n' ' ')"
  kill -TERM $pid
fi
start=$(date +%s)
[[ -n $victim ]] && kill -KILL "$victim"
for _ in $(seq 300); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
if kill -0 $pid 2> /dev/null; then
  fail "rank 1 killed: mpirun still running after 30 s"
  kill -KILL $pid
fi
wait $pid
rc=$?
[[ $rc != 0 ]] && pass || fail "rank 1 killed: mpirun exited 0"
(( $(date +%s) - start <= 30 )) && pass || fail "rank 1 killed: the job took $(( $(date +%s) - start )) s to end"
grep -q "rank 1 .*exited on signal 9" dead.err && pass || fail "rank 1 killed: no line names it: $(head -c 600 dead.err)"
# mpirun may exit before the last rank is reaped; the temp files of a live writer are kept.
for p in $ranks; do for _ in $(seq 100); do kill -0 "$p" 2> /dev/null || break; sleep 0.05; done; done
# On one process with the same global batch, for a second (a time budget keeps the schedule).
expect_exit 0 "the last checkpoint after a dead rank resumes" -- "${run[@]}" --grad-accum 2 --time 1s \
  --resume dead/model.gguf.ckpt -o dead/model.gguf -q
no_leftovers dead "dead rank: $(ls -a dead | tr '\n' ' ')"

finish
