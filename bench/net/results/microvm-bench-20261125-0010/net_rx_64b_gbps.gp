set terminal pngcairo noenhanced size 720,420 font 'sans,10'
set output 'bench/net/results/microvm-bench-20261125-0010/net_rx_64b_gbps.png'
set title "net: rx_64b_gbps (median, min–max)"
set ylabel "Gbit/s (higher is better)"
set yrange [0:*]
set xrange [-0.6:1.6]
set boxwidth 0.5
set style fill solid 0.6 border -1
set grid ytics
unset key
$data << EOD
0 0.122521 0.0908289 0.183575 "0.123"
1 0.104641 0.10199 0.108708 "0.105"
EOD
set xtics ("microvm" 0, "host" 1)
plot $data using 1:2 with boxes lc rgb '#4a90d9', '' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, '' using 1:2:5 with labels offset 0,1
