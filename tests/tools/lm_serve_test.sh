#!/usr/bin/env bash
# lm-serve end to end on loopback with a tiny trained model: greedy and seeded completions equal
# lm-generate's (alone and decoded together), the raw SSE framing, OpenAI-shaped errors and their
# statuses, the API key, 503 when the queue is full, the official openai Node client, ~200
# malformed requests and slow clients that leave it serving, and SIGTERM/SIGINT draining with
# exit 143/130. Every wait is bounded.
source "$(dirname "$0")/lib.sh"
lean=${LM_TEST_LEAN:-0}

make_corpus 3000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
fixture m.gguf lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 2 --embd 64 --heads 4 --kv-heads 2 \
  --ff 128 --batch 8 --warmup 5 --lr 3e-3 --steps 150 -t 2 -o m.gguf > /dev/null || fail "training the test model"

# JSON field of stdin: js EXPR, with the parsed body as `j` (node is what the openai client runs on).
js() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const v=('"$1"');process.stdout.write(typeof v=="string"?v:JSON.stringify(v))})'; }

servers=()
trap 'for p in "${servers[@]}"; do kill -9 "$p" 2> /dev/null; done; rm -rf "$T"' EXIT
# start_server NAME [options]: starts lm-serve on a free port; sets $pid and $url.
start_server() {
  local name=$1
  shift
  lm-serve -m m.gguf --port 0 -t 1 "$@" > "$name.out" 2> "$name.err" &
  pid=$!
  servers+=("$pid")
  for _ in $(seq 200); do
    grep -q "listening on" "$name.err" 2> /dev/null && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  local port
  port=$(sed -n 's/^lm-serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$name.err")
  [[ -n $port ]] || { fail "$name: lm-serve did not start: $(head -c 300 "$name.err")"; return 1; }
  url=http://127.0.0.1:$port
}
# stop_server SIGNAL: signals $pid and waits (at most 20 s) for its exit status in $status.
stop_server() {
  kill -"$1" "$pid"
  for _ in $(seq 400); do kill -0 "$pid" 2> /dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2> /dev/null; then status=timeout; kill -9 "$pid"; else wait "$pid"; status=$?; fi
}
# post PATH BODY: a POST with curl; status in $code, body in body.json.
post() { code=$(curl -s -m 20 -o body.json -w '%{http_code}' "$url$1" -H 'Content-Type: application/json' "${auth[@]}" --data-binary "$2"); }
auth=()
# expect_api_error STATUS TYPE PARAM WHAT: the last response is that error object.
expect_api_error() {
  local got
  got=$(js '[j.error.type, j.error.param === null ? "" : j.error.param, typeof j.error.message].join(" ")' < body.json 2> /dev/null)
  [[ $code == "$1" && $got == "$2 $3 string" ]] && pass || fail "$4: status $code, body $(head -c 300 body.json)"
}

# ---- the reference texts from lm-generate ----
lm-generate -m m.gguf -t 1 -p "The jury" -n 24 --greedy > greedy.txt || fail "lm-generate"
greedy=$(cat greedy.txt)
lm-generate -m m.gguf -t 1 -p "The jury" -n 24 -s 7 > seeded.txt
[[ -n $greedy ]] && pass || fail "lm-generate's greedy text is empty"

start_server main --parallel 4 --queue 12 --chat-template chatml -v || { finish; exit; }

# ---- health, models, completions equal to lm-generate ----
code=$(curl -s -m 10 -o body.json -w '%{http_code}' "$url/health")
[[ $code == 200 && $(js j.status < body.json) == ok ]] && pass || fail "/health: $code $(cat body.json)"
code=$(curl -s -m 10 -o body.json -w '%{http_code}' "$url/v1/models")
[[ $code == 200 && $(js 'j.data[0].id + " " + j.object' < body.json) == "m.gguf list" ]] && pass || fail "/v1/models: $code $(cat body.json)"
post /v1/completions '{"model":"m.gguf","prompt":"The jury","max_tokens":24,"temperature":0}'
[[ $code == 200 && $(js 'j.choices[0].text' < body.json) == "$greedy" ]] && pass ||
  fail "greedy completion '$(js 'j.choices[0].text' < body.json)' is not lm-generate's '$greedy'"
[[ $(js '[j.object, j.choices[0].finish_reason, j.usage.completion_tokens, j.usage.total_tokens - j.usage.prompt_tokens].join(" ")' < body.json) == "text_completion length 24 24" ]] &&
  pass || fail "completion fields: $(head -c 400 body.json)"
post /v1/completions '{"prompt":"The jury","max_tokens":24,"seed":7}'
[[ $(js 'j.choices[0].text' < body.json) == "$(cat seeded.txt)" ]] && pass ||
  fail "seed 7 gives '$(js 'j.choices[0].text' < body.json)', lm-generate -s 7 '$(cat seeded.txt)'"

# Decoded together: six prompts at once, each answer lm-generate's for its prompt.
prompts=("The jury" "It was" "A man said" "The county" "Water and" "Music")
for i in "${!prompts[@]}"; do
  lm-generate -m m.gguf -t 1 -p "${prompts[$i]}" -n 20 --greedy > "want$i.txt"
  curl -s -m 20 "$url/v1/completions" -d "{\"prompt\":\"${prompts[$i]}\",\"max_tokens\":20,\"temperature\":0}" > "got$i.json" &
done
wait_curls() { for p in $(jobs -p); do [[ " ${servers[*]} " == *" $p "* ]] || wait "$p"; done; }
wait_curls
for i in "${!prompts[@]}"; do
  [[ $(js 'j.choices[0].text' < "got$i.json") == "$(cat "want$i.txt")" ]] && pass ||
    fail "together, '${prompts[$i]}' gave '$(js 'j.choices[0].text' < "got$i.json")', alone '$(cat "want$i.txt")'"
done
# n choices and an array of prompts: prompt i's choice j is index i*n+j; usage counts each prompt once.
post /v1/completions '{"prompt":["The jury","It was"],"n":2,"max_tokens":5,"temperature":0}'
[[ $(js 'j.choices.map(c => c.index).join(",") + " " + (j.choices[0].text === j.choices[1].text)' < body.json) == "0,1,2,3 true" ]] &&
  pass || fail "n=2 with two prompts: $(head -c 400 body.json)"

# ---- streaming: the raw server-sent events ----
curl -s -N -m 20 -D stream.headers "$url/v1/completions" -d '{"prompt":"The jury","max_tokens":24,"temperature":0,"stream":true}' > stream.txt
grep -qi '^content-type: text/event-stream' stream.headers && pass || fail "stream content type: $(cat stream.headers)"
# Every event is one "data: " line and a blank line; the last is [DONE].
awk 'NR % 2 == 1 && !/^data: / { bad = 1 } NR % 2 == 0 && $0 != "" { bad = 1 } END { exit bad || NR % 2 }' stream.txt &&
  pass || fail "SSE framing: $(head -c 300 stream.txt)"
[[ $(tail -2 stream.txt | head -1) == "data: [DONE]" && $(grep -c '^data: \[DONE\]$' stream.txt) == 1 ]] && pass ||
  fail "the stream does not end with one data: [DONE]: $(tail -c 200 stream.txt)"
streamed=$(grep '^data: {' stream.txt | sed 's/^data: //' | node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    let t = "", fin = [];
    for (const l of s.split("\n").filter(Boolean)) { const j = JSON.parse(l); t += j.choices[0].text; if (j.choices[0].finish_reason) fin.push(j.choices[0].finish_reason); }
    process.stdout.write(t + "|" + fin.join(","));
  })')
