#!/usr/bin/env bash
# Builds microvm's Debian packages (microvm, libmicrovm-dev, microvm-bench) from the build
# folder, installs them with dpkg, then builds examples/ against the installed package, once
# with CMake's find_package and once with pkg-config, and boots a firmware guest to power-off
# with each program; checks that the installed `microvm bench` finds the installed tool and
# that the man pages and completions are in place. Needs root (or sudo) and /dev/kvm;
# scripts/test.sh runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${BUILD_DIR:-build}")
rm -f "$build"/microvm_*.deb "$build"/libmicrovm-dev_*.deb "$build"/microvm-bench_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
echo "== packages: $(cd "$build" && ls microvm_*.deb libmicrovm-dev_*.deb microvm-bench_*.deb | tr '\n' ' ')"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO dpkg -i "$build"/microvm_*.deb "$build"/libmicrovm-dev_*.deb "$build"/microvm-bench_*.deb >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
firmware="$build/firmware/boot_check"

echo "== examples/ against the installed package: CMake find_package(microvm)"
cmake -S examples -B "$work/cmake" -G Ninja >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/c/embed_c" "$firmware" bootcheck.exit=poweroff 64 </dev/null >"$work/c.out" 2>&1 || {
  cat "$work/c.out"; echo "FAIL: embed_c (find_package) did not power off"; exit 1; }
grep -q "guest ended with code 0" "$work/c.out" || { cat "$work/c.out"; echo "FAIL: embed_c output"; exit 1; }
# With a disk: the C++ API's DiskFormat enum, from the installed headers.
truncate -s 1M "$work/disk.raw"
"$work/cmake/embed_example" --kernel "$firmware" --cmdline bootcheck.exit=poweroff --memory-mib 64 \
  --disk "raw:$work/disk.raw" >"$work/cxx.out" 2>&1 || {
  cat "$work/cxx.out"; echo "FAIL: embed_example (C++ API, find_package) did not power off"; exit 1; }

echo "== examples/c against the installed package: pkg-config microvm"
# shellcheck disable=SC2046
cc examples/c/embed.c $(pkg-config --cflags --libs microvm) -o "$work/embed_pc"
"$work/embed_pc" "$firmware" bootcheck.exit=poweroff 64 </dev/null >"$work/pc.out" 2>&1 || {
  cat "$work/pc.out"; echo "FAIL: embed_c (pkg-config) did not power off"; exit 1; }
ldd "$work/embed_pc" | grep -E "libmicrovm.so.* => /(usr/)?lib/" >/dev/null || { ldd "$work/embed_pc"; echo "FAIL: not linked to the installed library"; exit 1; }

echo "== microvm bench runs the installed microvm-bench; man pages and completions installed"
/usr/bin/microvm bench --list >"$work/bench.out" 2>&1 || { cat "$work/bench.out"; echo "FAIL: microvm bench --list"; exit 1; }
grep -q "^startup " "$work/bench.out" || { cat "$work/bench.out"; echo "FAIL: no startup scenario listed"; exit 1; }
for page in microvm microvm-run microvm-ctl microvm-img microvm-bench; do
  [ -f "/usr/share/man/man1/$page.1.gz" ] || [ -f "/usr/share/man/man1/$page.1" ] || { echo "FAIL: man page $page(1) not installed"; exit 1; }
done
for completion in microvm microvm-bench; do
  [ -f "/usr/share/bash-completion/completions/$completion" ] || { echo "FAIL: bash completion for $completion not installed"; exit 1; }
done
dpkg -S /usr/bin/microvm-bench | grep -q "^microvm-bench:" || { echo "FAIL: microvm-bench is not in the microvm-bench package"; exit 1; }
/usr/bin/microvm --version | sed -n 1p
echo "== package test passed"
