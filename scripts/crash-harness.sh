#!/usr/bin/env bash
# Crash-consistency harness: boots firmware/blk_crash_writer (sequence-numbered 4 KiB
# block writes + FLUSH, "FLUSHED <F>" on the console after each successful flush)
# against one disk image, SIGKILLs microvm at a random moment, and checks on the host
# that every write the guest saw flushed is still there, every block is whole (magic,
# checksum) or its previous content, and for qcow2 that `qemu-img check` finds no
# corruption (exit 0, or 3 = leaked clusters only). The next cycle continues on the
# same image with a new epoch number, so each cycle's verification stays exact.
#
# Usage: scripts/crash-harness.sh [--cycles N] [--format raw|qcow2] [--seed S]
#          [--microvm PATH] [--firmware PATH] [--min-ms A] [--max-ms B] [--keep DIR]
# Defaults: microvm = $MICROVM_BINARY or build/cli/microvm, firmware =
# $MICROVM_FIRMWARE or build/firmware/blk_crash_writer, kill 100-600 ms after start.
# Cycles alternate transport mmio/pci and cache writeback/none (all four pairs).
# Prints one line per cycle and a final
#   SUMMARY format=F cycles=N lost=L torn=T check_errors=C leaks=K lock_waits=W ...
# Exit 0 iff lost, torn, check errors and guest FAIL lines are all zero.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cycles=100
format=raw
seed=$RANDOM
microvm=${MICROVM_BINARY:-$root/build/cli/microvm}
firmware=${MICROVM_FIRMWARE:-$root/build/firmware/blk_crash_writer}
min_ms=100
max_ms=600
keep=""
blocks=256
# A plain interpreter: a pyenv shim costs ~0.5 s of bash per start on a loaded host.
python=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3 )}

while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    --format) format=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --microvm) microvm=$2; shift 2 ;;
    --firmware) firmware=$2; shift 2 ;;
    --min-ms) min_ms=$2; shift 2 ;;
    --max-ms) max_ms=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "crash-harness: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$format" in raw|qcow2) ;; *) echo "crash-harness: --format raw|qcow2" >&2; exit 2 ;; esac
for f in "$microvm" "$firmware"; do
  [ -x "$f" ] || { echo "crash-harness: not executable: $f" >&2; exit 2; }
done
if [ "$format" = qcow2 ] && ! command -v qemu-img > /dev/null; then
  echo "crash-harness: qemu-img not found (qemu-utils)" >&2; exit 2
fi

if [ -n "$keep" ]; then
  work=$keep; mkdir -p "$work"
