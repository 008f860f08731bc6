# Kill test (sourced by tests/tools/kill_test.sh and bench/kill_bench.sh): SIGKILLs lm-train,
# lm-finetune and lm-quantize at random moments and checks what a crash leaves behind.
#
# A job runs one tool in its own directory: up to KILL_PER_JOB runs, each started (from the
# checkpoint when there is one) and SIGKILLed after a random fraction (0 to 1.1) of the time an
# uninterrupted run of that tool takes here, then a last run that is left to finish. After each
# kill:
#  - the output is absent or byte-equal to the output of an uninterrupted run (the runs are
#    deterministic, resumed ones included), and lm-generate loads it;
#  - the checkpoint is absent (only before the first save) or loads: lm-train/lm-finetune
#    --resume reads and verifies it (checksums, every tensor), told a budget of one step so
#    that it stops there and names the checkpoint's step;
#  - that step is the one the killed run had reached (its --metrics lines), or the one before
#    when the kill came before the save; when the kill interrupted a save (its temp file is
#    there) it is the previous checkpoint's step: that checkpoint is intact.
# After the last run: it finished from the checkpoint (exit 0), its output equals the
# uninterrupted run's and loads, and no temp file is left in the directory, though those of
# the killed runs are seconds old: a temp whose writer is dead goes at the next start.
#
# Kill moments come from bash's RANDOM seeded with KILL_SEED (printed), so a seed gives the same
# sequence of tools, kill counts and fractions; the fractions scale the times measured at start.
# Sourced after tests/tools/lib.sh (LM_BIN, make_corpus); works in the current directory.

PATH=$LM_BIN:$PATH
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
KILL_PER_JOB=${KILL_PER_JOB:-3}
kl_failures=0 kl_kills=0 kl_loads=0 kl_resumed=0 kl_temps_left=0 kl_saves_hit=0 kl_outputs_hit=0 kl_last_hit=0 kl_finished_early=0

kl_fail() { kl_failures=$((kl_failures + 1)); echo "FAIL: $*" >&2; }
kl_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The three tools' runs. Each writes DIR/model.gguf; training writes DIR/model.gguf.ckpt.
KL_STEPS=12
kl_shape=(--context 32 --layers 2 --embd 32 --heads 4 --kv-heads 2 --ff 64 --batch 2 -t 1)
kl_train=(lm-train --tokenizer tok.model --data corpus.tok "${kl_shape[@]}" --warmup 2 --lr 3e-3 --eval-every 0
          --checkpoint-every 1)
kl_finetune=(lm-finetune -m base.gguf --data corpus.txt --batch 2 -t 1 --warmup 2 --lr 1e-3 --eval-every 0
             --checkpoint-every 1)
kl_quantize=(lm-quantize -t 1 -m wide.gguf --type q4_k_m)

# kl_cmd TOOL DIR RESUME METRICS: the command line of a run (RESUME: the checkpoint or empty).
kl_cmd() {
  local tool=$1 dir=$2 resume=$3 metrics=$4
  case $tool in
    train) kl_args=("${kl_train[@]}" --steps $KL_STEPS --metrics "$metrics" -o "$dir/model.gguf") ;;
    finetune) kl_args=("${kl_finetune[@]}" --steps $KL_STEPS --metrics "$metrics" -o "$dir/model.gguf") ;;
    quantize) kl_args=("${kl_quantize[@]}" -o "$dir/model.gguf") ;;
  esac
  [[ -n $resume ]] && kl_args+=(--resume "$resume")
  return 0
}

