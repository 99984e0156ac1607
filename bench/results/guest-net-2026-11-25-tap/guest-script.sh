set -u
RT=2
ip link set lo up
try3() {  # key command...
  k=$1; shift
  for t in 1 2 3; do
    out=$("$@" 2>&1)
    case "$out" in *receiver*|*mean_us=*) echo "MVB $k $(echo "$out" | grep -E 'receiver|mean_us' | tail -n 1)"; return 0;; esac
    sleep 1
  done
  echo "MVB $k failed $(echo "$out" | tail -n 2 | tr '\n' ' ')"
}
ip link set eth0 up
ip addr add 192.168.77.2/24 dev eth0
sleep 1
try3 tap_g2h iperf3 -c 192.168.77.1 -p 23374 -t $RT -f m
try3 tap_h2g iperf3 -R -c 192.168.77.1 -p 23374 -t $RT -f m
try3 tap_rr /usr/bin/tcp_rr client 192.168.77.1 23375 $RT
