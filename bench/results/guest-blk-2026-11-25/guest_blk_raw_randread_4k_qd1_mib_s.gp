set terminal pngcairo noenhanced size 720,420 font 'sans,10'
set output '/tmp/gb/blk-report/guest_blk_raw_randread_4k_qd1_mib_s.png'
set title "guest_blk: raw_randread_4k_qd1_mib_s (median, min–max)"
set ylabel "MiB/s (higher is better)"
set yrange [0:*]
set xrange [-0.6:1.6]
set boxwidth 0.5
set style fill solid 0.6 border -1
set grid ytics
unset key
$data << EOD
0 0.0726875 0.0726875 0.0726875 "0.0727"
1 0.138261 0.138261 0.138261 "0.138"
EOD
set xtics ("microvm" 0, "qemu" 1)
plot $data using 1:2 with boxes lc rgb '#4a90d9', '' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, '' using 1:2:5 with labels offset 0,1
