#!/bin/bash
# bench/run.sh - `make bench`: the standard workload (build/release/uswap-bench)
# on four systems, interleaved, then one table of medians, CSV/JSON and plots.
#
#   ram        plain mmap, no limit
#   kernel     plain mmap in a memory cgroup limited to LIMIT, with a zram (lz4)
#              device as the only swap; set up before and torn down after each
#              run, always (trap on EXIT/INT/TERM); needs root
#   uswap-lib  uswap_map() through the library, limit LIMIT
#   uswap-run  the unmodified binary under `uswap run --limit LIMIT --` (the
#              LD_PRELOAD shim manages its plain mmap); LD_PRELOAD directly if
#              the shim is built but the CLI is not; skipped if neither is
#
# Options (make bench BENCH_ARGS="..."):
#   --size SIZE      arena (1G)           --limit SIZE   limit (256M)
#   --ops N          ops per random phase (one per page)
#   --threads T      threads of mt_read (2)   --seed S   seed (1)
#   --repeat R       repetitions (3)      --systems "ram kernel uswap-lib uswap-run"
#   --out DIR        results (build/bench/<UTC time>; build/bench/latest links it)
#   --lat-every N    time every Nth rand/zipf read alone if its page is not
#                    resident (16; 0: off): lat.csv, the latency CDF
#   --smoke          128M arena, 64M limit, repeat 1 (CI; with a 16M limit the
#                    kernel's memory cgroup OOM-killed the workload every time
#                    here, at 32M in 2 runs of 3, at 48M in 1 of 3)
#   --timeout SECS   per run (1800)
#   --lock-wait SECS wait this long for another bench on the machine (1800)
# One bench at a time per machine (flock on /run/lock/uswap-bench.lock): two
# would turn each other's swap off.
# Exit: 0; 1 a run failed its data verification or crashed; 2 usage/setup;
# 3 another bench held the lock for --lock-wait seconds.
set -u
# The whole script is one compound command: bash parses it before it runs,
# so editing this file during a long run cannot derail that run.
{
cd "$(dirname "$0")/.." || exit 2

SIZE=1G LIMIT=256M OPS="" THREADS=2 SEED=1 REPEAT=3 OUT="" LAT_EVERY=16
SYSTEMS="ram kernel uswap-lib uswap-run" RUN_TIMEOUT=1800 LOCK_WAIT=1800
BIN=${USWAP_BENCH_BIN:-build/release/uswap-bench}
CLI=${USWAP_CLI:-build/release/uswap}
SHIM=${USWAP_SHIM:-build/release/libuswap-preload.so}

die() { echo "bench: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) SIZE=$2; shift ;;
	--limit) LIMIT=$2; shift ;;
	--ops) OPS=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--systems) SYSTEMS=$2; shift ;;
	--out) OUT=$2; shift ;;
	--lat-every) LAT_EVERY=$2; shift ;;
	--timeout) RUN_TIMEOUT=$2; shift ;;
	--lock-wait) LOCK_WAIT=$2; shift ;;
	--smoke) SIZE=128M LIMIT=64M REPEAT=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (--help)" ;;
	esac
	[ $# -gt 0 ] && shift
done
case $REPEAT in ''|*[!0-9]*|0) die "--repeat wants a positive number" ;; esac
[ -x "$BIN" ] || die "$BIN not built: run 'make build/release/uswap-bench'"

LOCK=/run/lock/uswap-bench.lock
[ -d /run/lock ] && [ -w /run/lock ] || LOCK=${TMPDIR:-/tmp}/uswap-bench.lock
if command -v flock >/dev/null && exec 9>>"$LOCK"; then
	if ! flock -n 9; then
		echo "bench: another bench holds $LOCK; waiting up to $LOCK_WAIT s" >&2
		flock -w "$LOCK_WAIT" 9 || { echo "bench: $LOCK still held: giving up" >&2; exit 3; }
	fi
fi

# Sizes in bytes, as the workload parses them.
bytes() {
	local v=$1 n u
	n=${v%%[!0-9]*}; u=${v#"$n"}
	[ -n "$n" ] || die "bad size $v"
	case $u in
	''|B) echo "$n" ;; [kK]*) echo $((n << 10)) ;; [mM]*) echo $((n << 20)) ;;
	[gG]*) echo $((n << 30)) ;; *) die "bad size $v" ;;
	esac
}
SIZE_B=$(bytes "$SIZE"); LIMIT_B=$(bytes "$LIMIT")
[ -e "$SHIM" ] && SHIM=$(realpath "$SHIM")

