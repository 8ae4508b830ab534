#!/bin/sh
# Run every test program of each variant given (test, asan, tsan) with a
# timeout; print a line per test and, last, "N passed, N failed" for CI.
# A skipped test (exit 77) counts as neither.  The pseudo-variant "sh" runs
# the script tests tests/sh/test_*.sh (whole programs under the release
# build: the shim, the CLI, real programs such as redis-server and python3).
# The pseudo-variants "test-pin" and "test-cache" run the race tests and the
# stress test of the test build again under swap-in designs A and C
# (USWAP_SWAPIN=pin, cache; the stress test with USWAP_STRESS_ROUNDS=50),
# and test-cache test_interleave too.
pass=0; fail=0; skip=0; failed=""
DEFAULT_TIMEOUT=${USWAP_TEST_TIMEOUT:-300}
for v in "$@"; do
	design=
	case $v in
	sh) list=$(ls tests/sh/test_*.sh 2>/dev/null); mkdir -p build/sh ;;
	test-pin|test-cache) design=${v#test-}
		list=$(ls build/test/tests/test_race* build/test/tests/test_stress_swapin_race 2>/dev/null | grep -v '\.log$')
		# A's loser refaults on a timer: test_interleave's step bound
		# catches that retry loop by design (DESIGN.md §13).
		[ "$design" = cache ] && list="$list build/test/tests/test_interleave" ;;
	*) list=$(ls build/$v/tests/test_* 2>/dev/null | grep -v '\.log$') ;;
	esac
	for t in $list; do
		[ -x "$t" ] || continue
		name="$v/$(basename "$t")"
		if [ "$v" = sh ]; then log="build/sh/$(basename "$t").log"
		elif [ -n "$design" ]; then log="build/test/tests/$(basename "$t").$design.log"
		else log="build/$v/tests/$(basename "$t").log"; fi
		start=$(date +%s.%N)
		# A script test may ask for a longer budget: "# timeout: SECS".
		TIMEOUT=$DEFAULT_TIMEOUT
		if [ "$v" = sh ]; then
			t_want=$(sed -n 's/^# timeout: *\([0-9][0-9]*\)$/\1/p' "$t" | head -n 1)
			[ -n "$t_want" ] && [ "$t_want" -gt "$TIMEOUT" ] && TIMEOUT=$t_want
		fi
		case $v in
		asan) env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1 ;;
		tsan) env TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 USWAP_TEST_SCALE=4 timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1 ;;
		test-pin|test-cache) env USWAP_SWAPIN="$design" USWAP_STRESS_ROUNDS=50 timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1 ;;
		*) timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1 ;;
		esac
		rc=$?
		secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
		case $rc in
		0) pass=$((pass + 1)); printf 'PASS %-40s %6ss\n' "$name" "$secs" ;;
		77) skip=$((skip + 1)); printf 'SKIP %-40s %s\n' "$name" "$(tail -n 1 "$log")" ;;
		124|137) fail=$((fail + 1)); failed="$failed $name"; printf 'TIMEOUT %-37s\n' "$name"; tail -n 20 "$log" ;;
		*) fail=$((fail + 1)); failed="$failed $name"; printf 'FAIL %-40s (exit %d)\n' "$name" "$rc"; tail -n 30 "$log" ;;
		esac
	done
done
[ -n "$failed" ] && echo "failed:$failed"
[ "$skip" -gt 0 ] && echo "$skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
