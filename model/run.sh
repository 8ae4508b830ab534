#!/usr/bin/env bash
# model/run.sh - run every verification of the uswap Promela model
# (model/uswap.pml; model/README.md explains each check).
#
#   model/run.sh            all checks, 2 at a time (JOBS=2)
#   model/run.sh B-core ... only the checks named
#   JOBS=1 MEMLIM=4096 KEEP=1 model/run.sh
#
# Correct models must verify with no error over their whole state space;
# mutants (and the known finding) must produce a counterexample.  Prints a
# summary (states, time, memory; for a counterexample: what failed, the
# property tag of the assertion, the trail length) and exits non-zero if any
# check did not go as expected.
set -u

here=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-2}
MEMLIM=${MEMLIM:-4096}		# MB per pan run
out=$(mktemp -d /tmp/uswap-model.XXXXXX)

if ! command -v spin >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "model: installing spin (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin >/dev/null; }
	fi
	command -v spin >/dev/null 2>&1 || { echo "model: spin not found (apt-get install spin)" >&2; exit 2; }
fi

# name | expect (pass, fail) | spin -D flags | pan mode (safety, bfs, np)
CHECKS=(
# design B as implemented: must verify
"B-core|pass||safety"
"B-unmap|pass|-DUNMAP_RACE -DNOPS1=2|safety"
"B-readerr|pass|-DREADERR -DNOPS1=1|safety"
"B-anystart-3slots-storefail|pass|-DINIT=4 -DNSLOT=3 -DSTOREFAIL -DNOPS1=1 -DMAXEV=1|safety"
"B-progress|pass|-DNOPS1=1 -DMAXEV=1|np"
"B-readahead-readerr|pass|-DREADAHEAD -DREADERR -DNOPS1=1 -DMAXEV=1|safety"
# the finding in src/ at 23c8ebf (fixed in 9a56bd9): must still be found
"FINDING-readahead-readerr|fail|-DREADAHEAD -DREADERR -DOLD_RA_NOWAKE -DNOPS1=1 -DMAXEV=1|bfs"
# design A (the kernel 6.8 fix): safe, but its loser retries (I10)
"A-core|pass|-DDESIGN_A -DNOPS1=1|safety"
"A-progress|fail|-DDESIGN_A -DNOPS1=1 -DMAXEV=1|np"
# the required mutants: design B without the marker check, design A without the pin
"MUT-B-nocheck|fail|-DMUT_B_NOCHECK|bfs"
"MUT-B-nocheck-obs|fail|-DMUT_B_NOCHECK -DOBSERVABLE_ONLY|bfs"
"MUT-B-anymarker|fail|-DMUT_B_ANYMARKER|bfs"
"MUT-B-anymarker-obs|fail|-DMUT_B_ANYMARKER -DOBSERVABLE_ONLY|bfs"
"MUT-A-nopin|fail|-DDESIGN_A -DMUT_A_NOPIN -DNOPS1=1 -DMAXEV=1|bfs"
"MUT-A-nopin-obs|fail|-DDESIGN_A -DMUT_A_NOPIN -DNOPS1=1 -DMAXEV=1 -DOBSERVABLE_ONLY -DNO_SCRUB|bfs"
# more mutants: each property is live, not vacuous
"MUT-discard-frees-marker|fail|-DMUT_DISCARD_FREES_MARKER|bfs"
"MUT-no-backout-wake|fail|-DMUT_NO_BACKOUT_WAKE|bfs"
"MUT-wp-keeps-copy|fail|-DMUT_WP_KEEPS_COPY|bfs"
"MUT-wp-keeps-copy-obs|fail|-DMUT_WP_KEEPS_COPY -DOBSERVABLE_ONLY -DNO_SCRUB|bfs"
"MUT-evict-nofree|fail|-DMUT_EVICT_NOFREE|bfs"
"MUT-evict-nofree-obs|fail|-DMUT_EVICT_NOFREE -DOBSERVABLE_ONLY|bfs"
)