else
  work=$(mktemp -d /tmp/crash-harness.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
RANDOM=$seed

# The host-side check, one run per cycle. Mirrors fill_block() in
# firmware/blk_crash_writer/main.c.
cat > "$work/verify.py" <<'PY'
import struct, sys
image, baseline, epoch, flushed, blocks, stride, offset = sys.argv[1:8]
epoch, flushed, blocks, stride, offset = map(int, (epoch, flushed, blocks, stride, offset))
B, WORDS, MAGIC, M = 4096, 1024, 0x48535243, 0xffffffff
cur = open(image, "rb").read()
base = open(baseline, "rb").read()
if len(cur) < blocks * B or len(base) < blocks * B:
    print("verify: image shorter than %d blocks (%d bytes)" % (blocks, len(cur))); sys.exit(1)

FILL = bytes(B)
def check(e, s, b, i):
    return (((e * 0x9E3779B1) ^ (s * 0x85EBCA6B) ^ (b * 0xC2B2AE35) ^ (i * 0x27D4EB2F)) + 0x165667B1) & M
def parse(blk, b):
    # Every 512-byte sector: MAGIC, epoch, seq, block, index, check; the rest zero.
    e = s = None
    for i in range(8):
        o = i * 512
        h = struct.unpack_from("<6I", blk, o)
        if h[0] != MAGIC or h[3] != b or h[4] != i or h[5] != check(h[1], h[2], b, i): return None
        if e is None: e, s = h[1], h[2]
        elif (h[1], h[2]) != (e, s): return None
        if blk[o + 24:o + 512] != FILL[o + 24:o + 512]: return None
    return (e, s)

def block_of(seq): return (seq * stride + offset) & (blocks - 1)
inv = pow(stride, -1, blocks)
lost = torn = newer = required = 0
msgs = []
for b in range(blocks):
    blk, old = cur[b * B:(b + 1) * B], base[b * B:(b + 1) * B]
    # The last seq <= flushed this epoch wrote to b (seqs start at 1).
    r = ((b - offset) * inv) % blocks
    req = flushed - ((flushed - r) % blocks)
    if req < 1 and blk == old: continue
    got = parse(blk, b)
    ours = got is not None and got[0] == epoch and block_of(got[1]) == b
    if req >= 1:
        required += 1
        if not ours or got[1] < req:
            lost += 1
            msgs.append("block %d: want epoch %d seq >= %d, found %s" % (b, epoch, req, got if got else "invalid/old bytes"))
        elif got[1] > req: newer += 1
    elif blk != old:
        if ours: newer += 1
        else:
            torn += 1
            msgs.append("block %d: neither its previous content nor a whole block of epoch %d (%s)" % (b, epoch, got))
for m in msgs[:8]: print("verify: " + m)
print("required=%d lost=%d torn=%d newer=%d" % (required, lost, torn, newer))
sys.exit(1 if lost or torn else 0)
PY

img=$work/disk.$format
if [ "$format" = raw ]; then
  truncate -s $((blocks * 4096)) "$img"
else
  qemu-img create -q -f qcow2 "$img" $((blocks * 4096)) || exit 1
fi
truncate -s $((blocks * 4096)) "$work/base.raw"

total_lost=0 total_torn=0 check_errors=0 lock_waits=0 leaks=0 guest_fails=0 flushed_cycles=0 flush_lines=0
start_ns=$(date +%s%N)
for ((c = 1; c <= cycles; c++)); do
  transport=mmio; [ $((c % 2)) -eq 0 ] && transport=pci
  cache=writeback; [ $(((c / 2) % 2)) -eq 1 ] && cache=none
  stride=$(((RANDOM % 128) * 2 + 1))
  offset=$((RANDOM % blocks))
  depth=$((RANDOM % 6 + 1))
  delay_ms=$((min_ms + RANDOM % (max_ms - min_ms + 1)))
  log=$work/console.$c
  vmseed=$RANDOM
  for ((try = 0; try < 40; try++)); do
    "$microvm" run --kernel "$firmware" --memory 64M --no-rng --transport "$transport" \
      --disk "$img,format=$format,cache=$cache" \
      --cmdline "console=ttyS0 crash.transport=$transport crash.epoch=$c crash.seed=$vmseed crash.blocks=$blocks crash.stride=$stride crash.offset=$offset crash.depth=$depth" \
      > "$log" 2> "$log.err" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    kill -KILL "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    rc=$?
    # The previous cycle's image lock may linger for a moment (see qemu-img check below).
    [ "$rc" -eq 1 ] && grep -q 'is in use by' "$log.err" || break
    lock_waits=$((lock_waits + 1)); sleep 0.05
  done
  flushed=$(tr -d '\r' < "$log" | sed -n 's/^FLUSHED \([0-9][0-9]*\)$/\1/p' | tail -n 1)
  nflush=$(grep -c '^FLUSHED ' "$log")
  flush_lines=$((flush_lines + nflush))
  [ -n "$flushed" ] || flushed=0
  [ "$nflush" -gt 0 ] && flushed_cycles=$((flushed_cycles + 1))
  fails=$(grep -c 'CRASH FAIL' "$log")
  note=""
  if [ "$fails" -gt 0 ]; then guest_fails=$((guest_fails + fails)); note="$note guest_fail=$(grep -m1 'CRASH FAIL' "$log")"; fi
  if [ "$rc" -ne 137 ]; then note="$note exit=$rc($(tail -c 300 "$log.err" | tr '\n' ' '))"; fi

  check="-"
  if [ "$format" = qcow2 ]; then
    # After SIGKILL the image's lock can outlive the reaped process for a moment (the
    # kernel tears io_uring instances down asynchronously): wait for it, count the waits.
    for ((try = 0; try < 40; try++)); do
      qemu-img check -q -f qcow2 "$img" > "$work/check.$c" 2>&1
      crc=$?
      [ "$crc" -eq 1 ] && grep -q 'Failed to lock' "$work/check.$c" || break
      lock_waits=$((lock_waits + 1)); sleep 0.05
    done
    check=$crc
    case $crc in
      0) ;;
      3) leaks=$((leaks + 1)) ;;
      *) check_errors=$((check_errors + 1)); note="$note check=$crc($(head -c 300 "$work/check.$c" | tr '\n' ' '))" ;;
    esac
    qemu-img convert -f qcow2 -O raw "$img" "$work/cur.raw" || { check_errors=$((check_errors + 1)); note="$note convert_failed"; }
    cur=$work/cur.raw
  else
    cur=$img
  fi
  vout=$("$python" -S "$work/verify.py" "$cur" "$work/base.raw" "$c" "$flushed" "$blocks" "$stride" "$offset" 2>&1)
  vrc=$?
  vlast=$(printf '%s\n' "$vout" | tail -n 1)
  lost=$(printf '%s' "$vlast" | sed -n 's/.*lost=\([0-9]*\).*/\1/p'); lost=${lost:-0}
  torn=$(printf '%s' "$vlast" | sed -n 's/.*torn=\([0-9]*\).*/\1/p'); torn=${torn:-0}
  total_lost=$((total_lost + lost)); total_torn=$((total_torn + torn))
  if [ "$vrc" -ne 0 ]; then
    [ "$lost" -eq 0 ] && [ "$torn" -eq 0 ] && total_torn=$((total_torn + 1))  # verifier itself failed
    note="$note $(printf '%s' "$vout" | head -n 4 | tr '\n' ' ')"
    cp "$log" "$work/failed-console.$c" 2> /dev/null
  fi
  cp "$cur" "$work/base.raw"
  echo "cycle $c transport=$transport cache=$cache depth=$depth kill_ms=$delay_ms flushes=$nflush last_flushed=$flushed check=$check $vlast$note"
  rm -f "$log" "$log.err" "$work/check.$c"
done
end_ns=$(date +%s%N)
ms_per_cycle=$(((end_ns - start_ns) / 1000000 / (cycles > 0 ? cycles : 1)))
echo "SUMMARY format=$format cycles=$cycles lost=$total_lost torn=$total_torn check_errors=$check_errors leaks=$leaks lock_waits=$lock_waits guest_fails=$guest_fails flushed_cycles=$flushed_cycles flush_lines=$flush_lines ms_per_cycle=$ms_per_cycle seed=$seed"
[ "$total_lost" -eq 0 ] && [ "$total_torn" -eq 0 ] && [ "$check_errors" -eq 0 ] && [ "$guest_fails" -eq 0 ]
