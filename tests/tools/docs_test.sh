#!/usr/bin/env bash
# For every lm-* tool: the man page and the bash, zsh and fish completions the build installs are
# current (what the tool's own option declarations generate now, docs/cli.md), name every option
# --help lists, parse as shell code, and render without groff warnings; the hand-written prose
# of the man page names no option the tool lacks.
source "$(dirname "$0")/lib.sh"
build=$LM_BIN/..

# Options in CLI11 help text: the first column of lines that start with "-".
help_options() {
  sed -n 's/^ \{1,\}\(-[^ ]*\( [^ ]\)\?\).*/\1/p' | tr ',' '\n' |
    sed -E 's/\{.*//; s/[ =].*//' | grep -E '^--?[A-Za-z0-9]' | sort -u
}
subcommands() { sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z][a-z0-9-]*\) .*/\1/p'; }

for bin in "$LM_BIN"/lm-*; do
  [[ -x $bin ]] || continue
  tool=$(basename "$bin")
  man=$build/man/$tool.1
  bash_c=$build/completions/bash/$tool
  zsh_c=$build/completions/zsh/_$tool
  fish_c=$build/completions/fish/$tool.fish
  template=$LM_SRC/man/$tool.1.in

  # Current: generating again from the binary gives the same four files.
  mkdir -p fresh
  if cmake -DTOOL="$bin" -DNAME="$tool" -DTEMPLATE="$template" -DOUT="$T/fresh" -P "$LM_SRC/tools/gen_docs.cmake" \
       > gen.log 2>&1; then pass; else fail "$tool: generating its docs failed: $(head -c 300 gen.log)"; fi
  same_files "$man" "fresh/man/$tool.1" "$tool man page"
  same_files "$bash_c" "fresh/completions/bash/$tool" "$tool bash completion"
  same_files "$zsh_c" "fresh/completions/zsh/_$tool" "$tool zsh completion"
  same_files "$fish_c" "fresh/completions/fish/$tool.fish" "$tool fish completion"

  # Complete: every option --help shows is in the man page and the completions.
  "$bin" --help > top.txt || fail "$tool --help exited non-zero"
  {
    help_options < top.txt
    for sub in $(subcommands < top.txt); do "$bin" "$sub" --help | help_options; done
  } | sort -u > opts.txt
  [[ -s opts.txt ]] || fail "$tool: no options found in --help"
  while read -r opt; do
    if [[ $opt == --* ]]; then
      name=${opt#--}
      grep -qF -- "\\fB\\-\\-${name//-/\\-}\\fR" "$man" || fail "$tool: man page lacks $opt"
      grep -Eq -- "(^|[^a-z-])--$name([^a-z-]|\$)" "$bash_c" || fail "$tool: bash completion lacks $opt"
      grep -Eq -- "(^|[^a-z-])--$name([^a-z-]|\$)" "$zsh_c" || fail "$tool: zsh completion lacks $opt"
      grep -Eq -- "-l $name([^a-z-]|\$)" "$fish_c" || fail "$tool: fish completion lacks $opt"
    else
      name=${opt#-}
      grep -qF -- "\\fB\\-$name\\fR" "$man" || fail "$tool: man page lacks $opt"
      grep -Eq -- "(^|[^a-z-])-$name([^a-z-]|\$)" "$bash_c" || fail "$tool: bash completion lacks $opt"
      grep -Eq -- "(^|[^a-z-])-$name([^a-z-]|\$)" "$zsh_c" || fail "$tool: zsh completion lacks $opt"
      grep -Eq -- "-s $name([^a-z-]|\$)" "$fish_c" || fail "$tool: fish completion lacks $opt"
    fi
    pass
  done < opts.txt

  # The hand-written prose names only options the tool has (lines naming another lm tool, or
  # mpirun, quote that tool's options).
  others=$(cd "$LM_BIN" && { ls -d lm-* | grep -vx "$tool"; echo mpirun; } | paste -sd'|')
  sed 's/\\-/-/g' "$template" | { if [[ -n $others ]]; then grep -vE "($others)([^a-z-]|\$)"; else cat; fi; } |
    grep -oE -- '--[a-z][a-z0-9-]*' | sort -u > named.txt
  while read -r opt; do
    grep -qx -- "$opt" opts.txt && pass || fail "$tool: $template names $opt, which --help lacks"
  done < named.txt

  # The completions are valid shell code; the page renders cleanly.
  bash -n "$bash_c" && pass || fail "$tool: bash completion does not parse"
  if command -v zsh > /dev/null; then zsh -n "$zsh_c" && pass || fail "$tool: zsh completion does not parse"; fi
  if command -v fish > /dev/null; then fish -n "$fish_c" && pass || fail "$tool: fish completion does not parse"; fi
  if command -v groff > /dev/null; then
    warn=$(groff -t -man -Tutf8 -ww -z "$man" 2>&1)
    [[ -z $warn ]] && pass || fail "$tool: groff warnings: $warn"
  fi
done
for page in "$LM_SRC"/man/*.5; do
  [[ -e $page ]] || continue
  if command -v groff > /dev/null; then
    warn=$(groff -t -man -Tutf8 -ww -z "$page" 2>&1)
    [[ -z $warn ]] && pass || fail "$(basename "$page"): groff warnings: $warn"
  fi
done
finish
