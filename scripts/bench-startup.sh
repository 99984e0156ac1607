#!/usr/bin/env bash
# VMM start-up and memory-overhead benchmark: microvm vs `qemu-system-x86_64 -M microvm`
# on the same kernel, initramfs, memory size and vCPU count (docs/benchmarks.md).
#
#   scripts/bench-startup.sh [RESULTS_DIR] [-- extra `microvm bench` options]
#
# Builds microvm and the bench tool in build-bench/ (set MICROVM_BENCH_NO_BUILD=1 to skip;
# MICROVM_BUILD_DIR to use another build directory), then runs the `startup` scenario with
# 10 alternating repetitions per VMM (REPS=N to change) and writes report.md,
# results.json and PNG charts into RESULTS_DIR (default bench/results/startup-<UTC date>).
# Needs /dev/kvm, strace, qemu-system-x86 and gnuplot-nox.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${MICROVM_BUILD_DIR:-$here/build-bench}
out=${1:-$here/bench/results/startup-$(date -u +%Y%m%d-%H%M%S)}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

if [ "${MICROVM_BENCH_NO_BUILD:-0}" != 1 ]; then
  cmake -S "$here" -B "$build" -G Ninja -DMICROVM_BENCH=ON >/dev/null
  ninja -j2 -C "$build" microvm microvm-bench
fi
for tool in strace qemu-system-x86_64 gnuplot; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

echo "load before: $(cat /proc/loadavg)" >&2
"$build/cli/bench/microvm-bench" --microvm "$build/cli/microvm" --scenario startup --compare qemu \
  --repetitions "${REPS:-10}" --report "$out" "$@"
echo "load after: $(cat /proc/loadavg)" >&2
echo "results: $out/report.md" >&2
