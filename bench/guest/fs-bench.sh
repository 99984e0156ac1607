#!/usr/bin/env bash
# In-guest virtio-fs throughput and metadata rates under microvm and under QEMU, with the same
# kernel, the same virtiofsd binary and options (cache=auto) and the same host folder.
# For hosts with hardware virtualization: where guest kernel code is emulated (see
# `microvm bench`), these numbers measure the emulator; use `microvm bench --device-only` there.
# Needs root (virtiofsd does) and fio on the host.
#
#   bench/guest/fs-bench.sh KERNEL [HOST_DIR] [CMDLINE]
#
# Builds an initramfs holding the host's fio (with its shared libraries) and bench/guest/fs.fio,
# boots each VMM with HOST_DIR shared as tag `bench` (default out/guest-fs/share, emptied
# first), runs fio on it in the guest and prints fio's JSON between markers. Results land in
# out/guest-fs/: microvm.json, qemu.json and a side-by-side table on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kernel=${1:?usage: $0 KERNEL [HOST_DIR] [CMDLINE]}
out=$root/out/guest-fs
share=${2:-$out/share}
cmdline=${3:-console=ttyS0 reboot=k panic=-1}
microvm=${MICROVM:-$root/build/cli/microvm}
qemu=${QEMU:-qemu-system-x86_64}
virtiofsd=${VIRTIOFSD:-$(command -v virtiofsd || echo /usr/lib/qemu/virtiofsd)}
mkdir -p "$out" "$share"
command -v fio >/dev/null || { echo "fio is needed on the host (apt-get install fio)" >&2; exit 1; }
[ -x "$virtiofsd" ] || { echo "virtiofsd not found (set VIRTIOFSD=...)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root: virtiofsd needs it" >&2; exit 1; }

adds=(--add "$(command -v fio):/usr/bin/fio" --add "$root/bench/guest/fs.fio:/fs.fio")
for lib in $(ldd "$(command -v fio)" | grep -o '/[^ ]*'); do adds+=(--add "$lib:$lib"); done
cat >"$out/run.sh" <<'SH'
mkdir -p /mnt/share
mount -t virtiofs bench /mnt/share || { echo "mount failed"; exit 1; }
mkdir -p /mnt/share/fio
echo "==FIO-JSON-BEGIN=="
FS_DIR=/mnt/share/fio /usr/bin/fio --output-format=json /fs.fio
echo "==FIO-JSON-END=="
rm -rf /mnt/share/fio
umount /mnt/share
SH
"$root/scripts/make-initramfs.sh" "$out/initramfs.cpio" --script "$out/run.sh" "${adds[@]}" >/dev/null

extract() { sed -n '/==FIO-JSON-BEGIN==/,/==FIO-JSON-END==/p' "$1" | sed '1d;$d' | tr -d '\r'; }

echo "== microvm" >&2
"$microvm" run --kernel "$kernel" --initrd "$out/initramfs.cpio" --cpus 2 --memory 1G --cmdline "$cmdline" \
  --share "$share,tag=bench" --virtiofsd "$virtiofsd" </dev/null >"$out/microvm.log"
extract "$out/microvm.log" >"$out/microvm.json"

echo "== qemu" >&2
# The same virtiofsd with the options microvm passes it; QEMU needs shared guest RAM for it.
sock=$(mktemp -d)/virtiofsd.sock
"$virtiofsd" --socket-path="$sock" -o source="$share" -o cache=auto -o log_level=warn &
fsd=$!
trap 'kill $fsd 2>/dev/null || true' EXIT
for _ in $(seq 1000); do [ -S "$sock" ] && break; sleep 0.01; done
"$qemu" -M microvm,acpi=on,pcie=on,memory-backend=mem -enable-kvm -cpu host -smp 2 -m 1G -nographic \
  -nodefaults -no-reboot -serial stdio -kernel "$kernel" -initrd "$out/initramfs.cpio" -append "$cmdline" \
  -object memory-backend-memfd,id=mem,size=1G,share=on \
  -chardev socket,id=fs0,path="$sock" -device vhost-user-fs-pci,chardev=fs0,tag=bench \
  </dev/null >"$out/qemu.log"
extract "$out/qemu.log" >"$out/qemu.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
res = {}
for vmm in ("microvm", "qemu"):
    with open(f"{out}/{vmm}.json") as f:
        res[vmm] = {j["jobname"]: j for j in json.load(f)["jobs"]}
print(f"{'job':<18} {'microvm':>14} {'qemu':>14} {'ratio':>7}")
for name, j in res["microvm"].items():
    # Sequential jobs in MiB/s, metadata jobs (filecreate/filestat/filedelete) in files/s.
    seq = name.startswith("seq")
    def value(job):
        if seq:
            return (job["read"]["bw"] + job["write"]["bw"]) / 1024.0
        return job["read"]["iops"] + job["write"]["iops"]
    m, q = value(j), value(res["qemu"][name])
    unit = "MiB/s" if seq else "files/s"
    print(f"{name:<18} {m:>8.0f} {unit:<5} {q:>8.0f} {unit:<5} {m / q if q else 0:>7.2f}")
PY
