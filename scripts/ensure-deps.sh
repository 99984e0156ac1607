#!/usr/bin/env bash
# Runs install-deps.sh unless everything it installs is already present (saves the apt round
# trip on a machine that has been set up before).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=0
for tool in cmake ninja g++ pkg-config busybox cpio qemu-img mkfs.ext4 sgdisk sfdisk mkfs.vfat mcopy mdir clang-16 clang-format-14 fio gnuplot strace curl dpkg-shlibdeps help2man passt; do
  command -v "$tool" >/dev/null 2>&1 || { missing=1; break; }
done
if [ $missing -eq 0 ]; then
  for pc in liburing libseccomp zlib libzstd ext2fs com_err; do
    pkg-config --exists "$pc" || { missing=1; break; }
  done
fi
# libslirp by its header, as devices/net/CMakeLists.txt finds it (slirp.pc needs glib's .pc).
[ -f /usr/include/slirp/libslirp.h ] && [ -f /usr/lib/systemd/boot/efi/linuxx64.efi.stub ] && [ -f /usr/include/CLI/CLI.hpp ] && [ -f /usr/include/http_parser.h ] && [ -f /usr/include/nlohmann/json.hpp ] && [ -f /usr/include/gtest/gtest.h ] && [ -f /usr/include/benchmark/benchmark.h ] || missing=1
if [ $missing -ne 0 ]; then
  echo "== installing build and test dependencies (Debian packages)"
  "$here/install-deps.sh"
fi
