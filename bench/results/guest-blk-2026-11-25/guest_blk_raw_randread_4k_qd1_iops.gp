set terminal pngcairo noenhanced size 720,420 font 'sans,10'
set output '/tmp/gb/blk-report/guest_blk_raw_randread_4k_qd1_iops.png'
set title "guest_blk: raw_randread_4k_qd1_iops (median, min–max)"
set ylabel "IOPS (higher is better)"
set yrange [0:*]
set xrange [-0.6:1.6]
set boxwidth 0.5
set style fill solid 0.6 border -1
set grid ytics
unset key
$data << EOD
0 18.608 18.608 18.608 "18.6"
1 35.395 35.395 35.395 "35.4"
EOD
set xtics ("microvm" 0, "qemu" 1)
plot $data using 1:2 with boxes lc rgb '#4a90d9', '' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, '' using 1:2:5 with labels offset 0,1