# kl_setup: data, models to fine-tune and quantize, and each tool's uninterrupted output and time.
declare -A kl_span_ms
kl_setup() {
  make_corpus 1500 > corpus.txt
  lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt || kl_fail "setup: tokenizer"
  lm-tokenize encode -m tok.model --format bin -o corpus.tok corpus.txt || kl_fail "setup: token file"
  lm-train -q --tokenizer tok.model --data corpus.tok "${kl_shape[@]}" --steps 4 -o base.gguf > /dev/null ||
    kl_fail "setup: base model"
  lm-train -q --tokenizer tok.model --data corpus.tok --context 32 --layers 2 --embd 256 --heads 4 --ff 512 --batch 1 \
    --steps 1 -t 1 -o wide.gguf > /dev/null || kl_fail "setup: model to quantize"
  mkdir -p ref metrics probe
  local tool t0
  for tool in train finetune quantize; do
    mkdir -p "ref/$tool"
    kl_cmd "$tool" "ref/$tool" "" metrics/ref.jsonl
    t0=$(kl_now_ms)
    "${kl_args[@]}" -q > /dev/null || kl_fail "setup: uninterrupted $tool run"
    kl_span_ms[$tool]=$(( $(kl_now_ms) - t0 ))
    lm-generate -q -m "ref/$tool/model.gguf" -n 1 -p the -t 1 > /dev/null || kl_fail "setup: the $tool output does not load"
  done
  echo "uninterrupted runs: train ${kl_span_ms[train]} ms, finetune ${kl_span_ms[finetune]} ms, quantize ${kl_span_ms[quantize]} ms"
}

