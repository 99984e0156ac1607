set -u
RT=2
ip link set lo up
try3() {  # key command...
  k=$1; shift
  for t in 1 2 3; do
    out=$("$@" 2>&1)
    line=$(echo "$out" | grep -E 'receiver|mean_us' | tail -n 1)
    case "$line" in *receiver*|*mean_us=*) echo "MVB $k $line"; return 0;; esac
    sleep 1
  done
  echo "MVB $k failed $(echo "$out" | tail -n 2 | tr '\n' ' ')"
}
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
sleep 1
try3 user_g2h iperf3 -c 10.0.2.2 -p 31452 -t $RT -f m
try3 user_h2g iperf3 -R -c 10.0.2.2 -p 31452 -t $RT -f m --rcv-timeout 3600000
try3 user_rr /usr/bin/tcp_rr client 10.0.2.2 31453 $RT
ip link set eth1 up
ip addr add 192.168.77.2/24 dev eth1
sleep 1
try3 tap_g2h iperf3 -c 192.168.77.1 -p 31452 -t $RT -f m
try3 tap_h2g iperf3 -R -c 192.168.77.1 -p 31452 -t $RT -f m --rcv-timeout 3600000
try3 tap_rr /usr/bin/tcp_rr client 192.168.77.1 31453 $RT
