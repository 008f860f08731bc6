#!/usr/bin/env bash
# lm-serve under load (issue 24): CLIENTS concurrent streaming clients x REQUESTS greedy
# completions each (default 32 x 20, MAX_TOKENS 64 new tokens), against lm-serve --parallel P
# for each P given (default "8 1"). Every answer is checked against lm-generate --greedy's text
# for its prompt (none lost, cut or mixed up); prints per P the requests answered, wrong and
# failed, p50/p99 latency, time to first token and total completion tokens/s, then the
# throughput of the first P over the last. Exit 1 if any answer was wrong or missing.
# Run it alone on an idle machine: it takes every core it is given. With LLAMA_SERVER=PATH (a
# llama.cpp build's llama-server) the same load also runs against it, on the same file.
# Usage: bench/serve_load.sh [-m MODEL.gguf] [-c CLIENTS] [-r REQUESTS] [-n MAX_TOKENS]
#                            [-p "8 1"] [-t THREADS] [-b BUILD_DIR]
# Without -m it trains the tiny model of tests/tools/lm_serve_test.sh (a smoke test, not a
# measurement); the issue's figures are for the demo's small model (scripts/demo.sh).
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
model="" clients=32 requests=20 max_tokens=64 parallels="8 1" threads=0 build=$src/build
while getopts "m:c:r:n:p:t:b:" o; do
  case $o in
    m) model=$(realpath "$OPTARG") ;; c) clients=$OPTARG ;; r) requests=$OPTARG ;; n) max_tokens=$OPTARG ;;
    p) parallels=$OPTARG ;; t) threads=$OPTARG ;; b) build=$(realpath "$OPTARG") ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
export LM_BIN=${LM_BIN:-$(cd "$build/tools" && pwd)} LM_SRC=$src
source "$src/tests/tools/lib.sh"  # a temp work directory, removed at exit; make_corpus
command -v node > /dev/null || { echo "serve_load.sh: node is needed (apt-get install nodejs)" >&2; exit 1; }

if [[ -z $model ]]; then
  make_corpus 3000 > corpus.txt
  lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
  lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 2 --embd 64 --heads 4 --kv-heads 2 \
    --ff 128 --batch 8 --warmup 5 --lr 3e-3 --steps 150 -t 2 -o tiny.gguf > /dev/null || exit 1
  model=$T/tiny.gguf
fi

# The expected answers: 16 prompts, each lm-generate's greedy text.
prompts=("The jury said" "It was" "A man said" "The county" "Water and" "Music" "The city committee" "In the morning"
         "The president" "Public school" "The old river" "Science and art" "The market" "A long story" "Last week" "The world")
{
  echo "["
  for i in "${!prompts[@]}"; do
    text=$(lm-generate -m "$model" -t "$threads" -p "${prompts[$i]}" -n "$max_tokens" --greedy -q --json |
      sed -n 's/^{"event":"end","line":0,"text":\("\([^"\\]\|\\.\)*"\),.*/\1/p')
    printf '%s{"prompt": "%s", "text": %s}\n' "$([[ $i -gt 0 ]] && echo ,)" "${prompts[$i]}" "$text"
  done
  echo "]"
} > expected.json

printf '%-10s %9s %5s %6s %6s %9s %9s %12s %8s %10s\n' parallel requests ok wrong failed p50_ms p99_ms first_tok_ms tokens tokens/s
first_rate="" last_rate="" bad=0
for p in $parallels; do
  lm-serve -m "$model" --port 0 -t "$threads" --parallel "$p" --queue "$clients" > serve.out 2> serve.err &
  pid=$!
  port=""
  for _ in $(seq 600); do
    port=$(sed -n 's/^lm-serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' serve.err)
    [[ -n $port ]] && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "serve_load.sh: lm-serve did not start: $(head -c 300 serve.err)" >&2; kill "$pid"; exit 1; }
  node "$src/bench/serve_load.mjs" "http://127.0.0.1:$port" "$clients" "$requests" "$max_tokens" expected.json > load.json
  kill -TERM "$pid"
  wait "$pid"
  node -e '
    const j = JSON.parse(require("fs").readFileSync("load.json", "utf8"));
    console.log([process.argv[1].padEnd(10), String(j.requests).padStart(9), String(j.ok).padStart(5),
      String(j.wrong).padStart(6), String(j.failed).padStart(6), String(j.p50_ms).padStart(9), String(j.p99_ms).padStart(9),
      String(j.first_token_p50_ms).padStart(12), String(j.tokens).padStart(8), String(j.tokens_per_s).padStart(10)].join(" "));
    for (const e of j.examples) console.log("  " + JSON.stringify(e));' "$p"
  rate=$(node -e 'const j = JSON.parse(require("fs").readFileSync("load.json", "utf8")); console.log(j.tokens_per_s)')
  node -e 'const j = JSON.parse(require("fs").readFileSync("load.json", "utf8")); process.exit(j.ok === j.requests ? 0 : 1)' || bad=1
  [[ -z $first_rate ]] && first_rate=$rate
  last_rate=$rate
done
# llama.cpp's llama-server on the same file and load, when LLAMA_SERVER names its binary: -np P
# slots of 256 tokens, continuous batching (its default). Its answers are checked against
# lm-generate's too; a "wrong" there is a token where the two greedy decodings part (reported,
# not an error).
if [[ -n ${LLAMA_SERVER:-} ]]; then
  for p in $parallels; do
    lport=$((18000 + RANDOM % 2000))
    "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$lport" -np "$p" -c $((256 * p)) -t "$threads" \
      > llama.out 2> llama.err &
    lpid=$!
    for _ in $(seq 600); do
      curl -sf "http://127.0.0.1:$lport/health" > /dev/null 2>&1 && break
      kill -0 "$lpid" 2> /dev/null || break
      sleep 0.1
    done
    node "$src/bench/serve_load.mjs" "http://127.0.0.1:$lport" "$clients" "$requests" "$max_tokens" expected.json > load.json ||
      { echo "serve_load.sh: llama-server run failed: $(tail -c 300 llama.err)" >&2; }
    kill -TERM "$lpid"
    wait "$lpid" 2> /dev/null
    node -e '
      const j = JSON.parse(require("fs").readFileSync("load.json", "utf8"));
      console.log([("llama " + process.argv[1]).padEnd(10), String(j.requests).padStart(9), String(j.ok).padStart(5),
        String(j.wrong).padStart(6), String(j.failed).padStart(6), String(j.p50_ms).padStart(9), String(j.p99_ms).padStart(9),
        String(j.first_token_p50_ms).padStart(12), String(j.tokens).padStart(8), String(j.tokens_per_s).padStart(10)].join(" "));' "$p"
  done
fi
set -- $parallels
if (($# > 1)); then
  awk -v a="$first_rate" -v b="$last_rate" -v p="$1" -v q="${!#}" 'BEGIN { if (b > 0) printf "--parallel %s: %.2fx the tokens/s of --parallel %s\n", p, a / b, q }'
fi
exit $bad
