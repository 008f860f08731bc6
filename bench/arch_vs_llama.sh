#!/usr/bin/env bash
# Each architecture lm runs, against llama.cpp on the same file: a random-weight model in the
# architecture's layout (lm_test_write_gguf --random ARCH, with the byte-level BPE vocabulary
# of tests/data/vocab/), its perplexity over tests/data/arch/text.txt in windows of 128 tokens
# (llama-perplexity -c 128 and lm-eval perplexity -c 128) and its greedy continuation of a
# prompt (llama-simple and lm-generate --greedy); then the perplexity of its q8_0, q4_0, q4_k_m,
# q6_k, q5_k_m and q3_k_m copies made by lm-quantize.
#   bench/arch_vs_llama.sh LLAMA_BIN_DIR [--record]
#   ARCHS="llama-hd" bench/arch_vs_llama.sh LLAMA_BIN_DIR [--record]   those architectures only, no embeddings
# LLAMA_BIN_DIR holds llama-perplexity, llama-simple and llama-embedding from a CPU build of
# llama.cpp. bert, an encoder, is compared by its sentence embedding instead (llama-embedding).
# Prints per architecture both perplexities, their relative difference and whether the
# continuations agree; exits 1 if a perplexity differs by more than 0.1% or a continuation
# differs. --record writes llama.cpp's figures to tests/data/arch/ARCH.txt, which
# tests/tools/arch_test.sh checks lm against in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${1:?usage: bench/arch_vs_llama.sh LLAMA_BIN_DIR [--record]}
record=${2:-}
bin=${LM_BIN:-build/tools}
tbin=${LM_TEST_BIN:-build/tests}
vocab=tests/data/vocab/bytebpe-gpt-2.gguf
text=tests/data/arch/text.txt
prompt="The jury said"
n=24
types="q8_0 q4_0 q4_k_m q6_k q5_k_m q3_k_m"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
# llama-perplexity's final estimate for MODEL over the text. llama.cpp logs from a thread of its
# own, which now and then exits before the last line: up to six tries.
llama_ppl() {
  local r try
  for try in 1 2 3 4 5 6; do
    "$llama/llama-perplexity" -m "$1" -f "$text" -c 128 -b 128 -t 2 > "$tmp/ppl.out" 2>&1
    r=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/ppl.out")
    [[ -n $r ]] && { echo "$r"; return 0; }
  done
  return 1
}
printf '%-8s %14s %14s %10s %s\n' arch llama.cpp lm difference continuation
for arch in ${ARCHS:-llama llama3 llama-hd qwen2 qwen2-yarn phi3 phi3-longrope gpt2 gemma2}; do
  m=$tmp/$arch.gguf
  "$tbin/lm_test_write_gguf" --random "$arch" "$vocab" "$m"
  ref=$(llama_ppl "$m") || { echo "$arch: llama-perplexity gave no estimate:"; tail -5 "$tmp/ppl.out"; exit 1; }
  ours=$("$bin/lm-eval" perplexity -q -m "$m" -c 128 -t 2 "$text" | awk -F'\t' 'NR == 2 { print $5 }')
  # llama-simple prints the prompt, then the continuation; lm-generate --echo the same.
  "$llama/llama-simple" -m "$m" -n $n "$prompt" 2> /dev/null > "$tmp/simple.out"
  "$bin/lm-generate" -q -m "$m" --greedy --echo -n $n -t 2 -p "$prompt" > "$tmp/gen.out"
  if cmp -s "$tmp/simple.out" "$tmp/gen.out"; then same=same; else same=DIFFERENT; status=1; fi
  diff=$(awk -v a="$ref" -v b="$ours" 'BEGIN { d = (b - a) / a * 100; printf "%+.4f%%", d }')
  awk -v a="$ref" -v b="$ours" 'BEGIN { d = (b - a) / a; exit !(d < 0.001 && d > -0.001) }' || status=1
  printf '%-8s %14s %14s %10s %s\n' "$arch" "$ref" "$ours" "$diff" "$same"
  if [[ $same != same ]]; then echo "  llama.cpp: $(head -c 200 "$tmp/simple.out")"; echo "  lm:        $(head -c 200 "$tmp/gen.out")"; fi
  # Quantized copies (lm-quantize; llama.cpp reads them as they are): the quantized kernels of
  # both on the same file.
  qref=()
  for type in $types; do
    q=$tmp/$arch-$type.gguf
    "$bin/lm-quantize" -q -m "$m" -o "$q" --type "$type"
    r=$(llama_ppl "$q") || { echo "$arch $type: llama-perplexity gave no estimate:"; tail -5 "$tmp/ppl.out"; exit 1; }
    o=$("$bin/lm-eval" perplexity -q -m "$q" -c 128 -t 2 "$text" | awk -F'\t' 'NR == 2 { print $5 }')
    awk -v a="$r" -v b="$o" 'BEGIN { d = (b - a) / a; exit !(d < 0.001 && d > -0.001) }' || status=1
    printf '  %-12s %14s %14s %10s\n' "$type" "$r" "$o" "$(awk -v a="$r" -v b="$o" 'BEGIN { printf "%+.4f%%", (b - a) / a * 100 }')"
    qref+=("perplexity-$type $r")
  done
  if [[ $record == --record ]]; then
    { echo "# $arch: llama.cpp's figures for lm_test_write_gguf --random $arch $vocab"
      echo "# bench/arch_vs_llama.sh LLAMA_BIN_DIR --record, $(date -u +%F), llama.cpp $("$llama/llama-perplexity" --version 2>&1 | head -n 1)"
      echo "# llama-perplexity -m MODEL -f $text -c 128 -b 128 -t 2; llama-simple -m MODEL -n $n \"$prompt\""
      echo "perplexity $ref"
      echo "# the same for lm-quantize -m MODEL -o Q.gguf --type TYPE"
      printf '%s\n' "${qref[@]}"
      echo "# the prompt and its greedy continuation as llama-simple prints them, in hex"
      echo "continuation $(od -An -v -tx1 < "$tmp/simple.out" | tr -d ' \n')"; } > "tests/data/arch/$arch.txt"
  fi
