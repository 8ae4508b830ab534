#!/bin/sh
# Run libFuzzer targets for a bounded time, each on a copy of its seed
# corpus, and print libFuzzer's final statistics per target.
#   fuzz/run.sh pool zbackend ...      (make fuzz calls this)
# Environment: FUZZ_SECONDS (60) per target, FUZZ_PARALLEL (1) targets at
# once, FUZZ_FLAGS extra libFuzzer flags.  Binaries: build/fuzz/fuzz_<t>.
# Working corpus: build/fuzz/corpus-<t> (seeded from fuzz/corpus/<t>, kept
# between runs; the repository corpus changes only by make fuzz-merge).
# Crashes, hangs (-timeout) and OOMs go to build/fuzz/artifacts-<t>/.
# Exit status: 0 if no target failed, else 1.
SECONDS_PER=${FUZZ_SECONDS:-60}
PAR=${FUZZ_PARALLEL:-1}
OUT=build/fuzz

# libFuzzer flags per target: input length bounds what one input may do.
flags_for() {
	case $1 in
	pool) echo "-max_len=1024" ;;
	zbackend) echo "-max_len=4096" ;;
	decompress) echo "-max_len=8192" ;;
	config) echo "-max_len=512 -dict=fuzz/config.dict" ;;
	engine) echo "-max_len=192 -len_control=0" ;;
	*) echo "" ;;
	esac
}

run_one() {
	t=$1
	bin=$OUT/fuzz_$t
	corp=$OUT/corpus-$t
	art=$OUT/artifacts-$t
	log=$OUT/fuzz_$t.log
	mkdir -p "$corp" "$art"
	if [ -d "fuzz/corpus/$t" ]; then
		for s in fuzz/corpus/"$t"/*; do
			[ -f "$s" ] && cp -n "$s" "$corp/"
		done
	fi
	# abort_on_error: a failed check or sanitizer report is a crash that
	# libFuzzer saves; the engine's pager threads run under it too.
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$bin" -max_total_time="$SECONDS_PER" -timeout=60 -print_final_stats=1 \
		-artifact_prefix="$art/" $(flags_for "$t") $FUZZ_FLAGS "$corp" >"$log" 2>&1
	echo $? >"$OUT/fuzz_$t.rc"
}

summary() {
	t=$1
	log=$OUT/fuzz_$t.log
	rc=$(cat "$OUT/fuzz_$t.rc" 2>/dev/null || echo "?")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	pcs=$(sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$log" | head -n 1)
	if grep -q '^FUZZ SKIP' "$log"; then
		status="SKIP ($(grep '^FUZZ SKIP' "$log" | head -n 1))"
	elif [ "$rc" = 0 ]; then
		status=OK
	else
		status="FAIL (exit $rc)"
	fi
	printf 'fuzz_%-11s %-6s %ss: execs %s (%s/s)  cov %s of %s  ft %s  corpus %s  rss %s MB\n' \
		"$t" "$status" "$SECONDS_PER" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
		"${pcs:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}"
	if [ "$status" != OK ] && ! grep -q '^FUZZ SKIP' "$log"; then
		echo "---- tail of $log"
		tail -n 40 "$log"
		echo "---- artifacts: $(ls "$OUT/artifacts-$t" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
	echo "    $last"
	grep -E '^FUZZ (KNOWN BUG|NOTE)' "$log" | sed 's/^/    /'
	return 0
}

fail=0
set -- "$@"
while [ $# -gt 0 ]; do
	batch=""
	n=0
	while [ $# -gt 0 ] && [ $n -lt "$PAR" ]; do
		batch="$batch $1"
		shift
		n=$((n + 1))
	done
	for t in $batch; do
		echo "fuzz_$t: running for ${SECONDS_PER}s (log $OUT/fuzz_$t.log)"
		run_one "$t" &
	done
	wait
	for t in $batch; do
		summary "$t" || fail=1
	done
done
[ $fail -eq 0 ] && echo "fuzz: all targets passed" || echo "fuzz: FAILED"
exit $fail
