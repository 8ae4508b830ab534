#!/bin/sh
# python3 under the shim: a large bytearray (glibc malloc blocks: the shim's
# own) and a large list of ints (CPython's 1 MiB arenas: mmap), about
# 300 MiB under a 64 MiB limit; the checksums must equal those of the same
# script run without uswap, and the statistics must show resident managed
# memory under the limit and pages swapped out.
. "$(dirname "$0")/shim_lib.sh"
trap 'rm -rf "$T"' EXIT
# Debian's python3 (a python3 earlier in PATH may be a wrapper script)
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "skip: /usr/bin/python3 not installed"; exit 77; }
cat >"$T/work.py" <<'PY'
import hashlib, resource, sys
n = 160 << 20
b = bytearray(n)                      # calloc: one managed block
for i in range(0, n, 4096):
    b[i:i + 8] = (i * 2654435761 % 2**64).to_bytes(8, "little")
b += bytes(range(256)) * 4096         # realloc: grows (copies) the block
l = [i * 7 for i in range(4_000_000)] # ints in arenas, the list array by realloc
l.reverse()
h = hashlib.sha256(b)
h.update(repr(l[::1000]).encode())
print("bytearray", len(b), "list", len(l), "sum", sum(l), "sha256", h.hexdigest())
print("maxrss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)
PY
s0=$(date +%s.%N)
nice "$PY" "$T/work.py" >"$T/plain" 2>"$T/plain.err" || fail "python3 without uswap: exit $?"
s1=$(date +%s.%N)
managed 64M "$PY" "$T/work.py" >"$T/managed" || fail "python3 under uswap: exit $?"
s2=$(date +%s.%N)
echo "without uswap: $(cat "$T/plain") ($(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.1f", b-a}') s, $(sed -n 's/maxrss_mib //p' "$T/plain.err") MiB peak RSS)"
echo "under uswap:   $(cat "$T/managed") ($(awk -v a="$s1" -v b="$s2" 'BEGIN{printf "%.1f", b-a}') s, $(sed -n 's/maxrss_mib //p' "$T/stats") MiB peak RSS)"
cmp -s "$T/plain" "$T/managed" || fail "outputs differ"
check_stats "python3, 64M"
[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
