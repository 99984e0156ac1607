#!/usr/bin/env bash
# Installs everything microvm needs to build, test and benchmark, from Debian 12 packages.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential g++ clang lld cmake ninja-build pkg-config git python3 \
  linux-libc-dev liburing-dev libseccomp-dev libcli11-dev nlohmann-json3-dev libhttp-parser-dev \
  zlib1g-dev libzstd-dev libslirp-dev libext2fs-dev \
  libgtest-dev libgmock-dev googletest libbenchmark-dev libclang-rt-14-dev \
  clang-16 libclang-rt-16-dev clang-format-14 \
  busybox-static cpio e2fsprogs gdisk fdisk dosfstools mtools systemd-boot-efi qemu-utils qemu-system-x86 qemu-system-common \
  dpkg-dev help2man fio iproute2 iperf3 gnuplot-nox hyperfine strace curl procps util-linux kmod passt