[ -n "$OUT" ] || OUT=build/bench/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT/raw" || die "cannot create $OUT"
case $OUT in build/bench/*) ln -sfn "$(basename "$OUT")" build/bench/latest ;; esac
: >"$OUT/records.txt"; : >"$OUT/runs.txt"; : >"$OUT/lat.csv"
echo "system,rep,phase,latency_ns" >"$OUT/lat.csv"
{
	echo "size=$SIZE"; echo "limit=$LIMIT"; echo "ops=$OPS"; echo "threads=$THREADS"
	echo "seed=$SEED"; echo "repeat=$REPEAT"; echo "systems=$SYSTEMS"
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"; echo "kernel_release=$(uname -r)"
	echo "cpus=$(nproc)"; echo "cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
	echo "mem=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
	echo "git=$(git rev-parse --short HEAD 2>/dev/null)"
} >"$OUT/meta.txt"
skip() { echo "skip_$1=$2" >>"$OUT/meta.txt"; echo "bench: $1: skipped: $2" >&2; }

# ------------------------------------------------------------------ kernel
# State to undo, always: the zram device we added, the cgroup we made, the
# swaps we turned off.  Nothing else is touched.  It is also written to
# $STATE, so that the next bench undoes it if this one dies by SIGKILL.
ZNUM="" CG="" CG_KIND="" SAVED_SWAPS="" CHILD="" KERNEL_OK=0 SWAPS_OFF=0
STATE=${LOCK%.lock}.state

state_save() {
	{
		[ "$SWAPS_OFF" = 1 ] && echo "$SAVED_SWAPS" | sed '/^$/d; s/^/swap /'
		[ -n "$ZNUM" ] && echo "zram $ZNUM"
		[ -n "$CG" ] && echo "cgroup $CG"
	} >"$STATE.new" 2>/dev/null
	if [ -s "$STATE.new" ]; then mv -f "$STATE.new" "$STATE"; else rm -f "$STATE.new" "$STATE"; fi
}

kernel_teardown() {	# one run's zram device and cgroup
	local i
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		for i in $(seq 50); do
			rmdir "$CG" 2>/dev/null && break
			[ -s "$CG/cgroup.procs" ] && xargs -r kill -9 <"$CG/cgroup.procs" 2>/dev/null
			sleep 0.1
		done
		[ -d "$CG" ] && echo "bench: WARNING: could not remove cgroup $CG" >&2
	fi
	CG=""
	if [ -n "$ZNUM" ]; then
		if grep -q "^/dev/zram$ZNUM " /proc/swaps; then
			swapoff "/dev/zram$ZNUM" ||
				echo "bench: WARNING: swapoff /dev/zram$ZNUM failed" >&2
		fi
		echo 1 >"/sys/block/zram$ZNUM/reset" 2>/dev/null
		echo "$ZNUM" >/sys/class/zram-control/hot_remove 2>/dev/null ||
			echo "bench: WARNING: could not hot_remove zram$ZNUM" >&2
	fi
	ZNUM=""
	state_save
}

restore_swaps() {
	local name prio
	[ "$SWAPS_OFF" = 1 ] || return 0
	while read -r name prio; do
		[ -n "$name" ] || continue
		if [ "$prio" -ge 0 ] 2>/dev/null; then swapon -p "$prio" "$name"
		else swapon "$name"; fi || echo "bench: WARNING: could not swapon $name again" >&2
	done <<<"$SAVED_SWAPS"
	SWAPS_OFF=0
	state_save
}

# A bench that died by SIGKILL left $STATE: undo what it lists (we hold the
# lock, so no bench is running).
recover_stale() {
	local what a b
	[ -s "$STATE" ] || return 0
	echo "bench: undoing what a bench that died left behind ($STATE):" $(cat "$STATE") >&2
	while read -r what a b; do
		case $what in
		zram) ZNUM=$a ;;
		cgroup) CG=$a ;;
		esac
	done <"$STATE"
	SAVED_SWAPS=$(awk '$1 == "swap" {print $2, $3}' "$STATE")
	[ -n "$SAVED_SWAPS" ] && SWAPS_OFF=1
	kernel_teardown
	restore_swaps
	SAVED_SWAPS=""
	rm -f "$STATE"
}

cleanup() {
	if [ -n "$CHILD" ]; then	# the subshell, its timeout, the workload
		pkill -TERM -P "$CHILD" 2>/dev/null; sleep 0.5
		pkill -KILL -P "$CHILD" 2>/dev/null; kill -KILL "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null; CHILD=""
	fi
	kernel_teardown
	restore_swaps
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM
[ "$(id -u)" = 0 ] && recover_stale

# Can we run the kernel column?  Sets CG_ROOT, CG_KIND; turns other swaps off.
kernel_prepare() {
	local v2
	if [ "$(id -u)" != 0 ]; then skip kernel "needs root (zram, swapon, memory cgroup)"; return 1; fi
	[ -e /sys/class/zram-control/hot_add ] || modprobe zram num_devices=0 2>/dev/null ||
		modprobe zram 2>/dev/null
	if [ ! -e /sys/class/zram-control/hot_add ]; then skip kernel "no zram (modprobe zram failed)"; return 1; fi
	if ! grep -qw lz4 /sys/block/zram*/comp_algorithm 2>/dev/null &&
	   ! modprobe lz4 2>/dev/null; then :; fi
	if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
		CG_ROOT=/sys/fs/cgroup/memory CG_KIND=v1
	else
		v2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
		if [ -n "$v2" ] && grep -qw memory "$v2/cgroup.subtree_control" 2>/dev/null; then
			CG_ROOT=$v2 CG_KIND=v2
		else
			skip kernel "no memory cgroup controller (v1 memory or v2 with memory enabled)"; return 1
		fi
	fi
	# The kernel's figures need zram to be the only swap: turn the others off
	# for the whole bench, on again at exit with their priorities.
	SAVED_SWAPS=$(awk 'NR > 1 {print $1, $5}' /proc/swaps)
	if [ -n "$SAVED_SWAPS" ]; then
		echo "bench: turning off other swap for the kernel runs (restored at exit):" $(echo "$SAVED_SWAPS" | awk '{print $1}') >&2
		SWAPS_OFF=1
		state_save
		local name prio
		while read -r name prio; do
			if ! swapoff "$name"; then
				restore_swaps
				skip kernel "could not swapoff $name"
				return 1
			fi
		done <<<"$SAVED_SWAPS"
	fi
	return 0
}

