#!/usr/bin/env bash
# lm-generate end to end on a tiny trained model: determinism, --each-line independence of
# lines, stop strings, JSON events, context policies, other tensor types and vocabulary-only
# tokenizers, and one-line errors with their exit codes (docs/reliability.md F5-F7).
source "$(dirname "$0")/lib.sh"
W=$LM_TEST_BIN/lm_test_write_gguf

make_corpus 3000 > corpus.txt
lm-tokenize train -q --vocab-size 400 -o tok.model corpus.txt
fixture m.gguf lm-train -q --tokenizer tok.model --data corpus.txt --context 64 --layers 2 --embd 64 --heads 4 --kv-heads 2 \
  --ff 128 --batch 8 --warmup 5 --lr 3e-3 --steps 300 -t 2 -o m.gguf > /dev/null || fail "training the test model"
gen=(lm-generate -m m.gguf -t 1)

# ---- determinism and output ----
expect_exit 0 "greedy" -- "${gen[@]}" -p "The jury" -n 24 --greedy
cp "$T/out" greedy.txt
[[ -s greedy.txt ]] && pass || fail "greedy output is empty"
expect_exit 0 "greedy again" -- "${gen[@]}" -p "The jury" -n 24 --greedy -t 2
same_files "$T/out" greedy.txt "greedy output does not depend on runs or threads"
expect_exit 0 "seeded sampling" -- "${gen[@]}" -p "The jury" -n 24 -s 7
cp "$T/out" s7.txt
expect_exit 0 "seeded sampling again" -- "${gen[@]}" -p "The jury" -n 24 -s 7
same_files "$T/out" s7.txt "the same seed gives the same text"
expect_exit 0 "prompt from stdin" -- sh -c "printf 'The jury' | ${gen[*]} -n 24 -s 7"
same_files "$T/out" s7.txt "stdin and -p give the same completion"
expect_exit 0 "-o" -- "${gen[@]}" -p "The jury" -n 24 -s 7 -o o.txt
same_files o.txt s7.txt "-o writes what stdout gets"
expect_exit 0 "--echo" -- "${gen[@]}" -p "The jury" -n 24 -s 7 --echo
[[ $(cat "$T/out") == "The jury$(cat s7.txt)" ]] && pass || fail "--echo: $(head -c 200 "$T/out")"

# ---- stop strings: the text ends right before the first occurrence ----
full=$(cat greedy.txt)
stop=${full:6:3}
expect_exit 0 "--stop" -- "${gen[@]}" -p "The jury" -n 24 --greedy --stop "$stop"
want=${full%%"$stop"*}
[[ -n $want && $want != "$full" ]] && pass || fail "the stop-string test needs a longer greedy text: '$full'"
[[ $(cat "$T/out") == "$want" ]] && pass || fail "--stop '$stop': got '$(cat "$T/out")', expected '$want'"

# ---- --each-line: one output line per input line, each independent of the others ----
printf 'The jury\nIt was\n\nA man said\n' > prompts.txt
expect_exit 0 "--each-line" -- "${gen[@]}" --each-line -f prompts.txt -n 12 -s 3
cp "$T/out" each.txt
[[ $(wc -l < each.txt) == 4 ]] && pass || fail "--each-line wrote $(wc -l < each.txt) lines for 4 prompts"
printf 'The jury\nSomething else entirely\n\nA man said\n' > prompts2.txt
"${gen[@]}" --each-line -f prompts2.txt -n 12 -s 3 > each2.txt 2> /dev/null
[[ $(sed -n 1p each.txt) == $(sed -n 1p each2.txt) && $(sed -n 4p each.txt) == $(sed -n 4p each2.txt) ]] && pass ||
  fail "changing line 2 changed the completions of lines 1 and 4"
expect_exit 0 "--each-line from stdin, CRLF" -- sh -c "printf 'The jury\r\nIt was\r\n\r\nA man said\r\n' | ${gen[*]} --each-line -n 12 -s 3"
same_files "$T/out" each.txt "CRLF input lines give the same completions"

