#!/usr/bin/env bash
# lib/check_layers.cmake, which the build runs for every lib folder: an include of a folder the
# layer does not declare fails, naming the file and line; declared ones, the folder's own, and
# includes that are not lib folders pass.
source "$(dirname "$0")/lib.sh"
check=$LM_SRC/lib/check_layers.cmake
mkdir -p lib/base lib/format lib/eval
echo '#include "base/error.hpp"' > lib/format/ok.cpp
printf '#include "format/ok.hpp"\n#include <vector>\n#include "CLI/CLI.hpp"\n' > lib/format/ok.hpp
expect_exit 0 "declared includes" -- cmake -DLAYER=format -DUSES=base -DDIR="$T/lib" -DSTAMP="$T/format.ok" -P "$check"
[[ -e format.ok ]] && pass || fail "no stamp written for a clean folder"
printf '#include "base/error.hpp"\n  #include "eval/classify.hpp"\n' > lib/format/up.cpp
expect_exit 1 "an upward include" -- cmake -DLAYER=format -DUSES=base -DDIR="$T/lib" -DSTAMP="$T/up.ok" -P "$check"
grep -q 'lib/format may include only lib/format and: base' "$T/err" && grep -q 'lib/format/up.cpp:   #include "eval/classify.hpp"' "$T/err" &&
  pass || fail "upward include message: $(cat "$T/err")"
[[ ! -e up.ok ]] && pass || fail "a stamp was written for a folder that fails"
# The real tree passes with the declarations in lib/CMakeLists.txt.
for layer in base format tokenizer chat quant kernels model dataset sample eval train; do
  uses=$(sed -n "s/^set(LM_USES_$layer \(.*\))\$/\1/p" "$LM_SRC/lib/CMakeLists.txt" | tr -d '"' | tr ' ' ',')
  expect_exit 0 "lib/$layer" -- cmake -DLAYER=$layer -DUSES="$uses" -DDIR="$LM_SRC/lib" -DSTAMP="$T/$layer.ok" -P "$check"
done
finish
