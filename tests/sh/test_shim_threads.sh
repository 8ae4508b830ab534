#!/bin/sh
# The shim under a multi-threaded C program that checks its own memory
# (tests/sh/prog_mt.c): the calls that change managed memory (munmap of a
# part, MAP_FIXED over, madvise, mremap, mprotect, realloc), a fork (the
# child sees the parent's memory as of the fork, released and given-away
# ranges included), threads mapping, growing, shrinking and unmapping at
# once, threads faulting on the same and different pages, and
# the tight case of the issue: a 256 MiB working set, two threads, a 64 MiB
# limit.
. "$(dirname "$0")/shim_lib.sh"
trap 'rm -rf "$T"' EXIT
PROG=$PWD/build/sh/prog_mt
[ -x "$PROG" ] || make -s build/sh/prog_mt >/dev/null || { echo "skip: cannot build prog_mt"; exit 77; }

managed 32M "$PROG" ops >"$T/out" || fail "ops: exit $?"
cat "$T/out"; grep -q "all checks passed" "$T/out" || { fail "ops"; sed 's/^/  | /' "$T/stats"; }

managed 32M "$PROG" fork >"$T/out" || fail "fork: exit $?"
cat "$T/out"; grep -q "all checks passed" "$T/out" || { fail "fork"; sed 's/^/  | /' "$T/stats"; }

managed 16M "$PROG" churn 4 100 >"$T/out" || fail "churn: exit $?"
cat "$T/out"; grep -q "all checks passed" "$T/out" || { fail "churn"; sed 's/^/  | /' "$T/stats"; }

managed 32M "$PROG" work 96 4 2 >"$T/out" || fail "work 96 MiB, 4 threads: exit $?"
cat "$T/out"; grep -q " 0 bad" "$T/out" || { fail "work 4 threads"; sed 's/^/  | /' "$T/stats"; }
check_stats "96 MiB, 4 threads, 32M"

start=$(date +%s)
managed 64M "$PROG" work 256 2 1 >"$T/out" || fail "work 256 MiB, 2 threads: exit $?"
cat "$T/out"; grep -q " 0 bad" "$T/out" || { fail "work 256 MiB"; sed 's/^/  | /' "$T/stats"; }
check_stats "256 MiB, 2 threads, 64M ($(($(date +%s) - start)) s)"

[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