# ---- the seed --json reports for a line reproduces that line alone, with -s and -p ----
expect_exit 0 "--each-line --json" -- "${gen[@]}" --each-line -f prompts.txt -n 12 -s 3 --json
cp "$T/out" each.json
end_text() { sed -n 's/^{"event":"end","line":[0-9]*,"text":\("\([^"\\]\|\\.\)*"\),.*/\1/p' "$1"; }
for n in 0 1 3; do
  end=$(grep "^{\"event\":\"end\",\"line\":$n," each.json)
  seed=$(sed -n 's/.*"seed":\([0-9]*\),.*/\1/p' <<< "$end")
  prompt=$(sed -n "$((n + 1))p" prompts.txt)
  grep "^{\"event\":\"end\",\"line\":$n," each.json > line.json
  want=$(end_text line.json)
  "${gen[@]}" -p "$prompt" -n 12 -s "$seed" --stop $'\n' --json > one.json 2> /dev/null
  got=$(end_text one.json)
  [[ -n $seed && -n $want && $got == "$want" ]] && pass ||
    fail "line $n: -s $seed -p '$prompt' gives $got, the run gave $want"
  "${gen[@]}" -p "$prompt" -n 12 -s "$seed" --stop $'\n' > one.txt 2> /dev/null
  [[ $(cat one.txt) == "$(sed -n "$((n + 1))p" each.txt)" ]] && pass ||
    fail "line $n: plain -s $seed -p output '$(cat one.txt)' is not the run's line '$(sed -n "$((n + 1))p" each.txt)'"
done
[[ $(sed -n 's/.*"line":0,.*"seed":\([0-9]*\),.*/\1/p' each.json) == 3 ]] && pass || fail "line 0 is not sampled with -s itself"
[[ $(grep -o '"seed":[0-9]*' each.json | sort -u | wc -l) == 4 ]] && pass || fail "the lines do not have 4 different seeds"

# ---- --parallel: lines decoded together are the lines decoded one at a time, in input order ----
lm-quantize -q -m m.gguf --type q8_0 -o m8.gguf || fail "quantizing the test model"
{ head -30 corpus.txt | cut -c1-40; echo; echo "The jury"; } > many.txt
for model in m.gguf m8.gguf; do
  "${gen[@]/m.gguf/$model}" --each-line -f many.txt -n 10 -s 9 > par1.txt 2> /dev/null
  [[ $(wc -l < par1.txt) == 32 ]] && pass || fail "$model: --each-line wrote $(wc -l < par1.txt) lines for 32"
  for par in 3 8; do
    expect_exit 0 "$model --parallel $par" -- "${gen[@]/m.gguf/$model}" --each-line -f many.txt -n 10 -s 9 --parallel $par
    same_files "$T/out" par1.txt "$model: --parallel $par gives each line's completion, in order"
  done
  # JSON events: the same events in the same order, up to the speeds; with F32 weights batched
  # products add in another order than one row's, so log-probabilities may differ in the last bits.
  no_speed() {
    if [[ $model == m.gguf ]]; then sed 's/,"prompt_tokens_per_s":.*/}/; s/"logprob":[-0-9.e]*//g' "$1"
    else sed 's/,"prompt_tokens_per_s":.*/}/' "$1"; fi
  }
  "${gen[@]/m.gguf/$model}" --each-line -f many.txt -n 10 -s 9 --json > par1.json 2> /dev/null
  expect_exit 0 "$model --parallel 4 --json" -- "${gen[@]/m.gguf/$model}" --each-line -f many.txt -n 10 -s 9 --json --parallel 4 -t 2
  [[ $(no_speed "$T/out") == "$(no_speed par1.json)" ]] && pass || fail "$model: --parallel 4 --json differs from one at a time"
done
expect_exit 0 "--parallel -v" -- "${gen[@]}" --each-line -f many.txt -n 10 -s 9 --parallel 4 -v
grep -Eq '^lm-generate: 32 lines, [0-9]+ new tokens in .*, 4 sequences at a time; KV cache [0-9]+ tokens x 4, ' "$T/err" &&
  pass || fail "-v does not report the --parallel run: $(tail -1 "$T/err")"
