#!/usr/bin/env bash
# Where microvm's start-up time goes: runs `microvm run` under `strace -f -ttt` N times
# (default 7) with the shared guest kernel and prints the median time of each phase
# between exec and the first KVM_RUN, cut at syscalls every start performs:
#
#   scripts/bench-startup-phases.sh [MICROVM_BINARY] [N]
#
# Env: KERNEL, INITRD (default: a tiny initramfs built with make-initramfs.sh),
#      MEMORY (default 512M). strace slows syscalls, not computation, so phases that are
#      mostly page faults and copies are close to their untraced cost.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build-bench/cli/microvm}
n=${2:-7}
kernel=${KERNEL:-$here/../shared/guest/vmlinux}
cmdline=$(cat "$(dirname "$kernel")/cmdline" 2>/dev/null || echo "console=ttyS0")
work=$(mktemp -d /tmp/bench-phases.XXXXXX)
trap 'rm -rf "$work"' EXIT
initrd=${INITRD:-}
if [ -z "$initrd" ]; then
  echo "sleep 3600" > "$work/s.sh"
  "$here/scripts/make-initramfs.sh" "$work/init.cpio" --script "$work/s.sh" >/dev/null
  initrd=$work/init.cpio
fi
for i in $(seq 1 "$n"); do
  strace -f -ttt -o "$work/t$i" "$bin" run --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
    --memory "${MEMORY:-512M}" >/dev/null 2>&1 &
  sleep 2
  # strace's child is the VMM; killing it makes strace exit and flush its log.
  vmm=$(cat /proc/$!/task/$!/children 2>/dev/null | awk '{print $1}')
  [ -n "$vmm" ] && kill -KILL "$vmm" 2>/dev/null || true
  wait $! 2>/dev/null || true
  sleep 0.5
done
python3 - "$work" "$n" "$kernel" "$initrd" <<'PY'
import os, re, statistics, sys
work, n, kernel, initrd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
marks = [
    ("exec -> /dev/kvm opened (dynamic loading, static init, argument parsing)", lambda l: 'openat(' in l and '"/dev/kvm"' in l),
    ("KVM VM, irqchip, PIT", lambda l: 'memfd_create(' in l),
    ("guest RAM memfd + KVM_SET_USER_MEMORY_REGION, event loop", lambda l: 'openat(' in l and kernel in l),
    ("kernel image: read/map + copy PT_LOAD segments into guest RAM", lambda l: 'openat(' in l and initrd in l),
    ("initrd copy, boot params, tables", lambda l: 'KVM_CREATE_VCPU' in l),
    ("vCPU setup + thread start -> first KVM_RUN", lambda l: 'KVM_RUN' in l),
]
phases = [[] for _ in marks]
totals = []
for i in range(1, n + 1):
    lines = open(os.path.join(work, f"t{i}")).read().splitlines()
    def ts(l): return float(l.split()[1])
    t0 = next(ts(l) for l in lines if 'execve(' in l and '= 0' in l)
    prev, k, ok = t0, 0, True
    for l in lines:
        if k < len(marks) and marks[k][1](l):
            phases[k].append((ts(l) - prev) * 1000); prev = ts(l); k += 1
    if k == len(marks): totals.append((prev - t0) * 1000)
for (name, _), v in zip(marks, phases):
    if v: print(f"{statistics.median(v):8.1f} ms  (min {min(v):6.1f})  {name}")
if totals: print(f"{statistics.median(totals):8.1f} ms  (min {min(totals):6.1f})  total exec -> first KVM_RUN, {len(totals)} runs")
PY
