#!/usr/bin/env bash
# lm against llama.cpp on the same model files, in one run: prompt (pp512) and decoding
# (tg128) speed from llama-bench and from build/bench/generate_bench FILE, and the time and
# value of perplexity over a text from llama-perplexity and lm-eval perplexity (-c 512).
#   bench/vs_llama.sh LLAMA_BIN_DIR [MODEL.gguf ...]
# Without models it makes them in bench/out/vs_llama/ (kept for the next run): random-weight
# llama files of the small and medium presets with a byte-level BPE vocabulary of 8192 pieces
# trained on the text, and their q8_0, q4_0, q4_k_m and q6_k copies from lm-quantize.
# Environment: TEXT (default data/brown/valid.txt, made by scripts/get-brown.sh), REPS
# (default 3), THREADS (default 2). Prints a Markdown table; every speed claim in README.md
# and docs/ comes from it, with the date and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${1:?usage: bench/vs_llama.sh LLAMA_BIN_DIR [MODEL.gguf ...]}
shift
text=${TEXT:-data/brown/valid.txt}
reps=${REPS:-3}
threads=${THREADS:-2}
bin=build/tools
bench=build/bench/generate_bench
[[ -s $text ]] || scripts/get-brown.sh data/brown
models=("$@")
if ((${#models[@]} == 0)); then
  out=bench/out/vs_llama
  mkdir -p "$out"
  [[ -s $out/vocab.gguf ]] || "$bin/lm-tokenize" train -q --model-type bytebpe --vocab-size 8192 -o "$out/vocab.gguf" "$text"
  for preset in small medium; do
    f=$out/$preset-f32.gguf
    [[ -s $f ]] || "$bench" --write $preset "$out/vocab.gguf" "$f"
    models+=("$f")
    for type in q8_0 q4_0 q4_k_m q6_k; do
      q=$out/$preset-$type.gguf
      [[ -s $q ]] || "$bin/lm-quantize" -q -m "$f" -o "$q" --type $type
      models+=("$q")
    done
  done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > "$tmp/out" 2> "$tmp/err"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
echo "$(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, $reps runs each; llama.cpp $("$llama/llama-perplexity" --version 2>&1 | sed -n 's/^version: //p' | head -n 1 || true)"
echo
echo "| model | pp512 lm | llama.cpp | ratio | tg128 lm | llama.cpp | ratio | perplexity s lm | llama.cpp | ratio | perplexity lm / llama.cpp |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  "$llama/llama-bench" -m "$m" -p 512 -n 128 -t "$threads" -r "$reps" -o csv > "$tmp/lb.csv" 2> /dev/null
  read -r lpp ltg < <(awk -F'","|^"|"$' 'NR == 1 { gsub(/"/, ""); n = split($0, h, ","); for (i = 1; i <= n; i++) c[h[i]] = i + 1; next }
    { if ($c["n_prompt"] > 0) pp = $c["avg_ts"]; else tg = $c["avg_ts"] } END { print pp, tg }' "$tmp/lb.csv")
  "$bench" "$m" "$reps" "$threads" > "$tmp/gb.out"
  opp=$(awk '$1 == "pp512" { print $2 }' "$tmp/gb.out")
  otg=$(awk '$1 == "tg128" { print $2; exit }' "$tmp/gb.out")
  lsec=$(seconds "$llama/llama-perplexity" -m "$m" -f "$text" -c 512 -b 512 -t "$threads")
  lppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$tmp/out" "$tmp/err" | head -n 1)
  osec=$(seconds "$bin/lm-eval" perplexity -q -m "$m" -c 512 -t "$threads" "$text")
  oppl=$(awk -F'\t' 'NR == 2 { print $5 }' "$tmp/out")
  pdiff=$(awk -v a="$oppl" -v b="$lppl" 'BEGIN { if (b > 0) printf "%+.4f%%", (a - b) / b * 100; else print "?" }')
  printf '| %s | %.0f | %.0f | %s | %.1f | %.1f | %s | %.2f | %.2f | %s | %s |\n' "$(basename "$m" .gguf)" "$opp" "$lpp" \
    "$(ratio "$opp" "$lpp")" "$otg" "$ltg" "$(ratio "$otg" "$ltg")" "$osec" "$lsec" "$(ratio "$lsec" "$osec")" "$pdiff"
done