[[ $streamed == "$greedy|length" ]] && pass || fail "streamed text|finish '$streamed', expected '$greedy|length'"

# ---- chat ----
post /v1/chat/completions '{"messages":[{"role":"user","content":"The jury"}],"max_tokens":6,"temperature":0}'
[[ $code == 200 && $(js '[j.object, j.choices[0].message.role, j.usage.completion_tokens].join(" ")' < body.json) == "chat.completion assistant 6" ]] &&
  pass || fail "chat: $code $(head -c 300 body.json)"
chat=$(js 'j.choices[0].message.content' < body.json)
# The template's text, through lm-generate: the same reply.
printf '<|im_start|>user\nThe jury<|im_end|>\n<|im_start|>assistant\n' > chat_prompt.txt
lm-generate -m m.gguf -t 1 -f chat_prompt.txt --parse-special -n 6 --greedy > chat_want.txt
[[ $chat == "$(cat chat_want.txt)" ]] && pass || fail "chat reply '$chat' is not lm-generate's on the ChatML text '$(cat chat_want.txt)'"
curl -s -N -m 20 "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"The jury"}],"max_tokens":6,"temperature":0,"stream":true}' > chat_stream.txt
[[ $(grep -c '^data: ' chat_stream.txt) -ge 3 && $(grep '^data: {' chat_stream.txt | head -1) == *'"delta":{"role":"assistant"'* ]] &&
  pass || fail "chat stream: $(head -c 300 chat_stream.txt)"

