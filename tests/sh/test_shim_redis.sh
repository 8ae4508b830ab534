#!/bin/sh
# redis-server (Debian's, jemalloc inside) under the shim, on loopback: a
# dataset several times the limit (DEBUG POPULATE and a Lua loop, about
# 230 MiB under 48 MiB), DEBUG DIGEST equal to a plain server's given the
# same load (DEBUG POPULATE, and pseudo-random values from Lua); BGSAVE (a fork: the child writes the RDB from its own engine)
# and the RDB loaded by a fresh plain server gives the same digest again.
# The statistics must show resident managed memory under the limit, pages
# swapped out while the data was loaded, and most of redis's memory managed.
. "$(dirname "$0")/shim_lib.sh"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
	{ echo "skip: redis-server or redis-cli not installed (scripts/deps.sh)"; exit 77; }
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; sleep 0.3; rm -rf "$T"' EXIT
LIMIT=48M
KEYS=120000 LUAKEYS=80000

free_port() {
	p=$((20000 + $$ % 20000))
	while ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ":$p\$"; do p=$((p + 1)); done
	echo $p
}
cli() { port=$1; shift; redis-cli -p "$port" "$@"; }
wait_up() {
	for _ in $(seq 300); do cli "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
	echo "redis on port $1 did not start"; cat "$T"/*.log; exit 1
}
# start NAME PORT [managed]: a server on loopback, no persistence of its own
start() {
	mkdir -p "$T/$1"
	set -- "$1" "$2" "$3" redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$T/$1" --dbfilename dump.rdb --logfile "$T/$1.log" \
		--enable-debug-command local
	if [ "$3" = managed ]; then
		shift 3; managed $LIMIT "$@" &
	else
		shift 3; nice "$@" &
	fi
	pids="$pids $!"
}
load() {
	cli "$1" debug populate $KEYS key 1000 >/dev/null
	# values of pseudo-random hex words: about 2x compressible, unlike
	# DEBUG POPULATE's (mostly zeros)
	cli "$1" eval "local x = 12345
	for i = 1, tonumber(ARGV[1]) do
		local w = {}
		for k = 1, 125 do x = (x * 1103515245 + 12345) % 2147483648; w[k] = string.format('%08x', x) end
		redis.call('SET', 'lua:' .. i, table.concat(w))
		if i % 10 == 0 then redis.call('RPUSH', 'list:' .. (i % 1000), i, i * 3) end
		if i % 7 == 0 then redis.call('HSET', 'hash:' .. (i % 500), i, string.format('%x', i * 977)) end
	end return 1" 0 $LUAKEYS >/dev/null
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

P1=$(free_port); start plain "$P1"; wait_up "$P1"
P2=$(free_port); start managed "$P2" managed; wait_up "$P2"
MPID=$(cli "$P2" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')

t0=$(date +%s.%N); load "$P1"; t1=$(date +%s.%N); load "$P2"; t2=$(date +%s.%N)
d1=$(cli "$P1" debug digest) d2=$(cli "$P2" debug digest)
used=$(cli "$P1" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
rss1=$(cli "$P1" info memory | sed -n 's/^used_memory_rss:\([0-9]*\).*/\1/p')
rss2=$(cli "$P2" info memory | sed -n 's/^used_memory_rss:\([0-9]*\).*/\1/p')
echo "dataset: $(cli "$P1" dbsize) keys, used_memory $((used >> 20)) MiB; limit $LIMIT"
echo "load without uswap: $(secs "$t0" "$t1") s, RSS $((rss1 >> 20)) MiB; under uswap: $(secs "$t1" "$t2") s, RSS $((rss2 >> 20)) MiB"
echo "digest plain   $d1"
echo "digest managed $d2"
echo "$d1" | grep -Eq '^[0-9a-f]{40}$' || fail "no digest: $d1"
[ "$d1" = "$d2" ] || fail "digests differ after the load"

# The published statistics while the data is loaded (uswap stat).
if [ -x "$USWAP" ]; then
	"$USWAP" stat -a "$MPID" >"$T/stat" 2>&1 || fail "uswap stat $MPID"
	grep -E "resident|swapped pages|backend" "$T/stat" | sed 's/^/  /'
	sw=$(sed -n 's/^ *swapped pages *\([0-9]*\).*/\1/p' "$T/stat")
	[ "${sw:-0}" -gt 0 ] || fail "no page swapped while the data is loaded"
elif [ ! -e "$T/uswap.$MPID" ]; then
	fail "no statistics file $T/uswap.$MPID"
fi

# BGSAVE: the fork.  The child's digest is the RDB's.
t3=$(date +%s.%N)
cli "$P2" bgsave >/dev/null
for _ in $(seq 1200); do
	cli "$P2" info persistence | grep -q '^rdb_bgsave_in_progress:0' && break; sleep 0.1
done
t4=$(date +%s.%N)
cli "$P2" info persistence | grep -q '^rdb_last_bgsave_status:ok' || fail "BGSAVE failed"
echo "BGSAVE under uswap: $(secs "$t3" "$t4") s, RDB $(($(stat -c %s "$T/managed/dump.rdb" 2>/dev/null || echo 0) >> 20)) MiB"
P3=$(free_port)
mkdir -p "$T/fresh" && cp "$T/managed/dump.rdb" "$T/fresh/" 2>/dev/null
start fresh "$P3"; wait_up "$P3"
for _ in $(seq 600); do cli "$P3" info persistence | grep -q '^loading:0' && break; sleep 0.1; done
d3=$(cli "$P3" debug digest)
echo "digest of the RDB, loaded by a fresh plain server: $d3"
[ "$d1" = "$d3" ] || fail "the RDB written under uswap does not load to the same digest"

cli "$P2" shutdown nosave >/dev/null 2>&1
for _ in $(seq 100); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
cli "$P1" shutdown nosave >/dev/null 2>&1; cli "$P3" shutdown nosave >/dev/null 2>&1
check_stats "redis, $LIMIT"
mp=$(stat_managed_peak_mib)
awk -v m="${mp:-0}" -v u="$used" 'BEGIN { exit !(m * 1048576 >= u * 0.9) }' ||
	fail "only ${mp:-0} MiB managed for $((used >> 20)) MiB of data: jemalloc's memory is not managed"
ls "$T"/uswap.* >/dev/null 2>&1 && fail "statistics files left behind: $(ls "$T"/uswap.*)"
[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
