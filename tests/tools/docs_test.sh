#!/usr/bin/env bash
# For every lm-* tool: the options --help lists (per subcommand), the man page and the bash,
# zsh and fish completions name the same options, and none names an option the tool lacks.
source "$(dirname "$0")/lib.sh"

# Options in CLI11 help text: the first column of lines that start with "-".
help_options() {
  sed -n 's/^ \{1,\}\(-[^ ]*\( [^ ]\)\?\).*/\1/p' | tr ',' '\n' |
    sed -E 's/\{.*//; s/[ =].*//' | grep -E '^--?[A-Za-z0-9]' | sort -u
}
subcommands() { sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z][a-z0-9-]*\) .*/\1/p'; }

for bin in "$LM_BIN"/lm-*; do
  [[ -x $bin ]] || continue
  tool=$(basename "$bin")
  man=$LM_SRC/man/$tool.1
  bash_c=$LM_SRC/completions/bash/$tool
  zsh_c=$LM_SRC/completions/zsh/_$tool
  fish_c=$LM_SRC/completions/fish/$tool.fish
  for f in "$man" "$bash_c" "$zsh_c" "$fish_c"; do
    if [[ -s $f ]]; then pass; else fail "$tool: $f is missing"; fi
  done
  "$bin" --help > top.txt || fail "$tool --help exited non-zero"
  {
    help_options < top.txt
    for sub in $(subcommands < top.txt); do "$bin" "$sub" --help | help_options; done
  } | sort -u > opts.txt
  [[ -s opts.txt ]] || fail "$tool: no options found in --help"
  while read -r opt; do
    if [[ $opt == --* ]]; then
      name=${opt#--}
      grep -qF -- "\\-\\-${name//-/\\-}" "$man" 2>/dev/null || fail "$tool: man page lacks $opt"
      grep -Eq -- "(^|[^a-z-])--$name([^a-z-]|\$)" "$bash_c" 2>/dev/null || fail "$tool: bash completion lacks $opt"
      grep -Eq -- "(^|[^a-z-])--$name([^a-z-]|\$)" "$zsh_c" 2>/dev/null || fail "$tool: zsh completion lacks $opt"
      grep -Eq -- "-l $name([^a-z-]|\$)" "$fish_c" 2>/dev/null || fail "$tool: fish completion lacks $opt"
    else
      name=${opt#-}
      grep -qE -- "\\\\-$name([^a-z]|\$)" "$man" 2>/dev/null || fail "$tool: man page lacks $opt"
      grep -Eq -- "(^|[^a-z-])-$name([^a-z-]|\$)" "$bash_c" 2>/dev/null || fail "$tool: bash completion lacks $opt"
      grep -Eq -- "(^|[^a-z-])-$name([^a-z-]|\$)" "$zsh_c" 2>/dev/null || fail "$tool: zsh completion lacks $opt"
      grep -Eq -- "-s $name([^a-z-]|\$)" "$fish_c" 2>/dev/null || fail "$tool: fish completion lacks $opt"
    fi
    pass
  done < opts.txt
  # The other way round: nothing documented or completed that --help does not know.
  # Man page lines that name another lm tool (examples, cross references) quote its options.
  others=$(cd "$LM_BIN" && ls -d lm-* | grep -vx "$tool" | paste -sd'|')
  { sed 's/\\-/-/g' "$man" | { if [[ -n $others ]]; then grep -vE "($others)([^a-z-]|\$)"; else cat; fi; } |
      grep -oE -- '--[a-z][a-z0-9-]*'
    grep -ohE -- '(^|[ "'"'"'({])--[a-z][a-z0-9-]*' "$bash_c" "$zsh_c" | grep -oE -- '--[a-z][a-z0-9-]*'
    grep '^complete' "$fish_c" | grep -oE -- ' -l [a-z][a-z0-9-]*' | sed 's/^ -l /--/'
  } | sort -u > named.txt
  while read -r opt; do
    grep -qx -- "$opt" opts.txt || fail "$tool: $opt is documented or completed but not in --help"
  done < named.txt
  # The man page renders without warnings.
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
