#!/usr/bin/env bash
# Prints the default guest as shell assignments: KERNEL=..., CMDLINE=...
# The test kernel in ../shared/guest/ when present (it needs its own command line on hosts
# that emulate guest kernel code), otherwise the host's own kernel, which boots on any
# real KVM host. MICROVM_KERNEL / MICROVM_CMDLINE override both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
guest_dir=${MICROVM_GUEST_DIR:-$root/../shared/guest}
if [ -n "${MICROVM_KERNEL:-}" ]; then
  kernel=$MICROVM_KERNEL
  cmdline=${MICROVM_CMDLINE:-console=ttyS0 reboot=k panic=-1}
elif [ -f "$guest_dir/vmlinux" ]; then
  kernel=$guest_dir/vmlinux
  cmdline=${MICROVM_CMDLINE:-$(cat "$guest_dir/cmdline")}
elif [ -f "/boot/vmlinuz-$(uname -r)" ]; then
  kernel=/boot/vmlinuz-$(uname -r)
  cmdline=${MICROVM_CMDLINE:-console=ttyS0 reboot=k panic=-1}
else
  echo "no guest kernel: set MICROVM_KERNEL, or provide ../shared/guest/vmlinux or /boot/vmlinuz-$(uname -r)" >&2
  exit 1
fi
printf 'KERNEL=%q\nCMDLINE=%q\n' "$kernel" "$cmdline"
