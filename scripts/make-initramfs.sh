#!/usr/bin/env bash
# Builds a small, UNCOMPRESSED newc initramfs around Debian's static busybox.
#
#   make-initramfs.sh OUT.cpio [--script FILE] [--add HOSTFILE:GUESTPATH]...
#                              [--bin HOSTBINARY:GUESTPATH]...
#                              [--boot-marker PATH] [--busybox PATH]
#
# --bin adds a dynamically linked host program plus every shared library `ldd` lists for it
# (at the same paths, the dynamic loader included), e.g. --bin /usr/bin/fio:/usr/bin/fio.
#
# Uncompressed because the test host emulates guest kernel mode: gunzip of a 1 MB
# initramfs costs 15-20 s there. The archive is written by this script itself (the
# newc format is ASCII headers + data), so /dev/console can be a real character
# device node without running as root, and the output is reproducible (mtime 0).
#
# /init mounts proc, sysfs and devtmpfs, runs the boot marker if present (port 0x402,
# for `microvm run --boot-timer`), prints "microvm-guest: userspace ready", then
#   - with --script: runs it as /test.sh, prints "microvm-guest: test exit=<N>",
#     and powers off;
#   - without: starts an interactive shell with job control on the console and
#     powers off when it exits; plain `poweroff`, `halt` and `reboot` work too.
set -euo pipefail

