#!/bin/sh
# test_bench_smoke.sh - `make bench` in its smoke configuration (bench/run.sh
# --smoke): the table is printed and the results written, and nothing of the
# kernel's swap configuration is left behind: no zram device or swap of the
# bench's, no memory cgroup, the swap list as before; also after the bench is
# killed in the middle of a kernel run.  Never fails on timing: the numbers
# are not looked at.  Without root the kernel column is skipped, and so are
# the cleanup checks.
cd "$(dirname "$0")/../.." || exit 1
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
make -s build/release/uswap-bench >/dev/null 2>&1 || { echo "FAIL: building uswap-bench"; exit 1; }
mkdir -p build/sh
fail() { echo "FAIL: $*"; exit 1; }
swaps() { awk 'NR > 1 {print $1}' /proc/swaps | sort; }

# What the bench made, from its meta.txt, must be gone.
check_clean() {	# outdir what
	grep '^kernel_resources=' "$1/meta.txt" | cut -d= -f2- | while read -r z cg; do
		if grep -q "^/dev/$z " /proc/swaps; then echo "/dev/$z still swap ($2)"; fi
		if [ -d "$cg" ]; then echo "cgroup $cg left behind ($2)"; fi
		if [ -e "/sys/block/$z" ] && [ "$(cat "/sys/block/$z/disksize")" != 0 ]; then
			echo "zram device $z left configured ($2)"
		fi
	done
	[ "$(swaps)" = "$before" ] || echo "swap list changed ($2): '$(swaps | tr '\n' ' ')' was '$(echo "$before" | tr '\n' ' ')'"
}

before=$(swaps)
out=build/sh/bench-smoke
rm -rf "$out"
bench/run.sh --smoke --lock-wait 120 --out "$out" >build/sh/bench-smoke.out 2>&1
rc=$?
cat build/sh/bench-smoke.out
[ $rc = 3 ] && { echo "SKIP: another bench is running on this machine"; exit 77; }
[ $rc = 0 ] || fail "bench/run.sh --smoke exited $rc"
grep -q '^phase  *ram' "$out/table.txt" || fail "no table header"
for p in populate 'seq read' 'rand read' 'rand write' 'zipf read' 'verify (full)'; do
	grep -q "^$p " "$out/table.txt" || fail "no row '$p' in the table"
done
grep -q "^phase" build/sh/bench-smoke.out || fail "the table was not printed"
for f in runs.csv medians.csv mem.csv summary.json lat.csv; do
	[ -s "$out/$f" ] || fail "no $out/$f"
done
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$out/summary.json" ||
	fail "summary.json is not JSON"
if command -v gnuplot >/dev/null; then
	[ -s "$out/throughput.png" ] || fail "no throughput.png"
fi
if [ "$(id -u)" != 0 ]; then
	grep -q 'kernel: skipped' build/sh/bench-smoke.out || fail "no skip message for the kernel column"
	echo "not root: kernel column skipped, cleanup not checked"
	exit 0
fi
grep -q 'kernel_resources=' "$out/meta.txt" || grep -q '^skip_kernel=' "$out/meta.txt" ||
	fail "the kernel column neither ran nor said why not"
left=$(check_clean "$out" "after a normal run")
[ -z "$left" ] || fail "$left"

# Killed in the middle of a kernel run: the trap cleans up.
out2=build/sh/bench-smoke-kill
rm -rf "$out2"
bench/run.sh --smoke --systems kernel --lock-wait 120 --out "$out2" >build/sh/bench-smoke-kill.out 2>&1 &
pid=$!
caught=0
for i in $(seq 300); do
	if grep -q '^kernel_resources=' "$out2/meta.txt" 2>/dev/null; then caught=1; break; fi
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
sleep 0.3
kill -TERM $pid 2>/dev/null
wait $pid
cat build/sh/bench-smoke-kill.out
left=$(check_clean "$out2" "after SIGTERM")
[ -z "$left" ] || fail "$left"
[ $caught = 1 ] && echo "killed during a kernel run: cleaned up" ||
	echo "the kernel run ended before it could be interrupted: cleanup after it checked"
echo "PASS"
exit 0
