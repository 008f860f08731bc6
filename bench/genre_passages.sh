#!/usr/bin/env bash
# Brown genre classification data: every document of DIR/brown.txt (blank lines between
# documents, in DIR/cats.txt order) cut into passages of at least WORDS words (whole
# sentences), each written as "genre<TAB>passage". Split by document as scripts/get-brown.sh
# splits it: every 10th document's passages go to OUT/test.tsv, the rest to OUT/train.tsv.
# Usage: bench/genre_passages.sh DIR OUT [WORDS]   (WORDS default 100)
set -euo pipefail
dir=$1 out=$2 words=${3:-100}
mkdir -p "$out"
awk -v words="$words" -v out="$out" '
  FNR == NR { genre[FNR] = $2; next }
  function flush() {
    if (n > 0) print genre[doc] "\t" text > (out "/" (doc % 10 == 0 ? "test" : "train") ".tsv")
    text = ""; n = 0
  }
  BEGIN { doc = 1 }
  /^$/ { flush(); doc++; next }
  { text = text (n ? " " : "") $0; n += NF; if (n >= words) flush() }
  END { flush() }
' "$dir/cats.txt" "$dir/brown.txt"
# A document tail shorter than a passage is kept: it is still that genre's text.
echo "genre_passages.sh: $(wc -l < "$out/train.tsv") training and $(wc -l < "$out/test.tsv") test passages" >&2