usage() {
  echo "usage: $0 OUT.cpio [--script FILE] [--add HOSTFILE:GUESTPATH]... [--bin HOSTBINARY:GUESTPATH]... [--boot-marker PATH] [--busybox PATH]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
OUT=$1
shift
SCRIPT=
BUSYBOX=${BUSYBOX:-}
BOOT_MARKER=${BOOT_MARKER:-}
ADDS=()
BINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --script) [ $# -ge 2 ] || usage; SCRIPT=$2; shift 2 ;;
    --add) [ $# -ge 2 ] || usage; ADDS+=("$2"); shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; BINS+=("$2"); shift 2 ;;
    --boot-marker) [ $# -ge 2 ] || usage; BOOT_MARKER=$2; shift 2 ;;
    --busybox) [ $# -ge 2 ] || usage; BUSYBOX=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "$0: unknown argument: $1" >&2; usage ;;
  esac
done

if [ -z "$BUSYBOX" ]; then
  for c in /bin/busybox /usr/bin/busybox; do
    if [ -x "$c" ]; then BUSYBOX=$c; break; fi
  done
fi
if [ -z "$BUSYBOX" ] || [ ! -x "$BUSYBOX" ]; then
  echo "$0: busybox not found; install busybox-static (scripts/install-deps.sh)" >&2
  exit 1
fi
# A dynamically linked busybox would need its libraries in the image.
if ! LC_ALL=C od -A n -t x1 -N 4 "$BUSYBOX" | grep -q '7f 45 4c 46'; then
  echo "$0: $BUSYBOX is not an ELF binary" >&2
  exit 1
fi
if command -v readelf >/dev/null && readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP; then
  echo "$0: $BUSYBOX is dynamically linked; install busybox-static" >&2
  exit 1
fi
if [ -z "$BOOT_MARKER" ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  [ -x "$here/build/firmware/boot_marker" ] && BOOT_MARKER=$here/build/firmware/boot_marker
fi
[ -z "$SCRIPT" ] || [ -f "$SCRIPT" ] || { echo "$0: no such script: $SCRIPT" >&2; exit 1; }
[ -z "$BOOT_MARKER" ] || [ -f "$BOOT_MARKER" ] || { echo "$0: no such boot marker: $BOOT_MARKER" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ARCHIVE=$TMP/archive
: >"$ARCHIVE"
INO=1
declare -A HAVE=()

# One newc entry: name mode size rdevmajor rdevminor [datafile]. Name without leading "/".
entry() {
  local name=$1 mode=$2 size=$3 rmaj=$4 rmin=$5 data=${6:-}
  local namesize=$(( ${#name} + 1 ))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$INO" "$mode" 0 0 1 0 "$size" 0 0 "$rmaj" "$rmin" "$namesize" 0 >>"$ARCHIVE"
  printf '%s\0' "$name" >>"$ARCHIVE"
  pad $(( (4 - (110 + namesize) % 4) % 4 ))
  if [ -n "$data" ]; then
    cat "$data" >>"$ARCHIVE"
    pad $(( (4 - size % 4) % 4 ))
  fi
  INO=$((INO + 1))
  HAVE[$name]=1
}
pad() { [ "$1" -eq 0 ] || head -c "$1" /dev/zero >>"$ARCHIVE"; }

dir() {
  local d=${1#/}
  [ -n "$d" ] && [ -z "${HAVE[$d]:-}" ] || return 0
  [ "$(dirname "$d")" = . ] || dir "$(dirname "$d")"
  entry "$d" $((0040755)) 0 0 0
}
file() {  # host path, guest path, mode
  local g=${2#/}
  [ -z "${HAVE[$g]:-}" ] || { echo "$0: duplicate guest path /$g" >&2; exit 1; }
  [ "$(dirname "$g")" = . ] || dir "$(dirname "$g")"
  entry "$g" $((0100000 | $3)) "$(stat -L -c %s "$1")" 0 0 "$1"
}
symlink() {  # target, guest path
  local g=${2#/}
  [ -z "${HAVE[$g]:-}" ] || return 0
  printf '%s' "$1" >"$TMP/link"
  entry "$g" $((0120777)) ${#1} 0 0 "$TMP/link"
}
chardev() {  # guest path, major, minor
  entry "${1#/}" $((0020600)) 0 "$2" "$3"
}

for d in bin sbin usr/bin usr/sbin dev proc sys tmp root etc mnt; do dir "$d"; done
chardev dev/console 5 1   # the kernel opens it for init's stdio before devtmpfs is up
chardev dev/null 1 3
file "$BUSYBOX" /bin/busybox 0755
# Symlinks only for what /init and #! lines need plus common commands: each entry costs
# emulated kernel time to unpack, and busybox's standalone shell finds every other
# applet without a link.
for a in sh ash mount umount setsid cttyhack poweroff reboot halt echo cat ls mkdir rm cp mv \
         ln ps dmesg grep sed sort head tail wc dd sync sleep uname md5sum sha256sum cmp \
         hexdump od true false test env sysctl; do
  symlink busybox "bin/$a"
done

cat >"$TMP/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -x /usr/bin/boot_marker ] && /usr/bin/boot_marker
echo "microvm-guest: userspace ready"
if [ -f /test.sh ]; then
  sh /test.sh
  echo "microvm-guest: test exit=$?"
  poweroff -f
fi
# PID 1 gets no default signal actions, so busybox's plain poweroff/halt/reboot (which signal
# init: USR2, USR1, TERM) would do nothing without these traps. Traps run between commands, so
# init polls the shell with a builtin 1 s read (no fork) instead of blocking in one long wait.
trap 'poweroff -f' USR2
trap 'halt -f' USR1
trap 'reboot -f' TERM
setsid cttyhack sh &
shell=$!
mkfifo /tmp/.init-tick
exec 4<>/tmp/.init-tick
while kill -0 "$shell" 2>/dev/null; do
  read -t 1 -u 4 _ || true
done
poweroff -f
INIT
file "$TMP/init" /init 0755
[ -z "$BOOT_MARKER" ] || file "$BOOT_MARKER" /usr/bin/boot_marker 0755
[ -z "$SCRIPT" ] || file "$SCRIPT" /test.sh 0755
for spec in ${ADDS[@]+"${ADDS[@]}"}; do
  host=${spec%%:*}
  guest=${spec#*:}
  if [ "$host" = "$spec" ] || [ -z "$guest" ] || [ "${guest#/}" = "$guest" ]; then
    echo "$0: --add wants HOSTFILE:/ABSOLUTE/GUESTPATH, got: $spec" >&2
    exit 1
  fi
  [ -f "$host" ] || { echo "$0: no such file: $host" >&2; exit 1; }
  mode=0644
  [ -x "$host" ] && mode=0755
  file "$host" "$guest" $((mode))
done
for spec in ${BINS[@]+"${BINS[@]}"}; do
  host=${spec%%:*}
  guest=${spec#*:}
  if [ "$host" = "$spec" ] || [ -z "$guest" ] || [ "${guest#/}" = "$guest" ]; then
    echo "$0: --bin wants HOSTBINARY:/ABSOLUTE/GUESTPATH, got: $spec" >&2
    exit 1
  fi
  [ -f "$host" ] || { echo "$0: no such file: $host" >&2; exit 1; }
  file "$host" "$guest" $((0755))
  # Libraries shared by several binaries go in once; a statically linked binary lists none.
  for lib in $(ldd "$host" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -n "${HAVE[${lib#/}]:-}" ] || file "$lib" "$lib" $((0755))
  done
done

entry TRAILER!!! 0 0 0 0
# newc archives are conventionally padded to 512 bytes.
size=$(stat -c %s "$ARCHIVE")
pad $(( (512 - size % 512) % 512 ))
mv "$ARCHIVE" "$OUT"
