# plot_contention.gp - latency CDF of bench-contention, one panel per thread
# count, one curve per swap-in design (A pin, B marker, C cache).
#   gnuplot -e "dir='results'" bench/plot_contention.gp  ->  dir/contention-cdf.png
# Input: dir/contention-<design>.csv, one data block per thread count
# (threads,quantile,latency_us), in the order of --threads (2,4,8 default).
if (!exists("dir")) dir = 'results'
if (!exists("nblocks")) nblocks = 3
set terminal png size 1500,500
set output dir.'/contention-cdf.png'
set datafile separator ','
set logscale x
set xlabel 'fault latency (us, log)'
set ylabel 'fraction of touches'
set yrange [0:1]
set key bottom right
set grid
set multiplot layout 1,nblocks title 'bench-contention: first-touch latency after eviction, by swap-in design'
do for [b=0:nblocks-1] {
	# the thread count of block b, from its first row
	stats dir.'/contention-marker.csv' index b using 1 nooutput
	set title sprintf('%d threads', int(STATS_min))
	plot dir.'/contention-pin.csv' index b using 3:2 with lines lw 2 title 'A pin', \
	     dir.'/contention-marker.csv' index b using 3:2 with lines lw 2 title 'B marker', \
	     dir.'/contention-cache.csv' index b using 3:2 with lines lw 2 title 'C cache'
}
unset multiplot
