#!/usr/bin/env bash
# In-guest virtio-net benchmark: iperf3 inside the guest against `iperf3 -s` on the host, under
# microvm and under QEMU with equivalent settings. For hosts with hardware virtualization: where
# guest kernel code is emulated (`microvm bench` says so), these numbers measure the emulator;
# use `microvm bench --device-only --scenario net --compare host` there.
#
#   bench/guest/net-iperf3.sh host KERNEL [OUT_DIR]     on the KVM host, as root (tap, bridge)
#   bench/guest/net-iperf3.sh guest SERVER_IP LABEL     inside the guest (the host mode runs this)
#
# Host mode builds an initramfs with the host's iperf3 (plus its libraries) and this script,
# starts `iperf3 -s` on the host, and boots each configuration in turn. Every configuration gets
# the same kernel, the same command line, 2 vCPUs and 1 GiB, and one virtio-net device with
# mergeable RX buffers and the checksum/TSO offloads on (the defaults of both VMMs):
#
#   microvm, tap, vhost off  microvm run ... --cpus 2 --memory 1G --net tap=mvbench0,vhost=off
#   microvm, tap, vhost on   microvm run ... --cpus 2 --memory 1G --net tap=mvbench0,vhost=on
#   QEMU, tap, vhost off     qemu-system-x86_64 -M microvm,acpi=on,pcie=on -enable-kvm -cpu host -smp 2 -m 1G
#                              -netdev tap,id=n0,ifname=mvbench0,script=no,downscript=no,vhost=off
#                              -device virtio-net-pci,netdev=n0,mrg_rxbuf=on ...
#   QEMU, tap, vhost on      the same with vhost=on
#   microvm, user            microvm run ... --net user,host-loopback=on   (guest 10.0.2.15, host 10.0.2.2)
#   QEMU, user               -netdev user,id=n0 -device virtio-net-pci,netdev=n0
#
# The tap mvbench0 is created here (persistent, 10.0.100.1/24 on the host side; the guest takes
# 10.0.100.2) and deleted on exit. vhost=on needs /dev/vhost-net; configurations that cannot run
# are reported as skipped. With user networking (libslirp in both VMMs) the guest reaches the
# host's iperf3 through 10.0.2.2.
#
# What the guest runs, for each configuration (10 s each, iperf3 JSON between markers):
#   tcp_tx       iperf3 -c HOST -t 10            guest -> host, one TCP stream (TSO)
#   tcp_rx       iperf3 -c HOST -t 10 -R         host -> guest
#   udp64_tx     iperf3 -c HOST -u -l 64 -b 0    64-byte UDP datagrams, guest -> host: packets/s
#   udp64_rx     the same with -R
#   rr           ping -c 200 -i 0.01 HOST        request/response round trip (ICMP echo), plus
#                netperf -t TCP_RR when the guest has netperf (add it with EXTRA_BINS=/usr/bin/netperf
#                and run netserver on the host)
# Results: OUT_DIR/<config>.log (console) and OUT_DIR/summary.txt (Gbit/s, packets/s, RTT),
# with the microvm/QEMU ratio per test for the same network kind.
#
# Environment: MICROVM (default build/cli/microvm), QEMU (qemu-system-x86_64), SECONDS_PER_TEST
# (10), CMDLINE, EXTRA_BINS (space-separated host binaries to add to the guest), DRY_RUN=1
# (print the VMM command lines, boot nothing).
set -euo pipefail

guest_mode() {
  local server=$1 label=$2 secs=${SECONDS_PER_TEST:-10}
  run() {
    local name=$1
    shift
    echo "==NET-BEGIN $label $name=="
    "$@" || echo "failed: $*"
    echo "==NET-END $label $name=="
  }
  run tcp_tx iperf3 -J -c "$server" -t "$secs"
  run tcp_rx iperf3 -J -c "$server" -t "$secs" -R
  run udp64_tx iperf3 -J -c "$server" -t "$secs" -u -l 64 -b 0
  run udp64_rx iperf3 -J -c "$server" -t "$secs" -u -l 64 -b 0 -R
  run rr ping -c 200 -i 0.01 "$server"
  if command -v netperf >/dev/null; then
    run tcp_rr netperf -H "$server" -t TCP_RR -l "$secs"
  fi
}

