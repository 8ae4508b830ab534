#!/bin/sh
# uswap run's refusals: a bad option value, an unknown backend or compressor,
# a missing program, no shim, a static program, and userfaultfd taken away
# by a seccomp filter (tests/sh/nouffd.c) or by being unprivileged.  Each
# must print a clear message, exit with the documented status (2, 126, 127)
# and never run the program (a marker file proves it); --fail-open runs it
# unmanaged with a warning.  Also: what run passes to the program.
cd "$(dirname "$0")/../.." || exit 1
USWAP=$PWD/build/release/uswap
[ -x "$USWAP" ] || { echo "skip: $USWAP not built (make build/release/uswap)"; exit 77; }
T=$(mktemp -d /tmp/uswap-cli-errors.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
fails=0

cc -O2 -o "$T/nouffd" tests/sh/nouffd.c || exit 1
# A stand-in shim: these tests are about the CLI, not about the shim.
echo 'int uswap_dummy_shim;' >"$T/shim.c"
cc -shared -fPIC -o "$T/shim.so" "$T/shim.c" || exit 1
cp "$T/shim.so" "$T/other.so"
export USWAP_PRELOAD="$T/shim.so"
unset LD_PRELOAD USWAP_LIMIT USWAP_BACKEND USWAP_COMPRESSOR USWAP_THREADS USWAP_MIN_REGION

# The program touches the marker, so a test can tell whether it ran.
MARK="$T/ran"

# expect RC PATTERN CMD...: CMD exits RC, its stderr matches PATTERN (grep -E),
# and the program did not run unless RC is 3 (its own status).
expect() {
	want=$1 pat=$2; shift 2
	rm -f "$MARK"
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	why=""
	[ "$rc" = "$want" ] || why="exit $rc, want $want"
	grep -Eq -- "$pat" "$T/err" || why="$why; stderr lacks /$pat/"
	if [ "$want" != 3 ] && [ -e "$MARK" ]; then why="$why; the program ran"; fi
	if [ "$want" = 3 ] && [ ! -e "$MARK" ]; then why="$why; the program did not run"; fi
	if [ -n "$why" ]; then
		echo "FAIL: $*: $why"; sed 's/^/  | /' "$T/err"; fails=$((fails + 1))
	else
		echo "ok: $* -> $rc: $(head -n 1 "$T/err")"
	fi
}

# --help, --version: stdout, 0; no command: usage on stderr, 2.
v=$(sed -n 's/^#define USWAP_VERSION_STRING "\(.*\)"/\1/p' include/uswap.h)
[ "$("$USWAP" --version)" = "uswap $v (library $v)" ] && echo "ok: --version" || { echo "FAIL: --version"; fails=$((fails + 1)); }
"$USWAP" --help | grep -q "^usage: uswap run \[OPTIONS\] \[--\] PROGRAM" && echo "ok: --help" ||
	{ echo "FAIL: --help"; fails=$((fails + 1)); }
"$USWAP" stat --help | grep -q "^usage: uswap stat" && echo "ok: stat --help" ||
	{ echo "FAIL: stat --help"; fails=$((fails + 1)); }
expect 2 "^usage: uswap run" "$USWAP"

# Usage and configuration errors: 2.
expect 2 "^uswap: --limit: invalid size '12Q' \(accepted: .*K, M, G" "$USWAP" run --limit 12Q sh -c "touch $MARK"
expect 2 "^uswap: --limit: 4096 bytes is below the minimum of 64K" "$USWAP" run --limit 4K sh -c "touch $MARK"
expect 2 "^uswap: --limit: invalid size '-1M'" "$USWAP" run --limit=-1M sh -c "touch $MARK"
expect 2 "^uswap: --backend: unknown value 'swapfile' \(accepted: zram\)" "$USWAP" run --backend swapfile sh -c "touch $MARK"
expect 2 "^uswap: --compressor: unknown value 'xz' \(accepted: lz4, zstd\)" "$USWAP" run -c xz sh -c "touch $MARK"
expect 2 "^uswap: --threads: invalid value '0' \(accepted: an integer in 1\.\.64\)" "$USWAP" run --threads 0 sh -c "touch $MARK"
expect 2 "^uswap: --min-region: invalid size 'big'" "$USWAP" run --min-region big sh -c "touch $MARK"
expect 2 "^uswap: USWAP_ZSTD_LEVEL: invalid value '99'" env USWAP_ZSTD_LEVEL=99 "$USWAP" run sh -c "touch $MARK"
expect 2 "^uswap: USWAP_LIMIT: invalid size 'lots'" env USWAP_LIMIT=lots "$USWAP" run sh -c "touch $MARK"
expect 2 "^uswap: run: unknown option '--limmit'" "$USWAP" run --limmit 1G sh -c "touch $MARK"
expect 2 "^uswap: run: option '--limit' needs a value" "$USWAP" run --limit
expect 2 "^uswap: run: no PROGRAM to run" "$USWAP" run --limit 1G
expect 2 "^uswap: unknown command 'runn'" "$USWAP" runn sh -c "touch $MARK"

# The program: 127 not found, 126 not executable.
expect 127 "^uswap: no-such-program-xyz: command not found" "$USWAP" run no-such-program-xyz
expect 127 "^uswap: $T/absent: No such file or directory" "$USWAP" run "$T/absent"
printf '#!/bin/sh\ntouch %s\n' "$MARK" >"$T/noexec"; chmod 644 "$T/noexec"
expect 126 "^uswap: $T/noexec: Permission denied" "$USWAP" run "$T/noexec"

# No shim: 126; --fail-open runs the program unmanaged.
expect 126 "^uswap: USWAP_PRELOAD=$T/none.so: No such file" env USWAP_PRELOAD="$T/none.so" "$USWAP" run sh -c "touch $MARK"
expect 3 "warning: running sh unmanaged \(--fail-open\)" env USWAP_PRELOAD="$T/none.so" "$USWAP" run --fail-open sh -c "touch $MARK; exit 3"

# A static program never loads the shim: 126.
printf 'int main(void) { return 0; }\n' >"$T/static.c"
if cc -static -o "$T/static" "$T/static.c" 2>/dev/null; then
	expect 126 "is statically linked" "$USWAP" run "$T/static"
else
	echo "note: no static libc, static-program case not run"
fi

# A program set-user-ID to another user runs without LD_PRELOAD: 126.
if [ "$(id -u)" = 0 ]; then
	cp /bin/true "$T/suid" && chown 65534 "$T/suid" && chmod 4755 "$T/suid" &&
		expect 126 "is set-user-ID: the dynamic linker ignores LD_PRELOAD" "$USWAP" run "$T/suid"
fi

# userfaultfd taken away by seccomp: 126, the cause and the fix, program not run.
expect 126 "^uswap: userfaultfd is not usable by this process" "$T/nouffd" "$USWAP" run sh -c "touch $MARK"
expect 126 "allow the system call userfaultfd \([0-9]+ on this architecture\) in the seccomp profile" \
	"$T/nouffd" "$USWAP" run sh -c "touch $MARK"
expect 3 "^uswap: warning: running sh unmanaged \(--fail-open\): its memory is not limited" \
	"$T/nouffd" "$USWAP" run --fail-open sh -c "touch $MARK; exit 3"
# Only user-mode faults: the EFAULT consequence, refused unless asked.
expect 126 "fail with EFAULT" "$T/nouffd" --user-mode "$USWAP" run sh -c "touch $MARK"
expect 126 "or accept the EFAULTs: uswap run --user-mode-only" "$T/nouffd" --user-mode "$USWAP" run sh -c "touch $MARK"

# A kernel that refuses the features uswap asks for (UFFDIO_API fails).
expect 126 "^uswap: userfaultfd lacks what uswap needs:" "$T/nouffd" --no-api "$USWAP" run sh -c "touch $MARK"
expect 126 "uswap needs Linux 6\.8 or later" "$T/nouffd" --no-api "$USWAP" run sh -c "touch $MARK"

# Unprivileged with vm.unprivileged_userfaultfd=0: the sysctl is the fix.
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ] &&
   command -v setpriv >/dev/null && [ "$(stat -c %a /dev/userfaultfd 2>/dev/null)" = 600 ]; then
	expect 126 "sysctl -w vm.unprivileged_userfaultfd=1" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$USWAP" run sh -c "touch $MARK"
	expect 126 "/dev/userfaultfd: Permission denied" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$USWAP" run sh -c "touch $MARK"
