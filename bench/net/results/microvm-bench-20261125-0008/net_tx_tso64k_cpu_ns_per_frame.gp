set terminal pngcairo noenhanced size 720,420 font 'sans,10'
set output 'bench/net/results/microvm-bench-20261125-0008/net_tx_tso64k_cpu_ns_per_frame.png'
set title "net: tx_tso64k_cpu_ns_per_frame (median, min–max)"
set ylabel "ns (lower is better)"
set yrange [0:*]
set xrange [-0.6:1.6]
set boxwidth 0.5
set style fill solid 0.6 border -1
set grid ytics
unset key
$data << EOD
0 3114.7 3061.52 4368.39 "3115"
1 2342.26 2273.25 2376.41 "2342"
EOD
set xtics ("microvm" 0, "host" 1)
plot $data using 1:2 with boxes lc rgb '#4a90d9', '' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, '' using 1:2:5 with labels offset 0,1