expect_exit 2 "--parallel without --each-line" -- "${gen[@]}" -p "The jury" --parallel 2
expect_err "^lm-generate: --parallel needs --each-line$" "--parallel without --each-line"
expect_exit 2 "--parallel 0" -- "${gen[@]}" --each-line --parallel 0
expect_err "^lm-generate: --parallel: Value 0 not in range 1 to 256$" "--parallel 0"

# ---- stdin on a terminal: one line says the prompt is read from it; nothing from a pipe ----
if script -qec true /dev/null < /dev/null > /dev/null 2>&1; then
  script -qec "${gen[*]} -n 2 -s 1 > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ $(head -1 tty.err) == "lm-generate: reading the prompt from standard input (end with Ctrl-D)" ]] && pass ||
    fail "terminal stdin: stderr is '$(head -c 300 tty.err)'"
  script -qec "${gen[*]} --each-line -n 2 -s 1 > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ $(cat tty.err) == "lm-generate: reading prompts, one per line, from standard input (end with Ctrl-D)" ]] && pass ||
    fail "terminal stdin, --each-line: stderr is '$(head -c 300 tty.err)'"
  script -qec "${gen[*]} -q -n 2 -s 1 > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ ! -s tty.err ]] && pass || fail "terminal stdin with -q: stderr is '$(head -c 300 tty.err)'"
else
  echo "no working script(1): the terminal checks are skipped" >&2
fi
expect_exit 0 "prompt from a pipe" -- sh -c "printf 'The jury' | ${gen[*]} -n 2 -s 1"
[[ ! -s $T/err ]] && pass || fail "stdin from a pipe: stderr is '$(head -c 300 "$T/err")'"

# ---- JSON events ----
expect_exit 0 "--json" -- "${gen[@]}" -p "The jury" -n 10 --greedy --json --top-logprobs 3
[[ $(grep -c '^{"event":"token",' "$T/out") == 10 ]] && pass || fail "--json: expected 10 token events"
[[ $(grep -c '^{"event":"end",.*"stop_reason":"length","prompt_tokens":[0-9]*,"tokens":10,' "$T/out") == 1 ]] && pass ||
  fail "--json end event: $(tail -1 "$T/out")"
grep '"event":"token"' "$T/out" | grep -vq '"top":\[{"id":[0-9]*,"piece":"[^"]*","logprob":-\?[0-9.e-]*},{' &&
  fail "--json: a token event without three alternatives" || pass
grep -q '"logprob":[0-9]' "$T/out" && fail "--json: a positive log-probability" || pass

# ---- context policies ----
long=$(head -c 2000 corpus.txt | tr '\n' ' ')
expect_exit 2 "prompt longer than the context" -- "${gen[@]}" -p "$long" -n 4
expect_err "prompt has [0-9]+ tokens, but the context holds 64" "long prompt message"
expect_exit 0 "--overflow shift" -- "${gen[@]}" -p "$long" -n 100 --overflow shift --ignore-eos --json -s 1
grep -q '"tokens":100,"context_shifts":[1-9]' "$T/out" && pass || fail "shift: $(tail -1 "$T/out")"
grep -q 'warning: the prompt has' "$T/err" && pass || fail "shift: no warning about the truncated prompt"
expect_exit 0 "context fills up" -- "${gen[@]}" -p "The jury" -n 200 --ignore-eos --json -s 1
grep -q '"stop_reason":"context"' "$T/out" && grep -q 'context of 64 tokens is full' "$T/err" && pass ||
  fail "context stop: $(tail -1 "$T/out") / $(cat "$T/err")"

# ---- other tensor types and vocabulary-only tokenizers ----
for type in f16 bf16 q8_0 q4_0; do
  "$W" --convert m.gguf m-$type.gguf $type || fail "convert to $type"
  expect_exit 0 "$type model" -- lm-generate -m m-$type.gguf -p "The jury" -n 8 --greedy -t 2
  [[ -s $T/out ]] && pass || fail "$type model: no output"
