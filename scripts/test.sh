#!/usr/bin/env bash
# Installs what is missing, builds microvm with its tests and runs them all:
# unit tests, KVM tests with firmware guests, Linux guest boots and brief fuzzing.
# A test that needs /dev/kvm or the guest kernel fails (never skips) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh
[ -e /dev/kvm ] || echo "WARNING: /dev/kvm is missing: every KVM and Linux test will FAIL" >&2
status=0
# The include arrows of docs/architecture.md (a few seconds, no build needed).
scripts/check-layering.sh || status=1
# Benchmark output and generated charts stay out of git (.gitignore; docs/img only what docs show).
scripts/check-tracked-output.sh || status=1
# The formatting of every tracked source (clang-format-14, .clang-format).
scripts/check-format.sh || status=1
# Unit tests in parallel; tests that run guests one at a time (each uses the whole machine).
(cd build && ctest --output-on-failure -j"$(nproc)" -L unit) || status=1
(cd build && ctest --output-on-failure -j1 -LE unit) || status=1
# The Debian packages: built, installed, and used by examples/ (find_package and pkg-config).
scripts/package-test.sh || status=1
if [ -x scripts/fuzz.sh ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/fuzz.sh || status=1
fi
exit $status
