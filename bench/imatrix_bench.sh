#!/usr/bin/env bash
# Importance matrices, issue 23's bar: a model of PRESET trained on Brown's training documents,
# an importance matrix of it from that training text (lm-eval imatrix), then q4_k_m and q3_k_m
# copies without and with the matrix (lm-quantize --imatrix) and, with LLAMA_BIN set, by
# llama-quantize --imatrix with the same matrix; each copy's perplexity on the held-out
# documents (lm-eval perplexity, the same evaluator for every file). Prints a Markdown table:
# the change against the same type without the matrix, and against llama-quantize's copy (the
# bar: within 0.5%), and whether the two copies hold the same tensor bytes.
#
# Usage: bench/imatrix_bench.sh [BUILD] [MODEL] [PRESET] [BUDGET] [THREADS]
#   BUILD    build directory (default build)
#   MODEL    the f32 model (default DATA/PRESET.gguf; trained here for BUDGET if missing)
#   PRESET   lm-train --preset (default medium)
#   BUDGET   lm-train --time (default 30m)
#   THREADS  -t for every tool (default 2)
# Environment:
#   DATA         Brown as scripts/get-brown.sh writes it (default data/brown; fetched if missing)
#   LLAMA_BIN    a llama.cpp build's bin directory (llama-quantize); without it, lm only
#   CTX          chunk length of the matrix and of the perplexities (default 512)
#   CAL_BYTES    calibration text: the first CAL_BYTES of train.txt (default: all of it)
#   VALID_BYTES  held-out text: the first VALID_BYTES of valid.txt (default: all of it)
#   VOCAB        tokenizer size when one is trained (default 8000)
#   TYPES        the lm-quantize types compared (default "q4_k_m q3_k_m")
# A quick run of the script itself (not a measurement):
#   DATA=/tmp/brown CTX=64 CAL_BYTES=200000 VALID_BYTES=50000 VOCAB=1000 \
#     bench/imatrix_bench.sh build /tmp/imx-tiny.gguf tiny 30s
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} preset=${3:-medium} budget=${4:-30m} threads=${5:-2}
data=${DATA:-data/brown} ctx=${CTX:-512} vocab=${VOCAB:-8000}
model=${2:-$data/$preset.gguf}
export PATH=$PWD/$build/tools:$PATH
scripts/get-brown.sh "$data"
work=$(mktemp -d "${TMPDIR:-/tmp}/imatrix-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cal=$data/train.txt valid=$data/valid.txt
if [[ -n ${CAL_BYTES:-} ]]; then head -c "$CAL_BYTES" "$data/train.txt" > "$work/cal.txt"; cal=$work/cal.txt; fi
if [[ -n ${VALID_BYTES:-} ]]; then head -c "$VALID_BYTES" "$data/valid.txt" > "$work/valid.txt"; valid=$work/valid.txt; fi

if [[ ! -s $model ]]; then
  tok=$work/tok.model
  lm-tokenize train -q --vocab-size "$vocab" -o "$tok" "$data/train.txt"
  lm-tokenize encode -m "$tok" --format bin -o "$work/train.tok" "$data/train.txt"
  lm-train -q --tokenizer "$tok" --data "$work/train.tok" --preset "$preset" --time "$budget" --warmup 20 \
    --lr 1e-3 -t "$threads" -o "$model" > /dev/null
fi
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<< "$2" | head -1; }
ppl() {
  awk -v p="$(field perplexity "$(lm-eval perplexity -q -t "$threads" -c "$ctx" -m "$1" --json "$valid")")" \
    'BEGIN { printf "%.4f", p }'
}
size() { stat -c %s "$1"; }
mib() { awk -v b="$(size "$1")" 'BEGIN { printf "%.2f", b / 1048576 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f%%", 100 * (a - b) / b }'; }
# same_tensors A B: "yes" when every tensor of A has the same name, type and bytes in B.
same_tensors() {
  python3 - "$1" "$2" << 'EOF'
import struct, sys
def tensors(path):
    b = open(path, "rb").read()
    pos = 8
    def u(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, b, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return v
    def s():
        nonlocal pos
        n = u("Q"); pos += n
        return b[pos - n:pos]
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def skip(t):
        if t == 8: s()
        elif t == 9:
            et, n = u("I"), u("Q")
            for _ in range(n): skip(et)
        else: u(sizes[t])
    n_t, n_kv = u("Q"), u("Q")
    align = 32
    for _ in range(n_kv):
        k, t = s(), u("I")
        if k == b"general.alignment": align = u("I")
        else: skip(t)
    info = []
    for _ in range(n_t):
        name, nd = s(), u("I")
        ne = [u("Q") for _ in range(nd)]
        info.append((name, u("I"), u("Q")))
    start = (pos + align - 1) // align * align
    offs = sorted(o for _, _, o in info) + [len(b) - start]
    out = {}
    for name, t, o in info:
        end = offs[offs.index(o) + 1]
        out[name] = (t, b[start + o:start + end].rstrip(b"\0"))
    return out
a, c = tensors(sys.argv[1]), tensors(sys.argv[2])
print("yes" if a == c else "no (%d of %d differ)" % (sum(a[k] != c.get(k) for k in a), len(a)))
EOF
}

lm-eval imatrix -q -t "$threads" -m "$model" -o "$work/imatrix.gguf" -c "$ctx" "$cal" > /dev/null
p_src=$(ppl "$model")
echo "model $model ($preset), imatrix of $(basename "$cal") ($(size "$cal") bytes, -c $ctx), perplexity on" \
     "$(basename "$valid") ($(size "$valid") bytes); source perplexity $p_src"
echo
echo "| type | imatrix | quantizer | MiB | perplexity | vs no imatrix | vs llama-quantize | same tensors as llama-quantize |"
echo "|---|---|---|---|---|---|---|---|"
for t in ${TYPES:-q4_k_m q3_k_m}; do
  lm-quantize -q -t "$threads" -m "$model" -o "$work/$t.gguf" --type "$t"
  lm-quantize -q -t "$threads" -m "$model" -o "$work/$t-imx.gguf" --type "$t" --imatrix "$work/imatrix.gguf" 2> /dev/null
  p0=$(ppl "$work/$t.gguf") p1=$(ppl "$work/$t-imx.gguf")
  echo "| $t | no | lm-quantize | $(mib "$work/$t.gguf") | $p0 | | | |"
  if [[ -n ${LLAMA_BIN:-} ]]; then
    T=$(tr a-z A-Z <<< "$t")
    "$LLAMA_BIN/llama-quantize" --imatrix "$work/imatrix.gguf" "$model" "$work/$t-llama.gguf" "$T" "$threads" \
      > "$work/llama-$t.log" 2>&1
    p2=$(ppl "$work/$t-llama.gguf")
    echo "| $t | yes | lm-quantize | $(mib "$work/$t-imx.gguf") | $p1 | $(pct "$p1" "$p0") | $(pct "$p1" "$p2") |" \
         "$(same_tensors "$work/$t-imx.gguf" "$work/$t-llama.gguf") |"
    echo "| $t | yes | llama-quantize | $(mib "$work/$t-llama.gguf") | $p2 | $(pct "$p2" "$p0") | | |"
  else
    echo "| $t | yes | lm-quantize | $(mib "$work/$t-imx.gguf") | $p1 | $(pct "$p1" "$p0") | (no LLAMA_BIN) | |"
  fi
done