done
"$W" --convert m.gguf m-vocab.gguf f32 --no-embed || fail "strip the SentencePiece bytes"
expect_exit 0 "vocabulary-only tokenizer" -- lm-generate -m m-vocab.gguf -p "The jury" -n 24 --greedy -t 2
same_files "$T/out" greedy.txt "a rebuilt tokenizer generates the same text"

# ---- --chat: a conversation as JSON Lines through the model's chat template (lib/chat) ----
# The model gets a ChatML template and a longer context (the template's markup is many tokens here).
chatml="{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
$LM_TEST_BIN/lm_test_edit_gguf m.gguf chat.gguf str tokenizer.chat_template "$chatml" u32 llama.context_length 512 ||
  fail "writing chat.gguf"
chat=(lm-generate -m chat.gguf -t 1 -n 8 --greedy)
printf '{"role":"system","content":"Be brief."}\n\n{"role":"user","content":"The jury \\u00e9t\\u00e9"}\r\n' > conv.jsonl
templated=$'<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nThe jury été<|im_end|>\n<|im_start|>assistant\n'
expect_exit 0 "--chat" -- "${chat[@]}" --chat -f conv.jsonl
cp "$T/out" chat.txt
[[ -s chat.txt ]] && pass || fail "--chat wrote nothing"
expect_exit 0 "the templated prompt with -p" -- "${chat[@]}" -p "$templated" --parse-special
same_files "$T/out" chat.txt "--chat generates what -p gives for the ChatML text"
expect_exit 0 "--chat from stdin, --echo" -- sh -c "${chat[*]} --chat --echo < conv.jsonl"
[[ $(cat "$T/out") == "$templated$(cat chat.txt)" ]] && pass || fail "--chat --echo: $(head -c 300 "$T/out")"
expect_exit 0 "--chat-template llama3" -- "${chat[@]}" --chat --chat-template llama3 -f conv.jsonl --echo -n 0
[[ $(cat "$T/out") == $'<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nThe jury été<|eot_id|><|start_header_id|>assistant<|end_header_id|>' ]] &&
  pass || fail "--chat-template llama3: $(head -c 300 "$T/out")"
# The BOS rule: gigachat's text begins with <s>, the BOS itself, so no second BOS is added.
expect_exit 0 "gigachat text" -- "${chat[@]}" --chat --chat-template gigachat -f conv.jsonl --echo -n 0
giga=$(cat "$T/out")
[[ $giga == "<s>Be brief.<|message_sep|>user<|role_sep|>"* ]] && pass || fail "gigachat text: $giga"
"${chat[@]}" --chat --chat-template gigachat -f conv.jsonl --json > giga_chat.json 2> /dev/null
"${chat[@]}" -p "$giga" --parse-special --json > giga_p.json 2> /dev/null
"${chat[@]}" -p "$giga" --parse-special --no-bos --json > giga_nobos.json 2> /dev/null
pt() { sed -n 's/^{"event":"end",.*"prompt_tokens":\([0-9]*\),.*/\1/p' "$1"; }
[[ -n $(pt giga_chat.json) && $(pt giga_chat.json) == "$(pt giga_nobos.json)" && $(pt giga_p.json) == $(($(pt giga_chat.json) + 1)) ]] &&
  pass || fail "BOS rule: --chat $(pt giga_chat.json) prompt tokens, -p --no-bos $(pt giga_nobos.json), -p $(pt giga_p.json)"
# One-line errors: the model without a template, bad lines with their numbers, bad names.
expect_exit 1 "--chat, no template in the model" -- "${gen[@]}" --chat -f conv.jsonl
expect_err "^lm-generate: m\.gguf: the model has no chat template \(tokenizer\.chat_template\); use --chat-template NAME \(known: .*chatml.*\)$" \
  "no template message"