# ---- embeddings: lm-eval embed --normalize's vectors ----
printf 'The jury said\nIt was\n' > emb.txt
lm-eval embed -m m.gguf -t 1 --normalize --json emb.txt > emb_want.json
post /v1/embeddings '{"model":"m.gguf","input":["The jury said","It was"]}'
node -e '
  const fs = require("fs"), got = JSON.parse(fs.readFileSync("body.json", "utf8"));
  const want = fs.readFileSync("emb_want.json", "utf8").trim().split("\n").map(l => JSON.parse(l).embedding);
  let ok = got.object === "list" && got.data.length === 2 && got.usage.prompt_tokens > 0;
  for (const [i, w] of want.entries())
    ok = ok && got.data[i].index === i && got.data[i].embedding.length === w.length &&
         w.every((x, c) => Math.abs(x - got.data[i].embedding[c]) <= 1e-5);
  process.exit(ok ? 0 : 1)' && pass || fail "embeddings: $(head -c 300 body.json)"
post /v1/embeddings '{"input":"The jury said","encoding_format":"base64"}'
node -e '
  const fs = require("fs"), got = JSON.parse(fs.readFileSync("body.json", "utf8"));
  const want = JSON.parse(fs.readFileSync("emb_want.json", "utf8").split("\n")[0]).embedding;
  const b = Buffer.from(got.data[0].embedding, "base64"), v = [];
  for (let i = 0; i < b.length; i += 4) v.push(b.readFloatLE(i));
  process.exit(v.length === want.length && want.every((x, c) => Math.abs(x - v[c]) <= 1e-5) ? 0 : 1)' && pass ||
  fail "base64 embeddings: $(head -c 300 body.json)"
post /v1/embeddings '{"input":"x","dimensions":3}'
expect_api_error 400 invalid_request_error dimensions "embeddings of other dimensions"
post /v1/embeddings '{"input":[[1,2]]}'
expect_api_error 400 invalid_request_error input "token-id embedding input"

# ---- errors: OpenAI's objects and statuses ----
post /v1/completions '{"prompt":'
expect_api_error 400 invalid_request_error "" "bad JSON"
post /v1/completions '{"prompt":"x","max_tokens":-5}'
expect_api_error 400 invalid_request_error max_tokens "negative max_tokens"
post /v1/completions '{"prompt":"x","temperature":"hot"}'
expect_api_error 400 invalid_request_error temperature "a string temperature"
post /v1/completions '{"prompt":"x","model":"gpt-4"}'
expect_api_error 404 invalid_request_error model "an unknown model"
[[ $(js j.error.code < body.json) == model_not_found ]] && pass || fail "unknown model code: $(cat body.json)"
post /v1/completions "{\"prompt\":\"$(printf 'jury %.0s' $(seq 100))\"}"
expect_api_error 400 invalid_request_error prompt "a prompt longer than the context"
[[ $(js j.error.code < body.json) == context_length_exceeded ]] && pass || fail "context code: $(cat body.json)"
post /v1/chat/completions '{"messages":[{"role":"tool","content":"x"}]}'
expect_api_error 400 invalid_request_error "messages[0].role" "a tool message"
code=$(curl -s -m 10 -o body.json -w '%{http_code}' "$url/v1/nothing")
expect_api_error 404 invalid_request_error "" "an unknown path"
head -c 2000000 /dev/zero | tr '\0' 'a' > big.txt
code=$(curl -s -m 20 -o body.json -w '%{http_code}' "$url/v1/completions" --data-binary @big.txt)
expect_api_error 413 invalid_request_error "" "a 2 MB body"
post /v1/completions '{"prompt":"The jury","max_tokens":1,"an_unknown_field":{"x":[1,2]}}'
[[ $code == 200 ]] && pass || fail "unknown fields: $code $(cat body.json)"

