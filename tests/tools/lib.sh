# Shared helpers for the tool tests (sourced). Each test script runs real binaries from $LM_BIN
# in a private temp directory and exits non-zero if any check failed.
set -u
: "${LM_BIN:?set LM_BIN to the directory holding the lm-* binaries}"
: "${LM_SRC:?set LM_SRC to the source tree}"
PATH=$LM_BIN:$PATH
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
n_pass=0
n_fail=0

pass() { n_pass=$((n_pass + 1)); }
fail() { n_fail=$((n_fail + 1)); echo "FAIL: $*" >&2; }
# The value of "KEY": in a JSON line of FILE (the first), as written: field KEY FILE.
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | head -1; }

# fixture OUT COMMAND...: runs COMMAND, which writes the file OUT (a model a test starts from),
# or copies OUT from $LM_TEST_CACHE when the same command over the same input files made it
# before. scripts/test.sh sets LM_TEST_CACHE for both of its passes, so the sanitizer pass takes
# what the Release pass trained instead of training it again at a tenth of the speed: those
# models are the checks' inputs there, and lm-train and lm-finetune are tested under the
# sanitizers by their own tests. Only for commands whose sole output a test reads is OUT.
# Without LM_TEST_CACHE the command always runs. Returns the command's status (0 on a hit).
fixture() {
  local out=$1 key a
  shift
  [[ -n ${LM_TEST_CACHE:-} ]] || { "$@"; return; }
  # The command without OUT's name (two tests training one model under other names share it).
  key=$(for a in "$@"; do
    if [[ $a == "$out" ]]; then echo OUT; else printf '%s\n' "$a"; [[ -f $a ]] && cat -- "$a"; fi
  done | sha256sum)
  key=$LM_TEST_CACHE/${key:0:32}
  if [[ -f $key ]]; then cp -- "$key" "$out"; return; fi
  "$@" || return
  mkdir -p "$LM_TEST_CACHE" && cp -- "$out" "$key.$$.tmp" && mv -- "$key.$$.tmp" "$key"
}

# expect_exit CODE DESCRIPTION -- command...   (stderr is kept in $T/err, stdout in $T/out)
expect_exit() {
  local want=$1 what=$2
  shift 3
  "$@" > "$T/out" 2> "$T/err"
  local got=$?
  if [[ $got == "$want" ]]; then pass; else fail "$what: exit $got, expected $want; stderr: $(head -c 300 "$T/err")"; fi
}

# expect_err REGEX DESCRIPTION: the last command's stderr is one line matching REGEX.
expect_err() {
  local lines
  lines=$(wc -l < "$T/err")
  if [[ $lines -ne 1 && ! ( $lines -eq 2 && $(tail -1 "$T/err") == "try '"*"--help'" ) ]]; then
    fail "$2: expected one error line, got $lines: $(head -c 300 "$T/err")"
  elif grep -Eq -- "$1" "$T/err"; then pass
  else fail "$2: stderr '$(head -c 300 "$T/err")' does not match /$1/"; fi
}

# same_files A B DESCRIPTION
same_files() {
  if cmp -s "$1" "$2"; then pass; else fail "$3: $1 and $2 differ: $(cmp "$1" "$2" 2>&1 | head -1)"; fi
}

# no_leftovers DIR DESCRIPTION: no temp files remain in DIR.
no_leftovers() {
  if compgen -G "$1/.*.tmp" > /dev/null; then fail "$2: temp files left in $1"; else pass; fi
}

# best_weights_written WRITTEN BEST_REPORTED BEST_STEP METRICS: with --patience, the written
# model's validation loss WRITTEN (measured again) is the best the run reported, the lowest of the
# run's validations in its --metrics file, at BEST_STEP, and below the last one.
best_weights_written() {
  local written=$1 reported=$2 best_step=$3 metrics=$4
  [[ $written == "$reported" ]] && pass ||
    fail "the written model's validation loss $written is not the best reported, $reported"
  grep -o '"step":[0-9]*,.*"valid_loss":[0-9.e+-]*' "$metrics" | sed 's/"step":\([0-9]*\),.*"valid_loss":/\1 /' > valid.tsv
  awk -v w="$written" -v b="$best_step" 'NR == 1 || $2 < min { min = $2; at = $1 } { last = $2 }
    END { exit !((min - w) ^ 2 < 1e-12 && at == b && last > w + 1e-6) }' valid.tsv && pass ||
    fail "the written model's validation loss $written is not the lowest of the run, at step $best_step, below the last: $(tail -3 valid.tsv)"
}

# interrupt_run METRICS ERR COMMAND...: runs COMMAND (a training run writing --metrics METRICS)
# in the background, sends SIGINT once METRICS has 5 lines, checks that it exits 130, and sets
# `stopped` to the step it says it stopped at (empty if it said none).
interrupt_run() {
  local metrics=$1 err=$2 pid rc
  shift 2
  "$@" > /dev/null 2> "$err" &
  pid=$!
  for _ in $(seq 500); do [[ -s $metrics ]] && (( $(wc -l < "$metrics" 2>/dev/null || echo 0) >= 5 )) && break; sleep 0.02; done
  kill -INT $pid
  wait $pid
  rc=$?
  [[ $rc == 130 ]] && pass || fail "SIGINT exit $rc, expected 130: $(cat "$err")"
  stopped=$(grep -o 'interrupted at step [0-9]*' "$err" | grep -o '[0-9]*$')
}

# same_resumed_steps FULL REST DESCRIPTION: the metrics lines REST of a run resumed after
# step $stopped equal the uninterrupted run's (FULL) from the next step on, timings aside.
same_resumed_steps() {
  tail -n +"$((stopped + 1))" "$1" | sed 's/"tokens_per_s".*"skipped"/"skipped"/' > want.jsonl
  sed 's/"tokens_per_s".*"skipped"/"skipped"/' "$2" > got.jsonl
  same_files want.jsonl got.jsonl "$3"
}

finish() {
  echo "$n_pass passed, $n_fail failed"
  [[ $n_fail -eq 0 ]]
}

# A deterministic English-like corpus: LINES lines from a fixed word list and LCG.
make_corpus() {
  awk -v lines="$1" 'BEGIN {
    split("the of and to in a is that for it as was with be by on not he I this are or his from at which but have an they you were her she there one all we can their has been if more when will would who so no time people year good new first last long great little own other old right big high different small large next early young important few public bad same able jury said county election city committee law state government president house court board week money report police school music art water market family war church science story language history world night morning evening river mountain garden model token piece train value data number system 1961 42 3.14 café naïve résumé Zürich 東京 😀", w, " ")
    n = length(w); x = 12345
    for (i = 0; i < lines; i++) {
      len = 4 + (i * 7) % 13; s = ""
      for (j = 0; j < len; j++) { x = (x * 1103515245 + 12345) % 2147483648; s = s (j ? " " : "") w[1 + int(x / 65536) % n] }
      if (i % 5 == 0) s = toupper(substr(s, 1, 1)) substr(s, 2) "."
      print s
    }
  }'
}