kernel_setup() {	# one run: a fresh zram device and cgroup
	local i
	ZNUM=$(cat /sys/class/zram-control/hot_add) || { ZNUM=""; return 1; }
	state_save
	local z=/sys/block/zram$ZNUM
	echo lz4 >"$z/comp_algorithm" || return 1
	echo $((SIZE_B * 2)) >"$z/disksize" || return 1
	for i in $(seq 50); do [ -b "/dev/zram$ZNUM" ] && break; sleep 0.1; done
	mkswap "/dev/zram$ZNUM" >/dev/null || return 1
	swapon -p 100 "/dev/zram$ZNUM" || return 1
	CG=$CG_ROOT/uswap-bench-$$
	mkdir "$CG" || { CG=""; return 1; }
	state_save
	echo "kernel_resources=zram$ZNUM $CG" >>"$OUT/meta.txt"	# for the smoke test
	if [ "$CG_KIND" = v1 ]; then
		echo "$LIMIT_B" >"$CG/memory.limit_in_bytes" || return 1
	else
		echo "$LIMIT_B" >"$CG/memory.max" || return 1
	fi
	return 0
}

# ------------------------------------------------------------------ runs
ANY_FAIL=0
run_one() {	# system rep
	local sys=$1 rep=$2 log=$OUT/raw/$1-r$2.log rc status t0 t1 load0
	local args=(--size "$SIZE" --threads "$THREADS" --seed "$SEED" --system "$sys" --rep "$rep")
	local lat=()
	[ -n "$OPS" ] && args+=(--ops "$OPS")
	[ "$sys" != ram ] && [ "$LAT_EVERY" != 0 ] && lat=(--lat-every "$LAT_EVERY" --lat-out "$OUT/lat.csv")
	local cmd=()
	case $sys in
	ram) cmd=("$BIN" "${args[@]}") ;;
	uswap-lib) cmd=("$BIN" "${args[@]}" "${lat[@]}" --uswap-lib --limit "$LIMIT") ;;
	uswap-run)
		if [ "$RUN_VIA" = cli ]; then
			cmd=(env USWAP_PRELOAD="$SHIM" "$CLI" run --limit "$LIMIT" -- "$BIN" "${args[@]}" "${lat[@]}" --shim)
		else
			cmd=(env LD_PRELOAD="$SHIM" USWAP_LIMIT="$LIMIT" "$BIN" "${args[@]}" "${lat[@]}" --shim)
		fi ;;
	kernel)
		if ! kernel_setup; then
			echo "bench: kernel: setting up zram/cgroup failed" >&2
			kernel_teardown
			echo "run system=$sys rep=$rep status=setup-failed" >>"$OUT/runs.txt"
			return
		fi
		cmd=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$BIN" "${args[@]}" "${lat[@]}"
		     --memcg "$CG" --zram "zram$ZNUM") ;;
	esac
	printf 'bench: rep %s/%s %-10s ' "$rep" "$REPEAT" "$sys" >&2
	load0=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	# (a subshell, so that a killed run is a status, not a job message)
	( exec 9>&-; timeout -k 10 "$RUN_TIMEOUT" "${cmd[@]}" >"$log" 2>&1; exit $? ) 2>/dev/null &
	CHILD=$!
	wait "$CHILD"; rc=$?
	CHILD=""
	t1=$(date +%s.%N)
	[ "$sys" = kernel ] && kernel_teardown
	if [ $rc = 0 ] && grep -q '^result .* ok' "$log"; then
		status=ok
	elif [ "$sys" = kernel ] && { [ $rc = 137 ] || [ $rc = 9 ]; }; then
		status=killed-oom	# the memory cgroup's OOM killer
	elif [ $rc = 124 ]; then
		status=timeout; ANY_FAIL=1
	else
		status=failed-exit-$rc; ANY_FAIL=1
	fi
	grep -E '^(config|phase|mem|result) ' "$log" >>"$OUT/records.txt"
	echo "run system=$sys rep=$rep status=$status secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
		"load_start=$load0 load_end=$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/runs.txt"
	awk -v a="$t0" -v b="$t1" -v s="$status" 'BEGIN{printf "%5.1f s  %s\n", b-a, s}' >&2
	if [ "$status" != ok ]; then
		echo "bench: $sys rep $rep: $status; last lines of $log:" >&2
		tail -n 8 "$log" | sed 's/^/    /' >&2
	fi
}