done

[[ -n ${ARCHS:-} ]] && exit $status
# Sentence embeddings: what llama-embedding gives (mean pooling, unit length) against
# `lm-eval embed --normalize`, for bert (an encoder, WordPiece vocabulary; mean is its file's
# pooling) and for a llama decoder (--pooling mean; the hidden states after the output norm).
sentence="The jury said the county election was conducted fairly."
for name in bert llama-embedding; do
  m=$tmp/$name.gguf
  if [[ $name == bert ]]; then
    "$tbin/lm_test_write_gguf" --random bert tests/data/vocab/wordpiece.gguf "$m"
    pool=()
  else
    "$tbin/lm_test_write_gguf" --random llama "$vocab" "$m"
    pool=(--pooling mean)
  fi
  "$bin/lm-eval" embed -m "$m" --normalize "${pool[@]}" <<< "$sentence" | tr '\t' ' ' > "$tmp/lm.emb"
  want=$(wc -w < "$tmp/lm.emb")
  for try in 1 2 3 4 5; do  # as above: now and then the output is lost at exit, or its end
    "$llama/llama-embedding" -m "$m" -p "$sentence" "${pool[@]}" -t 2 2> /dev/null | sed -n 's/^embedding 0: *//p' > "$tmp/llama.emb" || true
    [[ $(wc -w < "$tmp/llama.emb") == "$want" ]] && break
  done
  [[ $(wc -w < "$tmp/llama.emb") == "$want" ]] || { echo "$name: llama-embedding printed no whole embedding"; exit 1; }
  maxdiff=$(paste <(tr -s ' ' '\n' < "$tmp/llama.emb" | sed '/^$/d') <(tr -s ' ' '\n' < "$tmp/lm.emb" | sed '/^$/d') |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.2e", m }')
  printf '%-8s %s\n' $name "embedding of $(tr -s ' ' '\n' < "$tmp/lm.emb" | sed '/^$/d' | wc -l) values, largest difference $maxdiff"
  awk -v m="$maxdiff" 'BEGIN { exit !(m < 5e-4) }' || status=1
  if [[ $record == --record ]]; then
    what=$([[ $name == bert ]] && echo "bert tests/data/vocab/wordpiece.gguf" || echo "llama $vocab")
    { echo "# $name: llama-embedding's sentence embedding (mean pooling, unit length) for lm_test_write_gguf --random $what"
      echo "# bench/arch_vs_llama.sh LLAMA_BIN_DIR --record, $(date -u +%F), llama.cpp $("$llama/llama-perplexity" --version 2>&1 | head -n 1)"
      echo "# llama-embedding -m MODEL -p \"$sentence\"${pool[*]:+ ${pool[*]}}"
      echo "sentence $sentence"
      echo "embedding $(tr -s ' ' < "$tmp/llama.emb" | sed 's/^ //')"; } > tests/data/arch/$name.txt
  fi
done

# A bert classifier (rank pooling: the first token through cls.output): llama-embedding's class
# logits against lm-eval predict's probabilities (their softmax), label by label.
m=$tmp/bert-cls.gguf
"$tbin/lm_test_write_gguf" --random bert-cls tests/data/vocab/wordpiece.gguf "$m"
printf '%s\n' "The jury said the county election was conducted fairly." "It rained all week in the mountains." \
  "The committee approved the new budget." > "$tmp/cls.txt"
for try in 1 2 3 4 5 6 7 8; do  # as above: now and then the output is lost at exit
  "$llama/llama-embedding" -m "$m" -f "$tmp/cls.txt" --embd-output-format raw --embd-normalize -1 -t 2 2> /dev/null |
    grep -E '^-?[0-9]' > "$tmp/llama.cls" || true
  [[ $(wc -l < "$tmp/llama.cls") == 3 ]] && break
done
[[ $(wc -l < "$tmp/llama.cls") == 3 ]] || { echo "bert-cls: llama-embedding printed no class scores"; exit 1; }
"$bin/lm-eval" predict -m "$m" --top 3 --json < "$tmp/cls.txt" |
  sed 's/.*"top":\[//; s/[]}{"]//g; s/label://g; s/probability://g' | tr ',' ' ' > "$tmp/lm.cls"
maxdiff=$(paste -d' ' "$tmp/llama.cls" "$tmp/lm.cls" | awk '{
    m = $1; for (i = 2; i <= 3; i++) if ($i > m) m = $i
    s = 0; for (i = 1; i <= 3; i++) s += exp($i - m)
    split("negative neutral positive", names, " ")
    for (i = 1; i <= 3; i++) p[names[i]] = exp($i - m) / s
    for (j = 4; j < NF; j += 2) { d = p[$j] - $(j + 1); if (d < 0) d = -d; if (d > w) w = d }
  } END { printf "%.2e", w }')
printf '%-8s %s\n' bert-cls "class probabilities of 3 sentences, largest difference $maxdiff"
awk -v m="$maxdiff" 'BEGIN { exit !(m < 1e-4) }' || status=1
if [[ $record == --record ]]; then
  { echo "# bert-cls: llama-embedding's class logits (rank pooling) for lm_test_write_gguf --random bert-cls tests/data/vocab/wordpiece.gguf"
    echo "# bench/arch_vs_llama.sh LLAMA_BIN_DIR --record, $(date -u +%F), llama.cpp $("$llama/llama-perplexity" --version 2>&1 | head -n 1)"
    echo "# llama-embedding -m MODEL -f SENTENCES --embd-output-format raw --embd-normalize -1; labels negative neutral positive"
    paste -d'\t' <(sed 's/^/sentence /' "$tmp/cls.txt") <(sed 's/^/logits /' "$tmp/llama.cls"); } > tests/data/arch/bert-cls.txt
fi
exit $status