host_mode() {
  local root kernel out microvm qemu cmdline tap=mvbench0
  root=$(cd "$(dirname "$0")/../.." && pwd)
  kernel=${1:?usage: $0 host KERNEL [OUT_DIR]}
  out=${2:-$root/out/guest-net}
  microvm=${MICROVM:-$root/build/cli/microvm}
  qemu=${QEMU:-qemu-system-x86_64}
  cmdline=${CMDLINE:-console=ttyS0 reboot=k panic=-1 quiet}
  mkdir -p "$out"
  command -v iperf3 >/dev/null || { echo "iperf3 is needed on the host (apt-get install iperf3)" >&2; exit 1; }

  # The guest side: this script plus a wrapper that configures eth0 and calls it.
  local bins=(--bin "$(command -v iperf3):/usr/bin/iperf3")
  for b in ${EXTRA_BINS:-}; do bins+=(--bin "$b:/usr/bin/$(basename "$b")"); done
  cat >"$out/run.sh" <<'SH'
ip link set lo up
ip link set eth0 up
if grep -q 'net=user' /proc/cmdline; then
  udhcpc -i eth0 -q -n >/dev/null 2>&1 || ip addr add 10.0.2.15/24 dev eth0
  server=10.0.2.2
else
  ip addr add 10.0.100.2/24 dev eth0
  server=10.0.100.1
fi
label=$(sed -n 's/.*bench_label=\([^ ]*\).*/\1/p' /proc/cmdline)
sh /net-iperf3.sh guest "$server" "$label"
SH
  if [ -z "${DRY_RUN:-}" ]; then
    "$root/scripts/make-initramfs.sh" "$out/initramfs.cpio" --script "$out/run.sh" \
      --add "$root/bench/guest/net-iperf3.sh:/net-iperf3.sh" "${bins[@]}" >/dev/null
    ip tuntap add dev "$tap" mode tap
    ip addr add 10.0.100.1/24 dev "$tap"
    ip link set "$tap" up
    iperf3 -s -D --pidfile "$out/iperf3.pid"
    trap 'kill "$(cat "$out/iperf3.pid" 2>/dev/null)" 2>/dev/null || true; ip link del "$tap" 2>/dev/null || true' EXIT
    sleep 1
  fi

  boot() {  # boot LABEL NETKIND COMMAND...
    local label=$1 kind=$2
    shift 2
    echo "== $label" >&2
    if [ -n "${DRY_RUN:-}" ]; then
      printf '%q ' "$@"
      echo
      return
    fi
    if [ "$kind" = vhost ] && [ ! -c /dev/vhost-net ]; then
      echo "skipped: no /dev/vhost-net" >"$out/$label.log"
      return
    fi
    timeout 600 "$@" </dev/null >"$out/$label.log" 2>&1 || echo "$label: VMM exited with $?" >&2
  }
  local common_m=(run --kernel "$kernel" --initrd "$out/initramfs.cpio" --cpus 2 --memory 1G)
  local common_q=(-M "microvm,acpi=on,pcie=on" -enable-kvm -cpu host -smp 2 -m 1G -nographic -nodefaults
    -no-reboot -serial stdio -kernel "$kernel" -initrd "$out/initramfs.cpio")
  local vhost
  for vhost in off on; do
    local kind=plain
    [ "$vhost" = on ] && kind=vhost
    boot "microvm-tap-vhost-$vhost" "$kind" "$microvm" "${common_m[@]}" \
      --cmdline "$cmdline bench_label=microvm-tap-vhost-$vhost" --net "tap=$tap,vhost=$vhost"
    boot "qemu-tap-vhost-$vhost" "$kind" "$qemu" "${common_q[@]}" \
      -append "$cmdline bench_label=qemu-tap-vhost-$vhost" \
      -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=$vhost" \
      -device virtio-net-pci,netdev=n0,mrg_rxbuf=on
  done
  boot microvm-user plain "$microvm" "${common_m[@]}" --cmdline "$cmdline net=user bench_label=microvm-user" \
    --net user,host-loopback=on  # the host's iperf3 through 10.0.2.2 (closed by default; open in QEMU)
  boot qemu-user plain "$qemu" "${common_q[@]}" -append "$cmdline net=user bench_label=qemu-user" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,mrg_rxbuf=on
  [ -n "${DRY_RUN:-}" ] && return

  python3 - "$out" <<'PY' | tee "$out/summary.txt"
import glob, json, os, re, sys
out = sys.argv[1]
def sections(path):
    text = open(path, errors="replace").read().replace("\r", "")
    return {m.group(1): m.group(2) for m in re.finditer(r"==NET-BEGIN \S+ (\S+)==\n(.*?)==NET-END", text, re.S)}
def value(test, body):
    if test == "rr":
        m = re.search(r"= [\d.]+/([\d.]+)/", body)
        return float(m.group(1)) if m else None, "ms RTT"
    if test == "tcp_rr":
        m = re.findall(r"^\s*\d+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+([\d.]+)", body, re.M)
        return float(m[-1]) if m else None, "trans/s"
    try:
        end = json.loads(body)["end"]
    except (ValueError, KeyError):
        return None, ""
    if test.startswith("udp"):
        s = end["sum"]
        return s["packets"] / s["seconds"], "packets/s"
    return end["sum_received"]["bits_per_second"] / 1e9, "Gbit/s"
results = {}
for log in sorted(glob.glob(f"{out}/*.log")):
    label = os.path.basename(log)[:-4]
    results[label] = {t: value(t, b) for t, b in sections(log).items()}
print(f"{'config':<24} {'test':<9} {'value':>12} {'unit':<10} {'microvm/qemu':>12}")
for label, tests in results.items():
    peer = label.replace("microvm", "qemu") if label.startswith("microvm") else None
    for t, (v, unit) in tests.items():
        ratio = ""
        q = results.get(peer, {}).get(t, (None, ""))[0] if peer else None
        if v is not None and q:
            ratio = f"{(q / v if t == 'rr' else v / q):.2f}"
        print(f"{label:<24} {t:<9} {'' if v is None else f'{v:.3f}':>12} {unit:<10} {ratio:>12}")
PY
}

case "${1:-}" in
  guest) shift; guest_mode "$@" ;;
  host) shift; host_mode "$@" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
