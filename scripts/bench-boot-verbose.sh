#!/usr/bin/env bash
# One verbose boot per VMM (printk timestamps instead of `quiet`), sequential, so the
# guest kernel's own timeline shows where a boot-time difference between microvm and QEMU
# comes from. Output: OUTDIR/vb-microvm.log, vb-qemu.log, vb-times.txt (wall clock).
#   scripts/bench-boot-verbose.sh [OUTDIR] [MICROVM_BINARY]
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/bench/results/boot-verbose}
bin=${2:-$here/build-bench/cli/microvm}
mkdir -p "$out" && cd "$out" || exit 1
rm -f vb-times.txt
CMD="$(cat "$here/../shared/guest/cmdline" | sed 's/ quiet//') printk.time=1"
printf 'true\n' > t.sh; "$here/scripts/make-initramfs.sh" vb.cpio --script t.sh >/dev/null
start=$(date +%s.%N)
timeout 600 "$bin" run --kernel "$here/../shared/guest/vmlinux" --initrd vb.cpio --cmdline "$CMD" --memory 512M --cpus 1 < /dev/null > vb-microvm.log 2>&1
echo "microvm wall $(echo "$(date +%s.%N) - $start" | bc)" >> vb-times.txt
start=$(date +%s.%N)
timeout 600 qemu-system-x86_64 -M microvm -enable-kvm -cpu qemu64,+x2apic,vendor=GenuineIntel -smp 1 -m 512M -nodefaults -no-user-config -display none -serial stdio -kernel "$here/../shared/guest/vmlinux" -initrd vb.cpio -append "$CMD" < /dev/null > vb-qemu.log 2>&1
echo "qemu wall $(echo "$(date +%s.%N) - $start" | bc)" >> vb-times.txt
rm -f vb.cpio t.sh