else
	echo "note: not root with vm.unprivileged_userfaultfd=0: unprivileged case not run"
fi

# What run hands the program: its pid (exec), the shim first in LD_PRELOAD,
# the options as USWAP_* variables, and its exit status.
if "$USWAP" run true 2>/dev/null; then
	out=$(LD_PRELOAD="$T/other.so" "$USWAP" run --limit 64M -b zram -c zstd -t 2 -m 2M --stats -- \
		sh -c 'echo "$$|$USWAP_STATS_PID|$USWAP_STATS_EXIT|$LD_PRELOAD|$USWAP_LIMIT|$USWAP_BACKEND|$USWAP_COMPRESSOR|$USWAP_THREADS|$USWAP_MIN_REGION"; exit 3')
	rc=$?
	pid=${out%%|*}
	want="$pid|$pid|1|$T/shim.so:$T/other.so|64M|zram|zstd|2|2M"
	if [ "$rc" = 3 ] && [ "$out" = "$want" ]; then
		echo "ok: run environment: $out, exit 3"
	else
		echo "FAIL: run environment: got '$out' exit $rc, want '$want' exit 3"; fails=$((fails + 1))
	fi
	out=$(LD_PRELOAD="$T/shim.so" "$USWAP" run sh -c 'echo "$LD_PRELOAD"')
	[ "$out" = "$T/shim.so" ] && echo "ok: shim not added twice" ||
		{ echo "FAIL: LD_PRELOAD '$out'"; fails=$((fails + 1)); }
else
	echo "note: userfaultfd not usable here: run-environment case not run"
fi

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
