#!/usr/bin/env bash
# llama.cpp's tokenizer test suite run through lm-tokenize: for every NAME.gguf in DIR that has
# NAME.gguf.inp (texts separated by "\n__ggml_vocab_test__\n") and NAME.gguf.out (the ids
# llama.cpp gives for each text, one line per text), each text is encoded as one string with
# no BOS and no special-token parsing (`lm-tokenize encode --whole`), as llama.cpp's
# test-tokenizer-0 does, and compared with the expected ids.
#   bench/vocab_conformance.sh [-v] DIR     (DIR: llama.cpp's models/ folder)
# Prints "NAME: N passed, M failed" per vocabulary (with -v, each failing text and both id
# lists); exits 1 if any case failed. LM_BIN names the folder of lm-tokenize (default build/tools).
set -euo pipefail
verbose=0
[[ ${1:-} == -v ]] && { verbose=1; shift; }
dir=${1:?usage: bench/vocab_conformance.sh [-v] DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LM_BIN:-$here/build/tools}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed_any=0
shopt -s nullglob
for inp in "$dir"/*.gguf.inp; do
  vocab=${inp%.inp}
  out=$vocab.out
  name=$(basename "${vocab%.gguf}")
  if [[ ! -f $vocab || ! -f $out ]]; then
    echo "$name: skipped (no $(basename "$vocab") or .out beside the .inp)"
    continue
  fi
  rm -f "$work"/case.*
  # One file per text, split exactly on the separator; like llama.cpp's reader, no text
  # follows a final separator.
  LC_ALL=C awk -v RS='\n__ggml_vocab_test__\n' -v dir="$work" \
    '{ f = sprintf("%s/case.%04d", dir, NR - 1); printf "%s", $0 > f; close(f) }' "$inp"
  cases=("$work"/case.*)
  if ! "$bin/lm-tokenize" encode --whole -q -m "$vocab" "${cases[@]}" > "$work/got" 2> "$work/err"; then
    echo "$name: error: $(head -n 1 "$work/err")"
    failed_any=1
    continue
  fi
  # The .out lines start with a space; compare the ids only.
  sed -e 's/^ *//' -e 's/ *$//' "$out" > "$work/want"
  pass=0 fail=0
  while IFS= read -r -u 3 want && IFS= read -r -u 4 got; do
    if [[ $want == "$got" ]]; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      if ((verbose)); then
        i=$((pass + fail - 1))
        printf '  case %d: %q\n    want %s\n    got  %s\n' "$i" "$(cat "${cases[$i]}")" "$want" "$got"
      fi
    fi
  done 3< "$work/want" 4< "$work/got"
  [[ $(wc -l < "$work/want") == $(wc -l < "$work/got") ]] || { echo "$name: case counts differ"; fail=$((fail + 1)); }
  echo "$name: $pass passed, $fail failed"
  ((fail == 0)) || failed_any=1
done
exit $failed_any