# ---- a client that goes away cancels its request (when it left before the answer was ready) ----
curl -s -m 0.02 -o /dev/null "$url/v1/completions" -d '{"prompt":"The jury","max_tokens":60,"n":16,"temperature":0.9}'
if [[ $? == 28 ]]; then
  for _ in $(seq 40); do grep -q "the client went away; cancelled" main.err && break; sleep 0.05; done
  grep -q "the client went away; cancelled" main.err && pass || fail "a client gone after 20 ms was not noticed: $(tail -3 main.err)"
  for _ in $(seq 40); do [[ $(curl -s -m 5 "$url/health" | js j.in_flight) == 0 ]] && break; sleep 0.05; done
  [[ $(curl -s -m 5 "$url/health" | js j.in_flight) == 0 ]] && pass || fail "the cancelled request's sequences are still in flight"
else
  echo "note: 16 x 60 tokens were ready within 20 ms; the cancellation check did not run" >&2
fi

# ---- SIGTERM while a stream is running: it finishes, new connections are refused, exit 143 ----
curl -s -N -m 20 "$url/v1/completions" -d '{"prompt":"The jury","max_tokens":60,"temperature":0,"stream":true}' > drain.txt &
curl_pid=$!
expect_exit 1 "a port in use" -- lm-serve -m m.gguf -t 1 --chat-template chatml --port "${url##*:}"
expect_err "^lm-serve: 127\.0\.0\.1:${url##*:}: cannot listen there" "a port in use"
sleep 0.1
stop_server TERM
wait "$curl_pid"
[[ $status == 143 ]] && pass || fail "SIGTERM: exit $status, expected 143; $(tail -3 main.err)"
[[ $(tail -2 drain.txt | head -1) == "data: [DONE]" ]] && pass || fail "the stream in flight at SIGTERM was cut: $(tail -c 200 drain.txt)"
curl -s -m 5 "$url/health" > /dev/null && fail "the server still answers after exiting" || pass

# ---- the API key: Bearer, from a file; /health needs none ----
printf 'sesame\n' > key.txt
start_server keyed --api-key-file key.txt --chat-template chatml || { finish; exit; }
post /v1/completions '{"prompt":"The jury","max_tokens":2}'
expect_api_error 401 invalid_request_error "" "no API key"
auth=(-H 'Authorization: Bearer sesamE')
post /v1/completions '{"prompt":"The jury","max_tokens":2}'
expect_api_error 401 invalid_request_error "" "a wrong API key"
auth=(-H 'Authorization: Bearer sesame')
post /v1/completions '{"prompt":"The jury","max_tokens":2}'
[[ $code == 200 ]] && pass || fail "the right API key: $code $(cat body.json)"
auth=()
[[ $(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url/health") == 200 ]] && pass || fail "/health asked for the key"
# A refused request's unread body does not spoil the connection: the next request on it works.
codes=$(curl -s -m 10 -o /dev/null -w '%{http_code} ' "$url/v1/completions" -H 'Authorization: Bearer no' -d '{"prompt":"The jury","max_tokens":2}' \
  --next -s -m 10 -o body.json -w '%{http_code}' "$url/v1/completions" -H 'Authorization: Bearer sesame' -d '{"prompt":"The jury","max_tokens":2}')
[[ $codes == "401 200" ]] && pass || fail "401 then 200 on one connection: $codes $(cat body.json)"

# ---- the official openai Node client ----
if [[ -d $LM_SRC/tests/node/node_modules/openai ]]; then
  NODE_PATH=$LM_SRC/tests/node/node_modules timeout 60 node "$LM_SRC/tests/node/openai_client.mjs" "$url/v1" sesame m.gguf "$greedy" > node.txt 2>&1 &&
    pass || fail "the openai Node client: $(head -c 1500 node.txt)"
else
  fail "the openai npm package is not installed in tests/node (run scripts/setup.sh, or npm ci --prefix tests/node)"
fi
stop_server INT
[[ $status == 130 ]] && pass || fail "SIGINT: exit $status, expected 130"

# ---- a full queue: 503 with Retry-After, the others answered completely ----
start_server busy --parallel 1 --queue 0 || { finish; exit; }
# (This model has no chat template and none was named: chat is refused, completions served.)
grep -q "warning: chat is not available: .*--chat-template" busy.err && pass || fail "no warning without a chat template: $(cat busy.err)"
post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}]}'
expect_api_error 400 invalid_request_error messages "chat without a template"
n_busy=$((lean ? 24 : 48))
: > busy.cfg
for i in $(seq "$n_busy"); do
  [[ -s busy.cfg ]] && echo next >> busy.cfg  # curl's separator between requests
  printf 'url = "%s/v1/completions"\ndata = "{\\"prompt\\":\\"The jury\\",\\"max_tokens\\":40,\\"temperature\\":0}"\noutput = "busy%d.json"\ndump-header = "busy%d.h"\nwrite-out = "%%{http_code} busy%d\\n"\n' "$url" "$i" "$i" "$i" >> busy.cfg
