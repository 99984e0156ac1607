#!/usr/bin/env bash
# Installs what is missing, builds microvm and boots the default guest to a busybox shell on
# this terminal. Leave the guest with `poweroff` (exit code 0), `reboot` (exit code 3) or C-a x.
# Extra arguments go to `microvm run` (e.g. --cpus 4 --memory 1G).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh
eval "$(scripts/default-guest.sh)"
mkdir -p build/guest
scripts/make-initramfs.sh build/guest/initramfs.cpio --boot-marker build/firmware/boot_marker >/dev/null
echo "== booting $KERNEL (C-a x quits)" >&2
exec build/cli/microvm run --kernel "$KERNEL" --initrd build/guest/initramfs.cpio \
  --cpus 2 --memory 512M --cmdline "$CMDLINE" "$@"
