#!/bin/sh
# make install into a DESTDIR, then use what it installed as a consumer
# would: the header and uswap.pc (through pkg-config, the DESTDIR as its
# sysroot), a program linked against the shared library and one linked
# statically, each keeping 32 MiB under an 8 MiB limit; the soname and
# symlinks, only the API exported, the man pages, the installed uswap;
# then make uninstall leaves nothing behind.
cd "$(dirname "$0")/../.." || exit 1
command -v pkg-config >/dev/null || { echo "skip: pkg-config not installed (scripts/deps.sh)"; exit 77; }
T=$(mktemp -d /tmp/uswap-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
D=$T/root P=/usr/local
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

nice make -s install DESTDIR="$D" PREFIX=$P >"$T/make.log" 2>&1 || { cat "$T/make.log"; echo "make install failed"; exit 1; }
grep -v '^make' "$T/make.log"
L=$D$P/lib
for f in bin/uswap lib/libuswap.so.0.1.0 lib/libuswap.a include/uswap.h lib/pkgconfig/uswap.pc \
	 share/man/man1/uswap.1 share/man/man3/uswap.3 share/man/man7/uswap.7; do
	[ -f "$D$P/$f" ] || fail "$P/$f not installed"
done
[ "$(readlink "$L/libuswap.so.0")" = libuswap.so.0.1.0 ] && [ "$(readlink "$L/libuswap.so")" = libuswap.so.0 ] &&
	ok "symlinks libuswap.so -> libuswap.so.0 -> libuswap.so.0.1.0" || fail "symlinks: $(ls -l "$L")"
[ -f "$L/uswap/libuswap-preload.so" ] && ok "shim installed" || fail "shim not installed"

soname=$(readelf -d "$L/libuswap.so.0.1.0" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libuswap.so.0 ] && ok "soname $soname" || fail "soname '$soname'"
# Exported: the API of uswap.h and nothing else (no uswap__*, no internals).
nm -D --defined-only "$L/libuswap.so.0.1.0" | awk '{print $3}' | sort >"$T/exported"
grep -o 'uswap_[a-z_]*(' include/uswap.h | tr -d '(' | sort -u >"$T/api"
extra=$(comm -23 "$T/exported" "$T/api" | tr '\n' ' ')
[ -z "$extra" ] && ok "exported: $(wc -l <"$T/exported") symbols, all in uswap.h" || fail "exported beyond the API: $extra"

# pkg-config sees the DESTDIR as a sysroot: -I and -L point into it.
export PKG_CONFIG_PATH="$L/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_LIBDIR=/nonexistent
[ "$(pkg-config --modversion uswap)" = "$(sed -n 's/^#define USWAP_VERSION_STRING "\(.*\)"/\1/p' include/uswap.h)" ] &&
	ok "pkg-config uswap $(pkg-config --modversion uswap): $(pkg-config --cflags --libs uswap)" ||
	fail "pkg-config --modversion uswap: $(pkg-config --modversion uswap 2>&1)"

cat >"$T/consumer.c" <<'C'
#include <err.h>
#include <stdio.h>
#include <string.h>
#include <uswap.h>

int main(void)
{
	struct uswap_config cfg;
	struct uswap_stats st;
	char e[256];
	size_t len = 32u << 20;

	if (uswap_config_init(&cfg, e, sizeof(e)))
		errx(2, "%s", e);
	cfg.limit = 8u << 20;
	struct uswap *us = uswap_open(&cfg);
	if (!us)
		err(77, "uswap_open");
	unsigned char *p = uswap_map(us, len);
	if (!p)
		err(1, "uswap_map");
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 7 + i / 4096);
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(i * 7 + i / 4096))
			errx(1, "byte %zu wrong", i);
	uswap_stats(us, &st);
	if (st.resident_peak_bytes > cfg.limit || st.swapouts == 0 || st.swapins == 0)
		errx(1, "peak %llu over the limit, or nothing swapped", (unsigned long long)st.resident_peak_bytes);
	printf("%s: 32 MiB verified under 8 MiB: peak %.1f MiB, %llu swap-outs, %llu swap-ins\n",
	       uswap_version(), st.resident_peak_bytes / 1048576.0,
	       (unsigned long long)st.swapouts, (unsigned long long)st.swapins);
	uswap_unmap(us, p, len);
	return uswap_close(us) ? 1 : 0;
}
C
# run NAME BINARY: runs it; 77 (no userfaultfd) skips the run, not the test.
run() {
	out=$("$2" 2>&1); rc=$?
	case $rc in
	0) ok "$1: $out" ;;
	77) echo "note: $1 not run: $out" ;;
	*) fail "$1 exit $rc: $out" ;;
	esac
}
if cc -Wall -Werror -o "$T/dyn" "$T/consumer.c" $(pkg-config --cflags --libs uswap); then
	lib=$(LD_LIBRARY_PATH="$L" ldd "$T/dyn" | awk '/libuswap/ {print $3}')
	[ "$lib" = "$L/libuswap.so.0" ] && ok "dynamic consumer loads $lib" || fail "dynamic consumer loads '$lib'"
	LD_LIBRARY_PATH="$L" run "dynamic consumer" "$T/dyn"
else
	fail "dynamic consumer does not build"
fi
if cc -static -Wall -Werror -o "$T/static" "$T/consumer.c" $(pkg-config --static --cflags --libs uswap); then
	readelf -d "$T/static" 2>/dev/null | grep -q NEEDED && fail "static consumer has NEEDED entries"
	run "static consumer" "$T/static"
else
	fail "static consumer does not build"
fi
# The header is C++-clean.
printf '#include <uswap.h>\nint main() { return uswap_version() ? 0 : 1; }\n' >"$T/cxx.cc"
if command -v c++ >/dev/null; then
	c++ -Wall -Werror -o "$T/cxx" "$T/cxx.cc" $(pkg-config --cflags --libs uswap) &&
		LD_LIBRARY_PATH="$L" "$T/cxx" && ok "C++ consumer" || fail "C++ consumer"
fi

# The man pages render without warnings; the installed uswap runs.
for m in man1/uswap.1 man3/uswap.3 man7/uswap.7; do
	command -v groff >/dev/null || { echo "note: no groff, man pages not rendered"; break; }
	w=$(groff -man -Tutf8 -ww "$D$P/share/man/$m" 2>&1 >/dev/null)
	[ -z "$w" ] && ok "$m renders" || fail "$m: $w"
done
v=$("$D$P/bin/uswap" --version) && ok "installed: $v" || fail "installed uswap --version"
# The installed uswap finds the installed shim (../lib/uswap) and manages a program.
if command -v python3 >/dev/null && "$D$P/bin/uswap" run true 2>/dev/null; then
	py='b = bytes(range(256)) * (1 << 17); print(len(b) >> 20, "MiB", sum(b[::4097]))'
	want=$(python3 -c "$py")
	out=$(env -u USWAP_PRELOAD "$D$P/bin/uswap" run --limit 8M --stats -- python3 -c "$py" 2>&1)
	echo "$out" | grep -qx "$want" && echo "$out" | grep -q "uswap statistics" &&
		ok "installed uswap run: $(echo "$out" | head -n 1), with the statistics" ||
		fail "installed uswap run: $out"
fi

nice make -s uninstall DESTDIR="$D" PREFIX=$P >"$T/make.log" 2>&1 || { cat "$T/make.log"; fail "make uninstall"; }
left=$(find "$D" ! -type d | sed "s|^$D||")
[ -z "$left" ] && ok "uninstall leaves no file" || fail "left after uninstall: $left"

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
