# plot_contention.gp - latency CDF of bench-contention, one panel per thread
# count, one curve per swap-in design (A pin, B marker, C cache).
#   gnuplot -e "dir='results'" bench/plot_contention.gp  ->  dir/contention-cdf.png
#   (-e "threads='2 4 8'": the --threads list the benchmark ran, in order)
# Input: dir/contention-<design>.csv, one data block per thread count
# (threads,quantile,latency_us), in the order of --threads.
if (!exists("dir")) dir = 'results'
if (!exists("threads")) threads = '2 4 8'
n = words(threads)
set terminal png size 500*n,900
set output dir.'/contention-cdf.png'
set datafile separator ','
set logscale x
set xrange [0.05:*]
set xlabel 'touch latency (us, log)'
set grid
set multiplot layout 2,n title 'bench-contention: first touch after eviction, by swap-in design (top: CDF; bottom: tail, 1 - CDF)'
do for [b=0:n-1] {
	set title sprintf('%s threads', word(threads, b + 1))
	unset logscale y
	set yrange [0:1]
	set ylabel 'fraction of touches'
	set key top left
	plot dir.'/contention-pin.csv' index b using 3:2 with lines lw 2 title 'A pin', \
	     dir.'/contention-marker.csv' index b using 3:2 with lines lw 2 title 'B marker', \
	     dir.'/contention-cache.csv' index b using 3:2 with lines lw 2 title 'C cache'
}
do for [b=0:n-1] {
	set title sprintf('%s threads: tail', word(threads, b + 1))
	set logscale y
	set yrange [1e-5:1]
	set ylabel 'fraction slower (1 - quantile)'
	set key top right
	plot dir.'/contention-pin.csv' index b using 3:(1.0000001 - $2) with lines lw 2 title 'A pin', \
	     dir.'/contention-marker.csv' index b using 3:(1.0000001 - $2) with lines lw 2 title 'B marker', \
	     dir.'/contention-cache.csv' index b using 3:(1.0000001 - $2) with lines lw 2 title 'C cache'
}
unset multiplot
