#!/usr/bin/env bash
# Each architecture lm runs, against llama.cpp on the same file: a random-weight model in the
# architecture's layout (lm_test_write_gguf --random ARCH, with the byte-level BPE vocabulary
# of tests/data/vocab/), its perplexity over tests/data/arch/text.txt in windows of 128 tokens
# (llama-perplexity -c 128 and lm-eval perplexity -c 128) and its greedy continuation of a
# prompt (llama-simple and lm-generate --greedy).
#   bench/arch_vs_llama.sh LLAMA_BIN_DIR [--record]
# LLAMA_BIN_DIR holds llama-perplexity and llama-simple from a CPU build of llama.cpp.
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
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
printf '%-8s %14s %14s %10s %s\n' arch llama.cpp lm difference continuation
for arch in llama llama3 qwen2 phi3 gpt2 gemma2; do
  m=$tmp/$arch.gguf
  "$tbin/lm_test_write_gguf" --random "$arch" "$vocab" "$m"
  # llama.cpp logs from a thread of its own, which now and then exits before the last line.
  ref=
  for try in 1 2 3; do
    "$llama/llama-perplexity" -m "$m" -f "$text" -c 128 -b 128 -t 2 > "$tmp/ppl.out" 2>&1
    ref=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/ppl.out")
    [[ -n $ref ]] && break
  done
  [[ -n $ref ]] || { echo "$arch: llama-perplexity gave no estimate:"; tail -5 "$tmp/ppl.out"; exit 1; }
  ours=$("$bin/lm-eval" perplexity -q -m "$m" -c 128 -t 2 "$text" | awk -F'\t' 'NR == 2 { print $5 }')
  # llama-simple prints the prompt, then the continuation; lm-generate --echo the same.
  "$llama/llama-simple" -m "$m" -n $n "$prompt" 2> /dev/null > "$tmp/simple.out"
  "$bin/lm-generate" -q -m "$m" --greedy --echo -n $n -t 2 -p "$prompt" > "$tmp/gen.out"
  if cmp -s "$tmp/simple.out" "$tmp/gen.out"; then same=same; else same=DIFFERENT; status=1; fi
  diff=$(awk -v a="$ref" -v b="$ours" 'BEGIN { d = (b - a) / a * 100; printf "%+.4f%%", d }')
  awk -v a="$ref" -v b="$ours" 'BEGIN { d = (b - a) / a; exit !(d < 0.001 && d > -0.001) }' || status=1
  printf '%-8s %14s %14s %10s %s\n' "$arch" "$ref" "$ours" "$diff" "$same"
  if [[ $same != same ]]; then echo "  llama.cpp: $(head -c 200 "$tmp/simple.out")"; echo "  lm:        $(head -c 200 "$tmp/gen.out")"; fi
  if [[ $record == --record ]]; then
    { echo "# $arch: llama.cpp's figures for lm_test_write_gguf --random $arch $vocab"
      echo "# bench/arch_vs_llama.sh LLAMA_BIN_DIR --record, $(date -u +%F), llama.cpp $("$llama/llama-perplexity" --version 2>&1 | head -n 1)"
      echo "# llama-perplexity -m MODEL -f $text -c 128 -b 128 -t 2; llama-simple -m MODEL -n $n \"$prompt\""
      echo "perplexity $ref"
      echo "# the prompt and its greedy continuation as llama-simple prints them, in hex"
      echo "continuation $(od -An -v -tx1 < "$tmp/simple.out" | tr -d ' \n')"; } > "tests/data/arch/$arch.txt"
  fi
done
exit $status
