#!/bin/sh
# The shim's edges: a program that allocates nothing large gets no engine,
# no thread and no statistics file (and the cost per malloc+free is
# printed); a large allocation from a constructor, before main; a bad value
# in LD_PRELOAD set by hand (one message, the program runs unmanaged);
# userfaultfd taken away by seccomp (one warning, the program runs
# unmanaged); the statistics file of a managed process, removed at exit.
. "$(dirname "$0")/shim_lib.sh"
trap 'rm -rf "$T"' EXIT
PROG=$PWD/build/sh/prog_mt
[ -x "$PROG" ] || make -s build/sh/prog_mt >/dev/null || { echo "skip: cannot build prog_mt"; exit 77; }

plain=$("$PROG" small) || fail "small without the shim"
shim=$(LD_PRELOAD=$SHIM "$PROG" small) || fail "small under the shim"
echo "without the shim: $plain"; echo "under the shim:   $shim"
echo "$shim" | grep -q " 1 thread(s)" || fail "a small program got threads"
ls "$T"/uswap.* >/dev/null 2>&1 && fail "a small program published statistics"

PROG_MT_CTOR=1 LD_PRELOAD=$SHIM USWAP_LIMIT=4M "$PROG" work 16 2 1 >"$T/out" 2>&1 ||
	{ fail "large malloc in a constructor"; cat "$T/out"; }
grep -q " 0 bad" "$T/out" && echo "ok: a large malloc in a constructor, then 16 MiB under 4 MiB"

for bad in "USWAP_MIN_REGION=12Q" "USWAP_LIMIT=lots" "USWAP_COMPRESSOR=gzip"; do
	env "$bad" LD_PRELOAD=$SHIM "$PROG" work 16 2 1 >"$T/out" 2>"$T/err" || fail "$bad: the program failed"
	var=${bad%%=*}
	if [ "$(grep -c "$var" "$T/err")" = 1 ] && grep -q "runs unmanaged" "$T/err" && grep -q " 0 bad" "$T/out"; then
		echo "ok: $bad: $(cat "$T/err")"
	else
		fail "$bad: want one message naming $var"; cat "$T/err"
	fi
done

if cc -O2 -o "$T/nouffd" tests/sh/nouffd.c 2>/dev/null; then
	"$T/nouffd" env LD_PRELOAD="$SHIM" "$PROG" work 16 2 1 >"$T/out" 2>"$T/err" || fail "no userfaultfd: the program failed"
	if [ "$(wc -l <"$T/err")" = 1 ] && grep -q "userfaultfd" "$T/err" && grep -q " 0 bad" "$T/out"; then
		echo "ok: no userfaultfd: $(cat "$T/err")"
	else
		fail "no userfaultfd: want one warning"; cat "$T/err"
	fi
fi

# The statistics file: there while the program runs, gone after.
LD_PRELOAD=$SHIM USWAP_LIMIT=8M "$PROG" work 64 1 3 >"$T/out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -e "$T/uswap.$pid" ] && break; sleep 0.05; done
[ -e "$T/uswap.$pid" ] && echo "ok: $T/uswap.$pid published" || fail "no statistics file for $pid"
wait $pid || fail "work 64 MiB under 8 MiB"
[ -e "$T/uswap.$pid" ] && fail "statistics file left after exit"

[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
