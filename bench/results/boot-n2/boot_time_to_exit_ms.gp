set terminal pngcairo noenhanced size 720,420 font 'sans,10'
set output '/work/main/bench/results/boot-n2/boot_time_to_exit_ms.png'
set title "boot: time_to_exit_ms (median, min–max)"
set ylabel "ms (lower is better)"
set yrange [0:*]
set xrange [-0.6:1.6]
set boxwidth 0.5
set style fill solid 0.6 border -1
set grid ytics
unset key
$data << EOD
0 231395 94633 368157 "231395"
1 115263 71308.6 159218 "115263"
EOD
set xtics ("microvm" 0, "qemu" 1)
plot $data using 1:2 with boxes lc rgb '#4a90d9', '' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, '' using 1:2:5 with labels offset 0,1