done
curl -s --no-progress-meter -m 60 -Z --parallel-immediate --parallel-max 64 -K busy.cfg > busy.codes
n200=$(grep -c '^200 ' busy.codes)
n503=$(grep -c '^503 ' busy.codes)
[[ $((n200 + n503)) == "$n_busy" && $n200 -ge 1 ]] && pass || fail "busy: $(sort busy.codes | uniq -c | head)"
if ((n503 > 0)); then
  f=$(grep '^503 ' busy.codes | head -1 | cut -d' ' -f2)
  [[ $(js 'j.error.type + " " + j.error.code' < "$f.json") == "server_error server_busy" ]] && pass || fail "503 body: $(cat "$f.json")"
  # every 503 carries Retry-After (its own headers, from the same burst)
  no_retry=0
  for f in $(grep '^503 ' busy.codes | cut -d' ' -f2); do
    grep -qi '^retry-after: 1' "$f.h" || no_retry=$((no_retry + 1))
  done
  [[ $no_retry == 0 ]] && pass || fail "$no_retry of $n503 answers 503 have no Retry-After header"
else
  echo "note: $n_busy requests at once never filled --parallel 1 --queue 0; the 503 checks did not run" >&2
fi
bad_text=0
for f in $(grep '^200 ' busy.codes | cut -d' ' -f2); do
  [[ $(js 'j.choices[0].text' < "$f.json") == "$(lm-generate -m m.gguf -t 1 -p 'The jury' -n 40 --greedy 2> /dev/null)" ]] || bad_text=$((bad_text + 1))
  break
done
[[ $bad_text == 0 ]] && pass || fail "a busy-server answer is not the greedy text"
stop_server TERM
[[ $status == 143 ]] && pass || fail "SIGTERM after the busy burst: exit $status"