# kl_ckpt_step TOOL CKPT: loads the checkpoint with the tool and sets kl_step to its step (-1
# and a failure if it does not load).
kl_ckpt_step() {
  local tool=$1 ckpt=$2 step
  rm -rf probe/* probe/.[!.]* 2> /dev/null
  kl_cmd "$tool" probe "$ckpt" /dev/null
  # A budget of one step: a checkpoint beyond it is refused after it is loaded and verified
  # ("is at step N, already past this budget"); one at step 1 resumes with no step to run.
  "${kl_args[@]}" --steps 1 --force-resume > /dev/null 2> probe.err
  local rc=$?
  step=$(grep -o "at step [0-9]*" probe.err | head -1 | grep -o "[0-9]*$")
  if [[ -z $step || ( $rc != 0 && $rc != 2 ) ]] || { [[ $rc == 2 ]] && ! grep -q "already past this budget" probe.err; }; then
    kl_fail "$tool: $ckpt does not load (exit $rc): $(head -c 300 probe.err)"
    kl_step=-1
  else
    kl_step=$step
  fi
}

# kl_last_step METRICS: the last step a run reported (empty if none).
kl_last_step() { grep '}$' "$1" 2> /dev/null | tail -1 | sed -n 's/^{"step":\([0-9]*\),.*/\1/p'; }

# kl_check_output TOOL DIR WHAT: DIR/model.gguf is absent or the uninterrupted run's, and loads.
kl_check_output() {
  local tool=$1 out=$2/model.gguf
  [[ -e $out ]] || return 0
  cmp -s "$out" "ref/$tool/model.gguf" || kl_fail "$3: $out differs from the uninterrupted run's"
  lm-generate -q -m "$out" -n 1 -p the -t 1 > /dev/null 2> gen.err || kl_fail "$3: $out does not load: $(head -c 300 gen.err)"
}

# kl_job TOOL JOB MAX_KILLS: one job (see the top).
kl_job() {
  local tool=$1 job=$2 max=$3 dir=jobs/$1 k=0 run=0 prev=0 ckpt resume pid frac delay metrics rc s c what tmps
  mkdir -p "$dir"
  ckpt=$dir/model.gguf.ckpt
  rm -f "$ckpt"  # a new run; the output of the job before stays, and must stay whole until replaced
  while (( k < max )); do
    run=$((run + 1))
    resume=
    [[ -e $ckpt ]] && resume=$ckpt
    metrics=metrics/$tool.$job.$run.jsonl
    kl_cmd "$tool" "$dir" "$resume" "$metrics"
    frac=$(( RANDOM % 1100 ))  # thousandths of the uninterrupted run's time
    delay=$(( kl_span_ms[$tool] * frac / 1000 ))
    "${kl_args[@]}" -q > /dev/null 2> run.err &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -KILL "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    rc=$?
    if [[ $rc != 137 ]]; then  # it ended before the kill moment (kill also succeeds on a zombie)
      [[ $rc == 0 ]] || kl_fail "$tool job $job run $run: exit $rc: $(head -c 300 run.err)"
      kl_finished_early=$((kl_finished_early + 1))
      break
    fi
    k=$((k + 1)) kl_kills=$((kl_kills + 1))
    what="$tool job $job kill $k (pid $pid, ${delay} ms, ${frac}/1000 of a run)"
    kl_check_output "$tool" "$dir" "$what"
    [[ -n $(compgen -G "$dir/.model.gguf.[0-9]*.tmp") && $tool == quantize ]] && kl_outputs_hit=$((kl_outputs_hit + 1))
    [[ $tool == quantize ]] && continue
    # The checkpoint: loads, at the step the run reached (S), the one before, or when a save
    # was interrupted the previous checkpoint's.
    s=$(kl_last_step "$metrics")
    s=${s:-$prev}
    (( s == KL_STEPS )) && kl_last_hit=$((kl_last_hit + 1))  # saving the last checkpoint or writing the model
    local saving=0
    compgen -G "$dir/.model.gguf.ckpt.$pid.*.tmp" > /dev/null && saving=1 kl_saves_hit=$((kl_saves_hit + 1))
    c=0
    if [[ -e $ckpt ]]; then
      kl_ckpt_step "$tool" "$ckpt"
      c=$kl_step
      (( c >= 0 )) && kl_loads=$((kl_loads + 1))
    fi
    if (( saving )); then
      # The save of step S was interrupted (or, with no step done, the probe at start): the
      # checkpoint left is the previous one, S - 1 (the checkpoint is saved every step).
      local want=$(( s > prev ? s - 1 : prev ))
      (( c == want )) || kl_fail "$what: a save was interrupted at step $s; the checkpoint is at step $c, not the previous one, $want"
    elif ! (( c == s || (c == s - 1 && s > prev) )); then
      kl_fail "$what: the run reached step $s (from $prev) but the checkpoint is at step $c"
    fi
    (( c >= 0 )) && prev=$c
  done
  # The last run: resumes (or restarts) and finishes; nothing of the killed runs is left.
  if (( k > 0 )); then
    resume=
    [[ -e $ckpt && $tool != quantize ]] && resume=$ckpt
    kl_cmd "$tool" "$dir" "$resume" metrics/$tool.$job.last.jsonl
    if "${kl_args[@]}" -q > /dev/null 2> run.err; then
      kl_resumed=$((kl_resumed + k))
    else
      kl_fail "$tool job $job: the run after $k kills did not finish (resuming '${resume}'): $(head -c 300 run.err)"
    fi
  fi
  [[ -e $dir/model.gguf ]] || kl_fail "$tool job $job: no output after the last run"
  kl_check_output "$tool" "$dir" "$tool job $job, finished"
  tmps=$(compgen -G "$dir/.*.tmp")
  if [[ -n $tmps ]]; then
    kl_temps_left=$((kl_temps_left + $(wc -l <<< "$tmps")))
    kl_fail "$tool job $job: temp files left after the next run: $(tr '\n' ' ' <<< "$tmps")"
  fi
}

# kl_run N [SEED]: N kills over the three tools in turn; prints the summary line.
kl_run() {
  local n=$1 job=0 tools=(train finetune quantize) left max
  KILL_SEED=${2:-${KILL_SEED:-$(( $(date +%s) % 100000 ))}}
  echo "seed $KILL_SEED (KILL_SEED=$KILL_SEED reproduces the kill moments), $n kills"
  kl_setup
  RANDOM=$KILL_SEED
  while (( kl_kills < n )); do
    left=$(( n - kl_kills ))
    max=$(( 1 + RANDOM % KILL_PER_JOB ))
    (( max > left )) && max=$left
    kl_job "${tools[job % 3]}" "$job" "$max"
    job=$((job + 1))
  done
  echo "$kl_kills kills: $kl_loads checkpoint loads, $kl_resumed resumed, $kl_temps_left temp files left"
  echo "($job jobs; $kl_saves_hit kills interrupted a checkpoint save, $kl_last_hit came after a training run's last step" \
       "(its last save or the model's write), $kl_outputs_hit interrupted an lm-quantize output write;" \
       "$kl_finished_early runs finished before their kill moment)"
}