$LM_TEST_BIN/lm_test_edit_gguf m.gguf odd.gguf str tokenizer.chat_template "{{ messages }}" || fail "writing odd.gguf"
expect_exit 1 "--chat, unrecognised template" -- "${gen[@]}" -m odd.gguf --chat -f conv.jsonl
expect_err "^lm-generate: odd\.gguf: unrecognised chat template .*; use --chat-template NAME \(known: " "unrecognised template message"
expect_exit 1 "--chat, bad JSON on line 2" -- sh -c "printf '{\"role\":\"user\",\"content\":\"x\"}\n{\"role\":\"user\",\"content\":\"x\"\n' | ${chat[*]} --chat"
expect_err "^lm-generate: <stdin>:2: is not a JSON object: " "bad JSON message"
expect_exit 1 "--chat, unknown role" -- sh -c "printf '\n{\"role\":\"tool\",\"content\":\"x\"}\n' | ${chat[*]} --chat"
expect_err "^lm-generate: <stdin>:2: has the role 'tool', expected system, user or assistant$" "unknown role message"
expect_exit 1 "--chat, missing content" -- sh -c "printf '{\"role\":\"user\"}\n' | ${chat[*]} --chat"
expect_err "^lm-generate: <stdin>:1: has no string member 'content'" "missing content message"
expect_exit 1 "--chat, no messages" -- sh -c "printf '\n' | ${chat[*]} --chat"
expect_err "^lm-generate: <stdin>: has no messages" "no messages message"
expect_exit 2 "--chat, a system message yandex cannot write" -- "${chat[@]}" --chat --chat-template yandex -f conv.jsonl
expect_err "^lm-generate: chat message 1: the chat template yandex has no place for a system message$" "yandex message"
expect_exit 2 "--chat-template unknown" -- "${chat[@]}" --chat --chat-template chatml2 -f conv.jsonl
expect_err "^lm-generate: unknown chat template 'chatml2'; known: bailing, .*, zephyr$" "unknown template name message"
expect_exit 2 "--chat-template without --chat" -- "${chat[@]}" --chat-template chatml -p x
expect_exit 2 "--chat with -p" -- "${chat[@]}" --chat -p x
expect_err "^lm-generate: --chat reads one conversation from -f or stdin, not -p or --each-line$" "--chat -p message"
expect_exit 2 "--chat with --each-line" -- "${chat[@]}" --chat --each-line -f conv.jsonl
if script -qec true /dev/null < /dev/null > /dev/null 2>&1; then
  script -qec "${chat[*]} --chat > tty.out 2> tty.err" /dev/null < /dev/null > /dev/null 2>&1
  [[ $(head -1 tty.err) == "lm-generate: reading messages, one JSON object per line, from standard input (end with Ctrl-D)" ]] &&
    pass || fail "--chat, terminal stdin: stderr is '$(head -c 300 tty.err)'"
fi

# ---- a failed run leaves an existing -o file as it was (issue 27) ----
echo "keep me" > keep.txt
expect_exit 1 "missing prompt file with -o" -- "${gen[@]}" -f nope.txt -n 4 -o keep.txt
expect_err "^lm-generate: nope.txt: cannot open: No such file or directory$" "missing prompt file message"
[[ $(cat keep.txt) == "keep me" ]] && pass || fail "a missing prompt file damaged -o: '$(cat keep.txt)'"
mkdir -p adir
expect_exit 1 "prompt file is a directory, with -o" -- "${gen[@]}" -f adir -n 4 -o keep.txt
expect_err "^lm-generate: adir: cannot read: Is a directory$" "directory prompt message"
[[ $(cat keep.txt) == "keep me" ]] && pass || fail "a directory prompt damaged -o: '$(cat keep.txt)'"
expect_exit 1 "--each-line, missing prompt file, with -o" -- "${gen[@]}" --each-line -f nope.txt -n 4 -o keep.txt
[[ $(cat keep.txt) == "keep me" ]] && pass || fail "--each-line with a missing prompt file damaged -o"
cp m.gguf nan.gguf  # its last 4 KiB of weights become NaN (0xff bytes)
head -c 4096 /dev/zero | tr '\0' '\377' | dd of=nan.gguf bs=4096 seek=$(($(stat -c %s m.gguf) / 4096 - 1)) conv=notrunc 2> /dev/null
expect_exit 1 "NaN weights, with -o" -- "${gen[@]}" -m nan.gguf -p "The jury" -n 8 -o keep.txt
expect_err "^lm-generate: " "NaN weights message"
[[ $(cat keep.txt) == "keep me" ]] && pass || fail "NaN weights damaged -o: '$(cat keep.txt)'"
no_leftovers . "failed runs with -o"