# ---- abuse: malformed requests and slow clients leave it serving, with bounded memory ----
start_server abuse --parallel 2 --queue 4 --read-timeout 1s --chat-template chatml || { finish; exit; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
rss0=$(rss)
printf '{"prompt":"\xff\xfe bad utf-8"}' > badutf8.json
printf '{"messages":[{"role":"user","content":"\xc3\x28"}]}' > badutf8chat.json
printf '%*s' 100000 '' | tr ' ' '[' > deep.json
head -c 10485760 /dev/zero | tr '\0' '{' > ten_mb.json
bodies=('{' '}' '[]' 'null' '"x"' '{"prompt":}' '{"prompt":"x",}' 'nul' '{"prompt":"x"} {"prompt":"y"}'
  '{"prompt":"x","max_tokens":1e400}' '{"prompt":"x","max_tokens":99999999999999999999999}'
  '{"prompt":"x","max_tokens":-1}' '{"prompt":"x","max_tokens":-99999999999}' '{"prompt":"x","temperature":1e308}'
  '{"prompt":"x","temperature":-0.1}' '{"prompt":"x","n":1000000}' '{"prompt":"x","top_k":-1}'
  '{"prompt":"x","logprobs":100}' '{"prompt":"x","stop":{"a":1}}' '{"prompt":[[-1]]}' '{"prompt":[1e9]}'
  '{"prompt":5}' '{"prompt":{"text":"x"}}' '{"prompt":[]}' '{"messages":"hi"}' '{"messages":[{"role":5}]}'
  '{"prompt":"x","seed":"abc"}' '{"prompt":"x","stream":"yes"}' '{"prompt":"\ud800"}' '{"prompt":"x","max_tokens":0.5}')
: > abuse.cfg
n_rounds=$((lean ? 2 : 6))
count=0
for _ in $(seq "$n_rounds"); do
  for b in "${bodies[@]}"; do
    for ep in completions chat/completions; do
      # curl's config strings: backslashes and quotes escaped
      esc=${b//\\/\\\\}
      [[ -s abuse.cfg ]] && echo next >> abuse.cfg
      printf 'url = "%s/v1/%s"\ndata-binary = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$url" "$ep" "${esc//\"/\\\"}" >> abuse.cfg
      count=$((count + 1))
    done
  done
  for f in badutf8.json badutf8chat.json deep.json; do
    echo next >> abuse.cfg
    printf 'url = "%s/v1/completions"\ndata-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$url" "$f" >> abuse.cfg
    count=$((count + 1))
  done
done
curl -s --no-progress-meter -m 60 -Z --parallel-max 8 -K abuse.cfg > abuse.codes
[[ $(wc -l < abuse.codes) == "$count" && $(grep -cv '^4[0-9][0-9]$' abuse.codes) == 0 ]] && pass ||
  fail "abuse: $count malformed requests got: $(sort abuse.codes | uniq -c | tr '\n' ' ')"
code=$(curl -s -m 30 -o body.json -w '%{http_code}' "$url/v1/completions" --data-binary @ten_mb.json)
[[ $code == 413 || $code == 000 ]] && pass || fail "a 10 MB body: $code"
# Not HTTP at all, and a header line over 8 KiB.
exec 3<> "/dev/tcp/127.0.0.1/${url##*:}"
printf 'GARBAGE\r\n\r\n' >&3
timeout 5 head -c 12 <&3 > garbage.txt
exec 3>&-
[[ $(cat garbage.txt) == "HTTP/1.1 400" ]] && pass || fail "a garbage request line: '$(cat garbage.txt)'"
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url/health" -H "X-Long: $(printf '%*s' 9000 '' | tr ' ' x)")
[[ $code == 4* ]] && pass || fail "a 9000-byte header: $code"
# Slow clients: headers one byte at a time, and a body that never comes, are cut at --read-timeout
# while the server answers others.
for i in 1 2 3; do
  ( exec 3<> "/dev/tcp/127.0.0.1/${url##*:}"
    for c in P O S T ' ' / v 1; do printf '%s' "$c" >&3 2> /dev/null || break; sleep 0.4; done
    cat <&3 > /dev/null 2>&1 ) &
done
( exec 3<> "/dev/tcp/127.0.0.1/${url##*:}"
  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"prompt":' >&3
  timeout 10 cat <&3 > slow_body.txt 2>&1; echo "$?" > slow_body.rc ) &
slow_body=$!
sleep 0.3
t0=$(date +%s%N)
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/health")
t1=$(date +%s%N)
[[ $code == 200 && $(( (t1 - t0) / 1000000 )) -lt 2000 ]] && pass || fail "/health during slow clients: $code in $(( (t1 - t0) / 1000000 )) ms"
wait "$slow_body"
[[ $(cat slow_body.rc) == 0 ]] && pass || fail "a request whose body never came was not cut at --read-timeout"
wait_curls
# Still serving: health and a completion equal to lm-generate's; memory did not grow with the abuse.
[[ $(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url/health") == 200 ]] && pass || fail "/health after the abuse"
post /v1/completions '{"prompt":"The jury","max_tokens":24,"temperature":0}'
[[ $(js 'j.choices[0].text' < body.json) == "$greedy" ]] && pass || fail "the completion after the abuse: $(head -c 300 body.json)"
rss1=$(rss)
(( rss1 - rss0 < 65536 )) && pass || fail "RSS grew from $rss0 kB to $rss1 kB with the abuse"
stop_server TERM
[[ $status == 143 ]] && pass || fail "SIGTERM after the abuse: exit $status"

# No sanitizer report from any of the servers (the ASan/UBSan pass).
for f in main keyed busy abuse; do
  grep -q "Sanitizer\|runtime error" "$f.err" && fail "$f: $(grep -m3 "Sanitizer\|runtime error" "$f.err")" || pass
done

# ---- usage errors ----
expect_exit 2 "unknown chat template" -- lm-serve -m m.gguf --chat-template nosuch --port 0
expect_err 'nosuch' "unknown chat template"
expect_exit 2 "both key options" -- lm-serve -m m.gguf --api-key a --api-key-file key.txt --port 0
expect_exit 1 "missing model" -- lm-serve -m nosuch.gguf --port 0
expect_err '^lm-serve: nosuch.gguf' "missing model"

finish
