#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.cc) with clang into build-fuzz/ and runs each
# for FUZZ_SECONDS (default 60), printing the executions per target. Exit status is non-zero if
# a target failed to build or found a crash (artifacts in build-fuzz/artifacts/).
#
#   scripts/fuzz.sh                     # every target, 60 s each
#   FUZZ_SECONDS=20 scripts/fuzz.sh fuzz_queue
#
# Seed corpora are read from tests/fuzz/corpus/<target>/; new inputs go to build-fuzz/corpus/.
# A libFuzzer dictionary at tests/fuzz/dict/<target>.dict is passed when present.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
BUILD_DIR=${BUILD_DIR:-build-fuzz}
CC=${FUZZ_CC:-clang-16}
CXX=${FUZZ_CXX:-clang++-16}
JOBS=${JOBS:-2}

# libstdc++ 12's <expected> is only enabled for __cpp_concepts >= 202002L. Clang 16 implements
# what it needs (P0848, conditionally trivial special members) but still reports 201907L, so
# the macro is raised for this build only. Clang 14 lacks P0848 and cannot build the tree.
FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS+=" -D__cpp_concepts=202002L -Wno-macro-redefined -Wno-unknown-warning-option"

if ! command -v "$CXX" >/dev/null; then
  echo "fuzz.sh: $CXX not found (scripts/install-deps.sh installs clang-16 and libclang-rt-16-dev)" >&2
  exit 2
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/fuzz_*.cc; do targets+=("$(basename "${f%.cc}")"); done
fi

mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMICROVM_FUZZ=ON -DMICROVM_BENCH=OFF \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
  >"$BUILD_DIR/configure.log" 2>&1 || { echo "fuzz.sh: configure failed, see $BUILD_DIR/configure.log" >&2; exit 2; }

# Symbolized sanitizer reports.
for s in /usr/lib/llvm-16/bin/llvm-symbolizer /usr/bin/llvm-symbolizer-16 /usr/bin/llvm-symbolizer-14 /usr/bin/llvm-symbolizer; do
  if [ -x "$s" ]; then export ASAN_SYMBOLIZER_PATH="$s"; break; fi
done
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

status=0
summary=()
mkdir -p "$BUILD_DIR/artifacts"
for t in "${targets[@]}"; do
  if ! ninja -C "$BUILD_DIR" -j"$JOBS" "$t" >"$BUILD_DIR/$t.build.log" 2>&1; then
    if grep -q "unknown target" "$BUILD_DIR/$t.build.log"; then
      summary+=("$t: NOT REGISTERED (add microvm_fuzz_target($t ...) to tests/fuzz/CMakeLists.txt)")
    else
      summary+=("$t: BUILD FAILED (see $BUILD_DIR/$t.build.log)")
    fi
    status=1
    continue
  fi
  bin=$(find "$BUILD_DIR" -type f -name "$t" -perm -u+x | head -1)
  work="$BUILD_DIR/corpus/$t"
  seeds="tests/fuzz/corpus/$t"
  mkdir -p "$work" "$seeds"
  log="$BUILD_DIR/$t.fuzz.log"
  dict=()
  if [ -f "tests/fuzz/dict/$t.dict" ]; then dict=(-dict="tests/fuzz/dict/$t.dict"); fi
  echo "== $t: fuzzing for ${FUZZ_SECONDS}s"
  "$bin" "$work" "$seeds" "${dict[@]}" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$BUILD_DIR/artifacts/$t-" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    summary+=("$t: FAILED (exit $rc) after ${execs:-?} executions; see $log and $BUILD_DIR/artifacts/")
    status=1
  else
    summary+=("$t: ok, ${execs:-?} executions, ${cov:-cov: ?} edges")
  fi
done

echo "== fuzz summary (${FUZZ_SECONDS}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
