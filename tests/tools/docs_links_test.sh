#!/usr/bin/env bash
# The design lives in docs/: no file of the source tree names a design document outside the
# repository, every docs/NAME.md a file names exists, and the links between the docs/ files
# (file and #section) resolve. Scans $LM_SRC without .git, build trees, data/ and .cache/.
source "$(dirname "$0")/lib.sh"

# The outside documents, spelled so that this script does not name them itself.
outside=(DESIGN RELIABILITY PERFORMANCE STYLE)
forbidden="($(IFS='|'; echo "${outside[*]}"))\\.md|\\.\\./shared"

# Files of the tree at $1, NUL-separated: no .git, no build trees (build*/ or any directory
# holding a CMakeCache.txt), no fetched data or npm packages (tests/node/node_modules).
tree_files() {
  local root=$1 dir
  local prune=(-name .git -o -path "$root/build*" -o -path "$root/data" -o -path "$root/.cache" -o -name node_modules)
  while IFS= read -r -d '' dir; do prune+=(-o -path "$dir"); done < <(
    find "$root" -name .git -prune -o -name CMakeCache.txt -printf '%h\0')
  find "$root" \( "${prune[@]}" \) -prune -o -type f -print0
}

# Lines naming an outside document in the tree at $1, as "path:line:text".
outside_refs() { tree_files "$1" | xargs -0 grep -I -n -E -- "$forbidden" /dev/null; }

# The check must catch what it looks for: a scratch tree with one reference of each kind.
mkdir -p scratch/build/sub scratch/lib
for name in "${outside[@]}"; do printf '// see %s.md, section 2\n' "$name"; done > scratch/lib/a.hpp
printf '# notes in %s/shared\n' ".." > scratch/lib/b.sh
printf '// %s.md\n' "${outside[0]}" > scratch/build/sub/c.cpp  # in a build tree: not scanned
found=$(outside_refs scratch | wc -l)
if [[ $found == 5 ]]; then pass; else fail "the scan found $found references in the scratch tree, expected 5"; fi

# No file of the source tree names an outside document.
refs=$(outside_refs "$LM_SRC")
if [[ -z $refs ]]; then pass; else fail "files name design documents outside the repository (use docs/):
$refs"; fi

# Every docs/NAME.md that a file names exists.
[[ -f $LM_SRC/docs/README.md ]] && pass || fail "docs/README.md is missing"
named=$(tree_files "$LM_SRC" | xargs -0 grep -I -o -h -E 'docs/[a-z_-]+\.md' | sort -u)
[[ -n $named ]] && pass || fail "no file names a docs/ document"
for doc in $named; do
  if [[ -f $LM_SRC/$doc ]]; then pass; else
    fail "$doc is named by $(tree_files "$LM_SRC" | xargs -0 grep -I -l -F "$doc" | sed "s|^$LM_SRC/||" | tr '\n' ' ')but does not exist"
  fi
done

# GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to '-'.
anchors() {
  sed -n 's/^#\{1,6\} \{1,\}//p' "$1" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9 _-]//g; s/ /-/g'
}

# Links between the docs/ files, [text](FILE.md) and [text](FILE.md#anchor), resolve.
for md in "$LM_SRC"/docs/*.md; do
  while IFS= read -r link; do
    target=${link%%#*} anchor=
    [[ $link == *#* ]] && anchor=${link#*#}
    file=$(dirname "$md")/$target
    if [[ ! -f $file ]]; then
      fail "docs/$(basename "$md"): link to $link: no file $target"
    elif [[ -n $anchor ]] && ! anchors "$file" | grep -qx -- "$anchor"; then
      fail "docs/$(basename "$md"): link to $link: no section with that anchor in $target"
    else
      pass
    fi
  done < <(grep -o -E '\]\([^)#:]*\.md(#[a-z0-9_-]+)?\)' "$md" | sed 's/^](//; s/)$//')
  # Links to a section of the same file, [text](#anchor).
  while IFS= read -r anchor; do
    if anchors "$md" | grep -qx -- "$anchor"; then pass; else
      fail "docs/$(basename "$md"): link to #$anchor: no section with that anchor"
    fi
  done < <(grep -o -E '\]\(#[a-z0-9_-]+\)' "$md" | sed 's/^](#//; s/)$//')
done

finish
