#!/usr/bin/env bash
# The Hugging Face import against llama.cpp's converter on the same directories: each fixture of
# tests/data/hf/ converted by convert_hf_to_gguf.py --outtype f32 and by lm-quantize --type f32,
# then their keys (tokenizer.* and lm.* aside) and tensors compared: names, shapes, values.
#   bench/hf_import_vs_converter.sh LLAMA_CPP_DIR
# LLAMA_CPP_DIR is a llama.cpp checkout (convert_hf_to_gguf.py, conversion/, gguf-py/). It runs
# with Debian's python3-torch and numpy alone: the transformers library, which the converter
# imports for AutoConfig (it falls back to reading config.json) and for the vocabulary, and tqdm
# are replaced by stand-ins, and the vocabulary is left out (the tokenizer keys are
# load_hf_tokenizer's, checked in tests/tokenizer/). Prints each difference; exits 1 if a tensor
# name, a shape or a non-general key differs, or a value by more than 1e-3.
set -euo pipefail
cd "$(dirname "$0")/.."
llama=$(cd "${1:?usage: bench/hf_import_vs_converter.sh LLAMA_CPP_DIR}" && pwd)
bin=${LM_BIN:-build/tools}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/fake"
cat > "$tmp/fake/transformers.py" <<'PY'
class AutoConfig:
    @staticmethod
    def from_pretrained(*a, **k):
        raise RuntimeError("no transformers library here")
AutoTokenizer = AutoConfig
PY
cat > "$tmp/fake/tqdm.py" <<'PY'
class tqdm:
    def __init__(self, *a, **k): pass
    def update(self, *a, **k): pass
    def close(self): pass
PY
cat > "$tmp/convert.py" <<'PY'
import runpy, sys
import torch
for n in ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"]:
    if not hasattr(torch, n):  # older torch: names the converter's dtype tables mention
        setattr(torch, n, "missing-" + n)
llama, fake = sys.argv[1], sys.argv[2]
sys.path[:0] = [fake, llama, llama + "/gguf-py"]
import conversion.base as base
base.TextModel.set_vocab = lambda self: None
for mod in ["llama", "qwen", "phi", "gpt2", "gemma"]:
    m = __import__("conversion." + mod, fromlist=["x"])
    for c in vars(m).values():
        if isinstance(c, type) and issubclass(c, base.TextModel) and "set_vocab" in c.__dict__:
            c.set_vocab = lambda self: None
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[3:]
runpy.run_path(llama + "/convert_hf_to_gguf.py", run_name="__main__")
PY
cat > "$tmp/compare.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/gguf-py")
import numpy as np
from gguf import GGUFReader
def load(p):
    r = GGUFReader(p)
    kv = {f.name: f.contents() for f in r.fields.values() if not f.name.startswith(("tokenizer.", "lm.", "GGUF."))}
    return kv, {t.name: (tuple(int(x) for x in t.shape), np.array(t.data, dtype=np.float32).ravel()) for t in r.tensors}
(a_kv, a_t), (b_kv, b_t) = load(sys.argv[2]), load(sys.argv[3])
ok = True
for k in sorted(set(a_kv) | set(b_kv)):
    va, vb = a_kv.get(k, "(absent)"), b_kv.get(k, "(absent)")
    if va != vb and not (isinstance(va, float) and isinstance(vb, float) and abs(va - vb) <= 1e-7 * abs(vb)):
        print(f"  key {k}: lm {va!r}, converter {vb!r}")
        ok = ok and k.startswith("general.")
if sorted(a_t) != sorted(b_t):
    print("  tensors only in one:", sorted(set(a_t) ^ set(b_t)))
    ok = False
worst = 0.0
for n in sorted(set(a_t) & set(b_t)):
    (sa, da), (sb, db) = a_t[n], b_t[n]
    if sa != sb:
        print(f"  {n}: shape {sa}, converter {sb}")
        ok = False
        continue
    d = float(np.max(np.abs(da - db))) if da.size else 0.0
    worst = max(worst, d)
    if d > 0:
        print(f"  {n}: largest difference {d:.3g}")
ok = ok and worst <= 1e-3
print(f"  {len(a_t)} tensors, largest difference {worst:.3g}: {'same' if ok else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PY
status=0
for dir in tests/data/hf/*/; do
  m=$(basename "$dir")
  echo "$m"
  python3 "$tmp/convert.py" "$llama" "$tmp/fake" "$dir" --outtype f32 --outfile "$tmp/conv-$m.gguf" > "$tmp/log" 2>&1 ||
    { echo "  the converter failed: $(tail -1 "$tmp/log")"; status=1; continue; }
  "$bin/lm-quantize" -q -m "$dir" -o "$tmp/lm-$m.gguf" --type f32
  python3 "$tmp/compare.py" "$llama" "$tmp/lm-$m.gguf" "$tmp/conv-$m.gguf" || status=1
done
exit $status
