#!/usr/bin/env bash
# In-guest virtio-blk throughput under microvm and under QEMU, same kernel, disk and settings.
# For hosts with hardware virtualization: where guest kernel code is emulated (see
# `microvm bench`), these numbers measure the emulator. Use `microvm bench --device-only` there.
#
#   scripts/bench-guest-blk.sh KERNEL [SCRATCH_IMG] [CMDLINE]
#
# Builds an initramfs holding the host's fio (with its shared libraries) and bench/guest/blk.fio,
# boots each VMM with the scratch image as the second disk (raw, cache=none, io_uring), and
# prints fio's JSON for each between markers. Results land in out/guest-blk/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernel=${1:?usage: $0 KERNEL [SCRATCH_IMG] [CMDLINE]}
img=${2:-$root/out/guest-blk/scratch.img}
cmdline=${3:-console=ttyS0 reboot=k panic=-1}
out=$root/out/guest-blk
mkdir -p "$out"
command -v fio >/dev/null || { echo "fio is needed on the host (apt-get install fio)" >&2; exit 1; }
[ -f "$img" ] || truncate -s 4G "$img"
truncate -s 64M "$out/empty.img"

adds=(--add "$(command -v fio):/usr/bin/fio" --add "$root/bench/guest/blk.fio:/blk.fio")
for lib in $(ldd "$(command -v fio)" | grep -o '/[^ ]*'); do adds+=(--add "$lib:$lib"); done
cat >"$out/run.sh" <<'SH'
echo "==FIO-JSON-BEGIN=="
/usr/bin/fio --output-format=json /blk.fio
echo "==FIO-JSON-END=="
SH
"$root/scripts/make-initramfs.sh" "$out/initramfs.cpio" --script "$out/run.sh" "${adds[@]}" >/dev/null

extract() { sed -n '/==FIO-JSON-BEGIN==/,/==FIO-JSON-END==/p' "$1" | sed '1d;$d' | tr -d '\r'; }

echo "== microvm" >&2
"$root/build/cli/microvm" run --kernel "$kernel" --initrd "$out/initramfs.cpio" --cpus 2 --memory 1G \
  --cmdline "$cmdline" --disk "$out/empty.img,format=raw" --disk "$img,format=raw,cache=none,engine=io_uring" \
  </dev/null >"$out/microvm.log"
extract "$out/microvm.log" >"$out/microvm.json"

echo "== qemu" >&2
qemu-system-x86_64 -M microvm,acpi=on,pcie=on -enable-kvm -cpu host -smp 2 -m 1G -nographic -nodefaults \
  -no-reboot -serial stdio -kernel "$kernel" -initrd "$out/initramfs.cpio" -append "$cmdline" \
  -drive id=d0,file="$out/empty.img",format=raw,if=none -device virtio-blk-pci,drive=d0 \
  -drive id=d1,file="$img",format=raw,if=none,aio=io_uring,cache=none -device virtio-blk-pci,drive=d1 \
  </dev/null >"$out/qemu.log"
extract "$out/qemu.log" >"$out/qemu.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
res = {}
for vmm in ("microvm", "qemu"):
    with open(f"{out}/{vmm}.json") as f:
        res[vmm] = {j["jobname"]: j for j in json.load(f)["jobs"]}
print(f"{'job':<20} {'microvm IOPS':>14} {'qemu IOPS':>12} {'ratio':>7}")
for name, j in res["microvm"].items():
    m = j["read"]["iops"] + j["write"]["iops"]
    q = res["qemu"][name]["read"]["iops"] + res["qemu"][name]["write"]["iops"]
    print(f"{name:<20} {m:>14.0f} {q:>12.0f} {m / q if q else 0:>7.2f}")
PY
