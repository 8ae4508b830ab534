#!/bin/sh
# uswap run on an ordinary program (tests/sh/bigmem.c): 64 MiB written,
# verified and passed through write(2)/read(2) under a 16 MiB limit.  Its
# exit status comes back (3), --stats prints the table at exit, the stats
# show the limit held and pages swapped, uswap stat sees it running, and
# --user-mode-only manages an unprivileged program.
# Needs the shim (build/release/libuswap-preload.so).
cd "$(dirname "$0")/../.." || exit 1
USWAP=$PWD/build/release/uswap
[ -x "$USWAP" ] || { echo "skip: $USWAP not built"; exit 77; }
[ -f build/release/libuswap-preload.so ] || { echo "skip: the shim build/release/libuswap-preload.so is not built"; exit 77; }
"$USWAP" run true 2>/dev/null || { echo "skip: userfaultfd not usable here: $("$USWAP" run true 2>&1 | head -n 1)"; exit 77; }
T=$(mktemp -d /tmp/uswap-cli-run.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT
export USWAP_STATS_DIR="$T"
unset USWAP_PRELOAD
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cc -O2 -Wall -o "$T/bigmem" tests/sh/bigmem.c || exit 1

# --stats, and the program's status.
"$USWAP" run --limit 16M --stats -- "$T/bigmem" 64 3 >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out"; sed 's/^/  stderr| /' "$T/err"
[ "$rc" = 3 ] || fail "exit $rc, want the program's 3"
grep -q "^bigmem: 64 MiB verified$" "$T/out" || fail "the program did not verify its memory"
grep -q "uswap statistics" "$T/err" || fail "--stats printed no statistics"
# "limit 16.0 MiB resident X MiB (peak P MiB)": P <= 16, and pages swapped.
peak=$(sed -n 's/.*(peak \([0-9.]*\) MiB).*/\1/p' "$T/err" | head -n 1)
outs=$(awk '$1 == "swapins" {print $4}' "$T/err" | head -n 1)
awk -v p="$peak" 'BEGIN { exit !(p != "" && p <= 16.0) }' || fail "peak '$peak' MiB over the 16 MiB limit"
[ "${outs:-0}" -gt 0 ] 2>/dev/null || fail "no swap-outs reported ('$outs')"

# Without --stats: no table, status still the program's.
"$USWAP" run --limit 16M "$T/bigmem" 8 0 >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 0 ] || fail "exit $rc, want 0"
grep -q "uswap statistics" "$T/err" && fail "statistics printed without --stats"

# uswap stat on the running program (it sleeps after verifying).
"$USWAP" run --limit 16M "$T/bigmem" 64 0 5 >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 100); do grep -q verified "$T/out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
"$USWAP" stat $pid >"$T/stat" 2>&1; rc=$?
sed 's/^/  stat| /' "$T/stat"
[ "$rc" = 0 ] || fail "uswap stat $pid: exit $rc"
grep -q "^  limit *16.0 MiB$" "$T/stat" || fail "uswap stat: no 16 MiB limit"
"$USWAP" stat >"$T/list" 2>&1
grep -q "^ *$pid .*bigmem" "$T/list" || { fail "uswap stat: $pid not listed"; cat "$T/list"; }
wait $pid; rc=$?; p=$pid; pid=""
[ "$rc" = 0 ] || fail "sleeping run: exit $rc"
[ -e "$T/uswap.$p" ] && fail "statsfile left behind"

# --user-mode-only, unprivileged with vm.unprivileged_userfaultfd=0: managed
# all the same (plain accesses; system calls on evicted memory would fail).
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ] &&
   command -v setpriv >/dev/null && [ "$(stat -c %a /dev/userfaultfd 2>/dev/null)" = 600 ]; then
	chmod 755 "$T"
	env -u USWAP_STATS_DIR BIGMEM_NO_IO=1 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$USWAP" run --limit 16M --user-mode-only --stats "$T/bigmem" 64 0 >"$T/out" 2>"$T/err"; rc=$?
	sed 's/^/  user-mode| /' "$T/out" "$T/err" | head -n 4
	outs=$(awk '$1 == "swapins" {print $4}' "$T/err" | head -n 1)
	[ "$rc" = 0 ] && [ "${outs:-0}" -gt 0 ] 2>/dev/null ||
		fail "--user-mode-only as nobody: exit $rc, swap-outs '$outs'"
else
	echo "note: not root with vm.unprivileged_userfaultfd=0: --user-mode-only case not run"
fi

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