one() {	# name expect flags mode
	local name=$1 expect=$2 flags=$3 mode=$4
	local d=$out/$name e opt cc run t0 t1 states trans errors depth what line tag blocked verdict mem
	mkdir -p "$d" && cp "$here/uswap.pml" "$d/" && cd "$d" || return
	# big state spaces: -O2; counterexample searches are small: -O0 compiles
	# pan.c much faster
	case $mode in
	safety) opt=-O2; cc="-DSAFETY"; run="./pan -m200000 -w24" ;;
	bfs) opt=-O0; cc="-DSAFETY -DBFS"; run="./pan -w22" ;;	# breadth-first: shortest trail
	np) opt=-O2; cc="-DNP"; run="./pan -l -m200000 -w24" ;;
	esac
	# shellcheck disable=SC2086
	if ! spin -a $flags uswap.pml >spin.log 2>&1 ||
	   ! gcc $opt $cc -DMEMLIM="$MEMLIM" -o pan pan.c >gcc.log 2>&1; then
		printf '%s\tBROKEN\t%s\t?\t?\t?\t0\tbuild failed: see %s\t\n' "$name" "$expect" "$d" >result
		return
	fi
	t0=$(date +%s.%N)
	$run >pan.log 2>&1
	t1=$(date +%s.%N)
	states=$(awk '/states, stored/ {print $1; exit}' pan.log)
	trans=$(awk '/transitions \(= stored\+matched\)/ {print $1; exit}' pan.log)
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -1)
	mem=$(awk '/total actual memory usage/ {print $1; exit}' pan.log)
	what="" tag="" depth="" blocked=""
	if [ "${errors:-0}" -gt 0 ]; then
		what=$(sed -n 's/^pan:1: \(.*\) (at depth [0-9]*)$/\1/p' pan.log | head -1)
		depth=$(sed -n 's/^pan:1: .* (at depth \([0-9]*\))$/\1/p' pan.log | head -1)
		# shellcheck disable=SC2086
		spin -t $flags -p -g uswap.pml >trail.log 2>&1
		line=$(sed -n 's/^spin: uswap.pml:\([0-9]*\), Error: assertion violated.*/\1/p' trail.log | head -1)
		[ -n "$line" ] && tag=$(sed -n "${line}p" uswap.pml | grep -o '\[P:[^]]*\]' | head -1)
		if [ -n "$line" ] && [ -z "$tag" ]; then
			# spin's line can be off inside #ifdef'd inlines: find the
			# assertion by its text (spaces and parentheses ignored)
			e=$(sed -n 's/^pan:1: assertion violated \(.*\) (at depth.*/\1/p' pan.log | tr -d ' ()')
			line=$(tr -d ' ()' <uswap.pml | grep -n -F "assert$e;" | head -1 | cut -d: -f1)
			[ -z "$line" ] && line=$(tr -d ' ()' <uswap.pml | grep -n -F "assert$e" | head -1 | cut -d: -f1)
			[ -n "$line" ] && tag=$(sed -n "${line}p" uswap.pml | grep -o '\[P:[^]]*\]' | head -1)
		fi
		[ -n "$line" ] && tag="line $line $tag"
		case $what in
		*"invalid end state"*)
			blocked=$(awk '/^#processes:/ {f=1; next} f && /^ *[0-9]+:[ \t]+proc / && !/valid end state/ {n=$4; sub(/^\(:?/,"",n); sub(/:.*/,"",n); printf "%s%s", s, n; s=","}' trail.log)
			tag="blocked: ${blocked:-?}" ;;
		*"non-progress cycle"*) tag="a cycle with no progress" ;;
		esac
	fi
	if [ "$expect" = pass ]; then
		if [ "${errors:-1}" = 0 ] && ! grep -q "Search not completed" pan.log; then
			verdict=ok
		else
			verdict=FAILED
		fi
	else
		if [ "${errors:-0}" -gt 0 ]; then verdict=caught; else verdict=NOT-CAUGHT; fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\n' "$name" "$verdict" "$expect" \
		"${states:-?}" "${trans:-?}" "${mem:-?}" "$(echo "$t1 - $t0" | bc)" \
		"${what}${depth:+, trail $depth steps}" "$tag" >result
}

want=("$@")
selected=()
for c in "${CHECKS[@]}"; do
	n=${c%%|*}
	if [ ${#want[@]} -gt 0 ]; then
		m=0
		for w in "${want[@]}"; do [ "$w" = "$n" ] && m=1; done
		[ $m = 1 ] || continue
	fi
	selected+=("$c")
done
[ ${#selected[@]} -gt 0 ] || { echo "model: no such check: $*" >&2; exit 2; }

echo "model: ${#selected[@]} checks, $JOBS at a time, work in $out"
tstart=$(date +%s)
for c in "${selected[@]}"; do
	IFS='|' read -r n e f m <<<"$c"
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	( one "$n" "$e" "$f" "$m" ) &
done
wait

bad=0
printf '\n%-26s %-10s %11s %11s %8s %8s  %s\n' check verdict states transitions "mem MB" "time s" "counterexample"
for c in "${selected[@]}"; do
	n=${c%%|*}
	if [ -f "$out/$n/result" ]; then
		IFS=$'\t' read -r _ v _ s t mm tm w g <"$out/$n/result"
	else
		v=BROKEN s=? t=? mm=? tm=? w="no result" g=""
	fi
	printf '%-26s %-10s %11s %11s %8s %8s  %s\n' "$n" "$v" "$s" "$t" "$mm" "$tm" "$w${g:+ -- $g}"
	case $v in ok|caught) ;; *) bad=$((bad + 1)) ;; esac
done
echo
echo "model: $(( ${#selected[@]} - bad )) as expected, $bad not; $(( $(date +%s) - tstart )) s in all"
[ "${KEEP:-0}" = 1 ] && echo "model: kept $out" || rm -rf "$out"
[ $bad = 0 ]
