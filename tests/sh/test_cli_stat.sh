#!/bin/sh
# uswap stat against a process that publishes its statistics like the shim
# (tests/sh/statpub.c, a real engine: 32 MiB under 8 MiB): the list, one
# process, -a, -w with rates, the end of a watched process, a stale file,
# files it must refuse (bad magic, unknown version, stuck seqlock), and
# usage errors.
cd "$(dirname "$0")/../.." || exit 1
USWAP=$PWD/build/release/uswap
[ -x "$USWAP" ] && [ -f build/release/libuswap.a ] ||
	{ echo "skip: build/release/uswap or libuswap.a not built"; exit 77; }
T=$(mktemp -d /tmp/uswap-cli-stat.XXXXXX)
pub=""
trap '[ -n "$pub" ] && kill $pub 2>/dev/null; rm -rf "$T"' EXIT
export USWAP_STATS_DIR="$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cc -O2 -D_GNU_SOURCE -Iinclude -Isrc -o "$T/statpub" tests/sh/statpub.c \
	build/release/libuswap.a -llz4 -lzstd -lpthread || exit 1

# check NAME RC PATTERN... : the last command's status and output ($T/out).
check() {
	name=$1 want=$2; shift 2
	[ "$rc" = "$want" ] || { fail "$name: exit $rc, want $want"; sed 's/^/  | /' "$T/out"; return; }
	for pat in "$@"; do
		grep -Eq -- "$pat" "$T/out" || { fail "$name: output lacks /$pat/"; sed 's/^/  | /' "$T/out"; return; }
	done
	echo "ok: $name"
}

"$USWAP" stat >"$T/out" 2>&1; rc=$?
check "no managed process" 0 "^no process managed by uswap"

# start_pub SECS [--stale]: a publisher in the background, once it is ready.
start_pub() {
	rm -f "$T/ready"
	"$T/statpub" "$@" >"$T/ready" &
	pub=$!
	for _ in $(seq 100); do grep -q ready "$T/ready" 2>/dev/null && return 0; sleep 0.1; done
	echo "statpub did not start"; cat "$T/ready"; exit 1
}
start_pub 6
if [ ! -e "$T/uswap.$pub" ]; then
	wait $pub; echo "skip: statpub could not open an engine (userfaultfd?)"; exit 77
fi

"$USWAP" stat >"$T/out" 2>&1; rc=$?
check "list" 0 "PID +LIMIT +RESIDENT +SWAPPED +POOL +RATIO +COMMAND" "^ *$pub +8\.0 MiB .* statpub 6$"

sleep 0.5
"$USWAP" stat $pub >"$T/out" 2>&1; rc=$?
check "stat PID" 0 "^pid $pub  statpub 6$" "^  limit +8\.0 MiB$" \
	"^  resident +[0-9.]+ [KM]iB +[0-9.]+% of limit +peak [0-9.]+ MiB" "^  swapped +[0-9.]+ MiB +[0-9]+ pages" \
	"^  pool +[0-9.]+ [KM]iB +holds" "^  ratio +[0-9.]+x +memory efficiency" \
	"^  faults +[1-9][0-9]* +zero [0-9]+, swap-in [0-9]+" "^  swap-ins +[1-9]" "^  swap-outs +[1-9]"

"$USWAP" stat -a $pub >"$T/out" 2>&1; rc=$?
check "stat -a PID" 0 "^uswap statistics" "evictor_runs"

"$USWAP" stat -w 0.3 -n 3 $pub >"$T/out" 2>&1; rc=$?
check "stat -w 0.3 -n 3" 0 "every 0\.3s" "^  faults +[0-9]+ +[0-9]+/s +zero" "^  swap-ins +[0-9]+ +[0-9]+/s" "^  swap-outs +[0-9]+ +[0-9]+/s"
[ "$(grep -c '^uswap stat .*every' "$T/out")" = 3 ] || fail "-n 3 drew $(grep -c '^uswap stat' "$T/out") screens"

"$USWAP" stat --watch=0.5 $pub >"$T/out" 2>&1; rc=$?
check "watch until exit" 0 "^process $pub has exited$"
wait $pub; rc=$?; pub=""
[ "$rc" = 0 ] || fail "statpub exit $rc"
[ -e "$T/uswap.$pub" ] && fail "statpub left its file"

# A process killed without removing its file: stale, removed by the reader.
start_pub 0.2 --stale
wait $pub; stale=$pub; pub=""
[ -e "$T/uswap.$stale" ] || fail "no stale file to test with"
"$USWAP" stat $stale >"$T/out" 2>&1; rc=$?
check "stale file" 1 "process $stale does not exist"
[ -e "$T/uswap.$stale" ] && fail "stale file not removed"

# Files to refuse, named after a live process (this shell).
for how in badmagic badversion odd; do
	"$T/statpub" --file $$ $how || exit 1
	"$USWAP" stat $$ >"$T/out" 2>&1; rc=$?
	case $how in
	badmagic) check "bad magic" 1 "not a uswap statsfile" ;;
	badversion) check "unknown version" 1 "statsfile version [0-9]+, [0-9]+ bytes; this uswap .* reads version [0-9]+" ;;
	odd) check "stuck seqlock" 1 "stuck mid-update" ;;
	esac
	"$USWAP" stat >"$T/out" 2>&1; rc=$?
	check "list skips $how" 0 "^no process managed"
	rm -f "$T/uswap.$$"
done

"$USWAP" stat $$ >"$T/out" 2>&1; rc=$?
check "not managed" 1 "process $$ is not managed by uswap"
"$USWAP" stat 2147483646 >"$T/out" 2>&1; rc=$?
check "no such process" 1 "does not exist"
"$USWAP" stat abc >"$T/out" 2>&1; rc=$?
check "not a pid" 2 "'abc' is not a process id"
"$USWAP" stat -w 0 $$ >"$T/out" 2>&1; rc=$?
check "bad SECS" 2 "SECS must be"
"$USWAP" stat -w >"$T/out" 2>&1; rc=$?
check "-w without PID" 2 "-w needs a PID"
"$USWAP" stat 1 2 >"$T/out" 2>&1; rc=$?
check "two PIDs" 2 "one PID at a time"

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