uffd_ok() {	# can this user have a userfaultfd?
	[ "$(id -u)" = 0 ] || { [ -r /dev/userfaultfd ] && [ -w /dev/userfaultfd ]; } ||
		[ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ]
}
RUN_SYSTEMS="" RUN_VIA=""
for s in $SYSTEMS; do
	case $s in
	uswap-*) uffd_ok || { skip "$s" "userfaultfd needs root, access to /dev/userfaultfd or vm.unprivileged_userfaultfd=1"; continue; } ;;
	esac
	case $s in
	ram|uswap-lib) RUN_SYSTEMS="$RUN_SYSTEMS $s" ;;
	kernel) kernel_prepare && RUN_SYSTEMS="$RUN_SYSTEMS $s" ;;
	uswap-run)
		if [ ! -e "$SHIM" ]; then
			skip uswap-run "pending: the LD_PRELOAD shim $SHIM is not built"
		elif [ -x "$CLI" ] && "$CLI" run --help >/dev/null 2>&1; then
			RUN_VIA=cli RUN_SYSTEMS="$RUN_SYSTEMS $s"
			echo "uswap_run_via=$CLI run" >>"$OUT/meta.txt"
		else
			echo "bench: uswap-run: no '$CLI run': LD_PRELOAD=$SHIM with USWAP_LIMIT" >&2
			echo "uswap_run_via=LD_PRELOAD" >>"$OUT/meta.txt"
			RUN_VIA=preload RUN_SYSTEMS="$RUN_SYSTEMS $s"
		fi ;;
	*) die "unknown system $s (ram kernel uswap-lib uswap-run)" ;;
	esac
done
[ -n "$RUN_SYSTEMS" ] || die "nothing to run"

echo "bench: $SIZE arena, limit $LIMIT, systems:$RUN_SYSTEMS, $REPEAT repetition(s), results in $OUT" >&2
T0=$(date +%s)
for rep in $(seq "$REPEAT"); do
	for sys in $RUN_SYSTEMS; do
		run_one "$sys" "$rep"
	done
done
echo "bench: all runs done in $(( $(date +%s) - T0 )) s" >&2
echo "wall_seconds=$(( $(date +%s) - T0 ))" >>"$OUT/meta.txt"
cleanup
trap - EXIT

echo
python3 bench/report.py summarize "$OUT" || ANY_FAIL=1
echo
echo "bench: results in $OUT: table.txt runs.csv medians.csv mem.csv summary.json lat.csv" \
	"$(cd "$OUT" && ls *.png 2>/dev/null | tr '\n' ' ')"
if [ -n "$(awk 'NR > 1' /proc/swaps | grep zram)" ] && [ -z "$SAVED_SWAPS" ]; then
	echo "bench: WARNING: a zram swap is active after the bench" >&2
fi
[ "$ANY_FAIL" = 0 ] || { echo "bench: FAIL: some runs failed (see above)" >&2; exit 1; }
exit 0
}
