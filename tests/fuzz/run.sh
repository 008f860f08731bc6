#!/usr/bin/env bash
# Fuzzes lm's parsers and loaders with libFuzzer under ASan+UBSan (tests/fuzz/README.md).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     default: 60 seconds each, every target
#
# Targets: gguf model lora spm token_file jsonl labeled safetensors hf_tokenizer hf_config chat. Needs clang and libFuzzer, which the
# normal build does not: apt-get install clang libfuzzer-14-dev (Debian 12).
# Configures build-fuzz/ (CC=clang CXX=clang++, -O1 -g, -DLM_FUZZ=ON with ASan and UBSan), builds
# the targets, writes generated seeds, then runs the targets one after another (one process,
# OMP_NUM_THREADS=1: the machine may be shared), each for SECONDS with -rss_limit_mb=2048
# -malloc_limit_mb=1024 -timeout=5. The corpus each run grows is kept in build-fuzz/corpus/TARGET
# and read again next time, with tests/fuzz/seeds/TARGET and tests/fuzz/regressions/TARGET.
# Prints per target its executions, exec/s, coverage (cov: of libFuzzer's final line) and
# findings; a finding's input is written to build-fuzz/findings/TARGET/ and its report to
# build-fuzz/logs/TARGET.log. Exits 1 on any finding, 2 on a usage or setup error.
# LM_FUZZ_JOBS sets the build's -j (default 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
all=(gguf model lora spm token_file jsonl labeled safetensors hf_tokenizer hf_config chat)

seconds=${1:-60}
[[ $# -gt 0 ]] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: tests/fuzz/run.sh [SECONDS] [TARGET...]; targets: ${all[*]}" >&2
  exit 2
fi
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "run.sh: unknown target '$t'; targets: ${all[*]}" >&2; exit 2; }
done

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! command -v clang++ >/dev/null || ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>/dev/null; then
  echo "run.sh: needs clang++ with libFuzzer; install them with 'apt-get install clang libfuzzer-14-dev'" >&2
  exit 2
fi

b=build-fuzz
if [[ ! -f $b/CMakeCache.txt ]]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  CC=clang CXX=clang++ cmake -S . -B $b -DLM_FUZZ=ON -DLM_SANITIZE_ADDRESS=ON -DLM_SANITIZE_UNDEFINED=ON \
    -DLM_BUILD_TESTS=OFF -DLM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" "${launcher[@]}" >/dev/null || exit 2
fi
echo "run.sh: building the fuzz targets in $b/" >&2
if ! cmake --build $b -j"${LM_FUZZ_JOBS:-1}" --target fuzz_all > $b/build.log 2>&1; then
  grep -E 'error|Error' $b/build.log | head -20 >&2
  echo "run.sh: the build failed; see $b/build.log" >&2
  exit 2
fi
rm -rf $b/seeds
$b/tests/fuzz/lm_fuzz_seeds $b/seeds || exit 2

export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
findings=0
printf '%-11s %12s %8s %6s %s\n' target executions exec/s cov findings
for t in "${targets[@]}"; do
  mkdir -p $b/corpus/$t $b/findings/$t $b/logs
  dirs=($b/corpus/$t)
  # Generated seeds (make_seeds.cpp; safetensors has only committed ones), committed seeds, regressions.
  for d in $b/seeds/$t tests/fuzz/seeds/$t tests/fuzz/regressions/$t; do [[ -d $d ]] && dirs+=("$d"); done
  before=$(ls $b/findings/$t | wc -l)
  $b/tests/fuzz/fuzz_$t -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=5 \
    -print_final_stats=1 -artifact_prefix=$b/findings/$t/ "${dirs[@]}" > $b/logs/$t.log 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $b/logs/$t.log | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' $b/logs/$t.log | tail -1)
  cov=$(grep -o 'cov: [0-9]*' $b/logs/$t.log | tail -1 | cut -d' ' -f2)
  new=$(($(ls $b/findings/$t | wc -l) - before))
  what=0
  if ((rc == 72 && new == 0)) && grep -q 'libFuzzer: run interrupted' $b/logs/$t.log; then
    what="0 (interrupted)"  # SIGINT: libFuzzer prints its stats and exits 72
  elif ((rc != 0 || new > 0)); then
    findings=$((findings + 1))
    what="1 ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [^(]*|runtime error: .*|finding: .*|deadly signal|Assertion .*|uncaught exception.*' $b/logs/$t.log | head -c 120); input: $(ls -t $b/findings/$t | head -1), log: $b/logs/$t.log)"
  fi
  printf '%-11s %12s %8s %6s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$what"
done
if ((findings)); then
  echo "run.sh: $findings target(s) with findings; replay one with: $b/tests/fuzz/fuzz_TARGET $b/findings/TARGET/FILE" >&2
  exit 1
fi