# ---- models that are not regular files are refused before reading (issue 27) ----
expect_exit 1 "-m /dev/zero" -- timeout 20 lm-generate -m /dev/zero -p x
expect_err "^lm-generate: /dev/zero: is a character device, not a regular file; models and tokenizers are read from files$" \
  "/dev/zero model message"
mkfifo fifo.gguf
expect_exit 1 "-m FIFO" -- timeout 20 lm-generate -m fifo.gguf -p x
expect_err "^lm-generate: fifo.gguf: is a pipe \(FIFO\), not a regular file; models and tokenizers are read from files$" \
  "FIFO model message"
expect_exit 1 "--lora /dev/zero" -- timeout 20 "${gen[@]}" --lora /dev/zero -p x
expect_err "^lm-generate: /dev/zero: is a character device, not a regular file" "/dev/zero adapter message"

# ---- the KV cache follows the run, not the context the model claims (issue 27: a 2^20 context
# allocated 1.1 GB for any run) ----
cp m.gguf huge.gguf
off=$(grep -obUa 'llama.context_length' huge.gguf | head -1 | cut -d: -f1)
printf '\000\000\020\000' | dd of=huge.gguf bs=1 seek=$((off + 20 + 4)) conv=notrunc 2> /dev/null  # u32 1048576
expect_exit 0 "model context 2^20" -- "${gen[@]}" -m huge.gguf -p "The jury" -n 8 --greedy -v
grep -q 'context 1048576,' "$T/err" && pass || fail "the patched model's context is not 2^20: $(grep context "$T/err")"
grep -Eq 'line 0: .*; KV cache (1[0-9]|2[0-9]) tokens, 0\.0[0-9] MiB$' "$T/err" && pass ||
  fail "the KV cache is not sized from prompt and -n: $(grep 'KV cache' "$T/err")"
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -f '%M' -o rss.txt "${gen[@]}" -m huge.gguf -p "The jury" -n 8 --greedy > /dev/null 2>&1
  (( $(tail -1 rss.txt) < 400000 )) && pass || fail "context 2^20: peak RSS $(tail -1 rss.txt) KiB"
fi
expect_exit 0 "model context 2^20, -n -1 grows the cache" -- "${gen[@]}" -m huge.gguf -p "The jury" -n -1 --greedy -c 200 \
  --ignore-eos -v
grep -Eq 'stop: context; KV cache 200 tokens' "$T/err" && pass || fail "-c 200 -n -1: $(grep 'KV cache' "$T/err")"

# ---- errors (docs/reliability.md F5-F7, A) ----
for bad in "--temp nan" "--top-p 2" "-n -5" "--seed abc" "--frobnicate" "--top-logprobs 2" "--samplers top-k,nucleus"; do
  expect_exit 2 "$bad" -- "${gen[@]}" -p x $bad
  expect_err "." "$bad: one line"
done
expect_exit 2 "-p with -f" -- "${gen[@]}" -p x -f prompts.txt
expect_exit 1 "missing model" -- lm-generate -m nope.gguf -p x
expect_err "nope.gguf" "missing model message"
expect_exit 1 "text as a model" -- lm-generate -m corpus.txt -p x
expect_err "corpus.txt: not a GGUF file" "text model message"
head -c 100000 m.gguf > cut.gguf
expect_exit 1 "truncated model" -- lm-generate -m cut.gguf -p x
expect_err "cut.gguf" "truncated model message"
expect_exit 1 "stdout is /dev/full" -- sh -c "${gen[*]} -p x -n 4 > /dev/full"
expect_err "write error" "/dev/full message"
for i in 1 2 3 4 5; do
  "${gen[@]}" -p "The jury" -n 5000 --overflow shift --ignore-eos 2> err.txt | head -c1 > /dev/null
  [[ ! -s err.txt ]] && pass || fail "| head -c1 printed: $(cat err.txt)"
done
finish
