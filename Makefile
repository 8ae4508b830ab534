# uswap - top-level Makefile.
#   make            library (static + shared), CLI-less demo and benchmarks
#   make demo       build and run the demo (1 GiB under a 256 MiB limit)
#   make test       install deps, build the test, ASan+UBSan and TSan variants,
#                   run the suite under each (the race tests of the test
#                   variant also under swap-in designs A and C: test-pin,
#                   test-cache); ends with "N passed, N failed"
#   make bench-core the core benchmark (1 GiB, 256 MiB limit)
#   make bench      RAM vs kernel swap (zram) vs uswap, one table (BENCHMARKS.md)
#   make bench-contention  the swap-in designs A, B, C under contention
#                   (bench/bench_contention.c): table, results/contention-*.csv,
#                   and results/contention-cdf.png if gnuplot is there

CC      ?= cc
CFLAGS_BASE := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
	-Wshadow -Wstrict-prototypes -g -pthread -Iinclude -Isrc \
	-fvisibility=hidden -fPIC
LIBS    := -llz4 -lzstd -lpthread

SRCS    := $(sort $(wildcard src/*.c))
TESTS   := $(sort $(wildcard tests/test_*.c))
SOMAJOR := 0

# Variants: release (no hooks), test (hooks), asan, tsan.
V_release_CFLAGS := -O2
V_test_CFLAGS    := -O2 -DUSWAP_TESTING
V_asan_CFLAGS    := -O1 -DUSWAP_TESTING -fsanitize=address,undefined \
	-fno-omit-frame-pointer -fno-sanitize-recover=undefined
V_tsan_CFLAGS    := -O1 -DUSWAP_TESTING -fsanitize=thread

.PHONY: all lib demo bench-core bench bench-smoke bench-contention test test-build deps clean check-deps fuzz verify
all: lib build/release/demo build/release/bench_core build/release/bench-contention \
	build/release/uswap build/release/libuswap-preload.so build/release/uswap-bench

lib: build/release/libuswap.a build/release/libuswap.so.$(SOMAJOR)

define variant
build/$(1)/obj/%.o: src/%.c $$(wildcard src/*.h) include/uswap.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) $$(V_$(1)_CFLAGS) -c $$< -o $$@

build/$(1)/libuswap.a: $$(patsubst src/%.c,build/$(1)/obj/%.o,$$(SRCS))
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/tests/%: tests/%.c $$(wildcard tests/*.h) build/$(1)/libuswap.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) $$(V_$(1)_CFLAGS) $$< -o $$@ build/$(1)/libuswap.a $$(LIBS)

build/$(1)/tests/all: $$(patsubst tests/%.c,build/$(1)/tests/%,$$(TESTS))
	@touch $$@
endef
$(foreach v,release test asan tsan,$(eval $(call variant,$(v))))

build/release/libuswap.so.$(SOMAJOR): $(patsubst src/%.c,build/release/obj/%.o,$(SRCS)) src/libuswap.map
	$(CC) -shared -Wl,-soname,libuswap.so.$(SOMAJOR) \
		-Wl,--version-script=src/libuswap.map -o $@ \
		$(filter %.o,$^) $(LIBS)
	ln -sf libuswap.so.$(SOMAJOR) build/release/libuswap.so

build/release/demo: demo/demo.c demo/workload.h build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 -Idemo $< -o $@ build/release/libuswap.a $(LIBS) -lm

build/release/bench_core: bench/bench_core.c demo/workload.h build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 -Idemo $< -o $@ build/release/libuswap.a $(LIBS) -lm

# The standard workload of `make bench` (bench/uswap_bench.c, BENCHMARKS.md).
build/release/uswap-bench: bench/uswap_bench.c demo/workload.h src/statsfile.h include/uswap.h build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 -Idemo $< -o $@ build/release/libuswap.a $(LIBS) -lm

build/release/bench-contention: bench/bench_contention.c build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 $< -o $@ build/release/libuswap.a $(LIBS)

bench-contention: check-deps
	$(MAKE) build/release/bench-contention
	nice build/release/bench-contention --out results
	@if command -v gnuplot >/dev/null; then \
		gnuplot -e "dir='results'; threads='2 4 8'" bench/plot_contention.gp && \
		echo "results/contention-cdf.png"; fi

# The uswap command (tools/, uswap(1)), on the static library: it checks
# options with the library's own parser before it execs the program.
TOOL_SRCS := $(sort $(wildcard tools/*.c))
build/release/uswap: $(TOOL_SRCS) tools/cli.h src/statsfile.h include/uswap.h build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 $(TOOL_SRCS) -o $@ build/release/libuswap.a $(LIBS)

# ---- the LD_PRELOAD shim (shim/, DESIGN.md "The LD_PRELOAD shim").  The
# engine's objects are compiled again for it, with their allocator, mmap &
# co. and pthread_create renamed to glibc's internal names and raw system
# calls (shim/preload.c), so that nothing the engine does is interposed.
SHIM_SRCS := $(sort $(wildcard shim/*.c))
SHIM_REDEFINE := $(foreach s,malloc=__libc_malloc calloc=__libc_calloc \
	realloc=__libc_realloc free=__libc_free \
	posix_memalign=uswap__raw_posix_memalign mmap=uswap__raw_mmap \
	munmap=uswap__raw_munmap madvise=uswap__raw_madvise \
	mprotect=uswap__raw_mprotect mremap=uswap__raw_mremap \
	pthread_create=uswap__thread_create,--redefine-sym $(s))

build/shim/obj/%.o: src/%.c $(wildcard src/*.h) include/uswap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -c $< -o $@.tmp
	objcopy $(SHIM_REDEFINE) $@.tmp $@ && rm -f $@.tmp

build/release/libuswap-preload.so: $(SHIM_SRCS) shim/preload.map $(wildcard src/*.h) \
		$(patsubst src/%.c,build/shim/obj/%.o,$(SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -ftls-model=initial-exec -shared -Wl,-z,nodelete \
		-Wl,--version-script=shim/preload.map -o $@ $(SHIM_SRCS) \
		$(patsubst src/%.c,build/shim/obj/%.o,$(SRCS)) $(LIBS)

# Programs the script tests run under the shim (tests/sh/prog_*.c).
SH_PROGS := $(patsubst tests/sh/%.c,build/sh/%,$(wildcard tests/sh/prog_*.c))
build/sh/prog_%: tests/sh/prog_%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -pthread $< -o $@

# ---- install (uswap(1), FILES): PREFIX and DESTDIR as usual.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
VERSION    := $(shell sed -n 's/^\#define USWAP_VERSION_STRING "\(.*\)"/\1/p' include/uswap.h)
SHIM       := build/release/libuswap-preload.so
MANPAGES   := man/uswap.1 man/uswap.3 man/uswap.7
.PHONY: install uninstall

install: lib build/release/uswap $(SHIM)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/uswap $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 755 build/release/uswap $(DESTDIR)$(BINDIR)/uswap
	install -m 755 build/release/libuswap.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libuswap.so.$(VERSION)
	ln -sf libuswap.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libuswap.so.$(SOMAJOR)
	ln -sf libuswap.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libuswap.so
	install -m 644 build/release/libuswap.a $(DESTDIR)$(LIBDIR)/libuswap.a
	install -m 755 $(SHIM) $(DESTDIR)$(LIBDIR)/uswap/libuswap-preload.so
	install -m 644 include/uswap.h $(DESTDIR)$(INCLUDEDIR)/uswap.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' uswap.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/uswap.pc
	install -m 644 man/uswap.1 $(DESTDIR)$(MANDIR)/man1/uswap.1
	install -m 644 man/uswap.3 $(DESTDIR)$(MANDIR)/man3/uswap.3
	install -m 644 man/uswap.7 $(DESTDIR)$(MANDIR)/man7/uswap.7
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/uswap $(DESTDIR)$(LIBDIR)/libuswap.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/libuswap.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libuswap.so \
		$(DESTDIR)$(LIBDIR)/libuswap.a $(DESTDIR)$(LIBDIR)/uswap/libuswap-preload.so \
		$(DESTDIR)$(INCLUDEDIR)/uswap.h $(DESTDIR)$(LIBDIR)/pkgconfig/uswap.pc \
		$(DESTDIR)$(MANDIR)/man1/uswap.1 $(DESTDIR)$(MANDIR)/man3/uswap.3 \
		$(DESTDIR)$(MANDIR)/man7/uswap.7
	-rmdir $(DESTDIR)$(LIBDIR)/uswap 2>/dev/null

check-deps:
	@scripts/deps.sh

demo: check-deps
	$(MAKE) build/release/demo
	build/release/demo

bench-core: check-deps
	$(MAKE) build/release/bench_core
	build/release/bench_core

# make bench: the standard workload on RAM, the kernel's swap (zram + memory
# cgroup, needs root), uswap through the library and through `uswap run`,
# interleaved; one table of medians, CSV/JSON and plots in build/bench/latest
# (bench/run.sh --help; BENCHMARKS.md).  4-10 minutes with the defaults.
#   make bench BENCH_ARGS="--size 2G --limit 512M --repeat 5"
#   make bench-smoke    a tiny configuration, for CI (tests/sh/test_bench_smoke.sh)
BENCH_ARGS ?=
BENCH_BINS := build/release/uswap-bench build/release/uswap build/release/libuswap-preload.so
bench: check-deps
	$(MAKE) $(BENCH_BINS)
	bench/run.sh $(BENCH_ARGS)

bench-smoke: check-deps
	$(MAKE) $(BENCH_BINS)
	bench/run.sh --smoke $(BENCH_ARGS)

test-build:
	$(MAKE) -j2 build/test/tests/all build/asan/tests/all build/tsan/tests/all build/release/uswap \
		build/release/libuswap-preload.so $(SH_PROGS)

test: check-deps
	$(MAKE) test-build
	scripts/run-tests.sh test test-pin test-cache asan tsan sh

clean:
	rm -rf build

# ---- uswap-soak: randomized soak of every API call (bench/uswap_soak.c, SOAK.md).
# Links the static library: uswap__validate is in it (hidden in the .so).
.PHONY: soak-build
soak-build: build/release/uswap-soak

build/release/uswap-soak: bench/uswap_soak.c demo/workload.h src/testing.h build/release/libuswap.a
	$(CC) $(CFLAGS_BASE) -O2 -Idemo $< -o $@ build/release/libuswap.a $(LIBS) -lm

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets (fuzz/fuzz_<t>.c, see fuzz/README.md), built with clang
# against the library sources compiled with ASan+UBSan and coverage.
#   make fuzz          build, then run each target FUZZ_SECONDS (60) on a copy
#                      of its corpus (build/fuzz/corpus-<t>); fails on a crash,
#                      a hang or a failed check.  FUZZ_PARALLEL=2: two at once.
#   make fuzz-build    build only: build/fuzz/fuzz_<t>
#   make fuzz-merge    add to fuzz/corpus/<t> the working-corpus inputs that
#                      bring new coverage (libFuzzer -merge=1)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_PARALLEL ?= 1
FUZZ_TARGETS ?= pool zbackend decompress config engine
FUZZ_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -DUSWAP_TESTING -g -O1 -pthread \
	-Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc \
	-fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_LIBS    := -llz4 -lzstd -lpthread
FUZZ_OBJS    := $(patsubst src/%.c,build/fuzz/obj/%.o,$(sort $(wildcard src/*.c)))
FUZZ_BINS    := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))

build/fuzz/obj/%.o: src/%.c $(wildcard src/*.h) include/uswap.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libuswap-fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h build/fuzz/libuswap-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ \
		build/fuzz/libuswap-fuzz.a $(FUZZ_LIBS)

.PHONY: fuzz-build fuzz-merge
fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_PARALLEL=$(FUZZ_PARALLEL) fuzz/run.sh $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t build/fuzz/corpus-$$t; \
		build/fuzz/fuzz_$$t -merge=1 fuzz/corpus/$$t build/fuzz/corpus-$$t \
			>build/fuzz/merge-$$t.log 2>&1 || { tail -n 20 build/fuzz/merge-$$t.log; exit 1; }; \
		echo "fuzz/corpus/$$t: $$(ls fuzz/corpus/$$t | wc -l) files, $$(cat fuzz/corpus/$$t/* | wc -c) bytes"; \
	done

# Regenerate the hand-made seeds fuzz/corpus/<t>/seed-* (fuzz/gen_corpus.c).
.PHONY: fuzz-seeds
fuzz-seeds:
	@mkdir -p build/fuzz
	$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -Iinclude -Isrc -O1 fuzz/gen_corpus.c \
		src/compress.c -o build/fuzz/gen_corpus $(FUZZ_LIBS)
	build/fuzz/gen_corpus fuzz/corpus

# The Promela model of the swap-in protocol (model/README.md): spin checks
# design B as implemented, design A, and mutants that must be caught.
verify:
	model/run.sh
