# shim_lib.sh - sourced by the shim tests (tests/sh/test_shim_*.sh).
#   managed LIMIT PROG ARGS...  run PROG under uswap with LIMIT and --stats
#                               (through build/release/uswap run when built,
#                               else LD_PRELOAD by hand); its stderr, with
#                               the statistics, goes to $T/stats
#   stat_peak_mib, stat_limit_mib, stat_swapouts, stat_managed_peak_mib:
#                               figures from $T/stats
cd "$(dirname "$0")/../.." || exit 1
SHIM=$PWD/build/release/libuswap-preload.so
USWAP=$PWD/build/release/uswap
[ -f "$SHIM" ] || { echo "skip: $SHIM not built"; exit 77; }
T=$(mktemp -d /tmp/uswap-shim.XXXXXX)
export USWAP_STATS_DIR="$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

managed() {
	limit=$1; shift
	if [ -x "$USWAP" ]; then
		nice "$USWAP" run --limit "$limit" --stats -- "$@" 2>"$T/stats"
	else
		USWAP_LIMIT=$limit USWAP_STATS_EXIT=1 LD_PRELOAD=$SHIM \
			nice sh -c 'USWAP_STATS_PID=$$ exec "$@"' sh "$@" 2>"$T/stats"
	fi
}

stat_peak_mib() { sed -n 's/.*(peak \([0-9.]*\) MiB).*/\1/p' "$T/stats" | tail -n 1; }
stat_limit_mib() { sed -n 's/^ *limit *\([0-9.]*\) MiB.*/\1/p' "$T/stats" | tail -n 1; }
stat_swapouts() { sed -n 's/.*swapouts *\([0-9]*\).*/\1/p' "$T/stats" | tail -n 1; }
stat_managed_peak_mib() { sed -n 's/.*managed by the shim: .*, \([0-9.]*\) MiB at most.*/\1/p' "$T/stats" | tail -n 1; }

# check_stats WHAT: resident stayed under the limit and pages were swapped.
check_stats() {
	peak=$(stat_peak_mib) lim=$(stat_limit_mib) outs=$(stat_swapouts) mp=$(stat_managed_peak_mib)
	if [ -z "$peak" ] || [ -z "$lim" ]; then
		fail "$1: no statistics"; sed 's/^/  | /' "$T/stats"; return
	fi
	echo "$1: limit $lim MiB, peak resident $peak MiB, swap-outs ${outs:-?}, managed at most ${mp:-?} MiB"
	awk -v p="$peak" -v l="$lim" 'BEGIN { exit !(p <= l) }' || fail "$1: peak $peak MiB above the limit $lim MiB"
	[ "${outs:-0}" -gt 0 ] || fail "$1: nothing was swapped out"
}
