# uswap - top-level Makefile.
#   make            library (static + shared), CLI-less demo and benchmarks
#   make demo       build and run the demo (1 GiB under a 256 MiB limit)
#   make test       install deps, build the test, ASan+UBSan and TSan variants,
#                   run the suite under each; ends with "N passed, N failed"
#   make bench-core the core benchmark (1 GiB, 256 MiB limit)

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

.PHONY: all lib demo bench-core test test-build deps clean check-deps
all: lib build/release/demo build/release/bench_core

lib: build/release/libuswap.a build/release/libuswap.so.$(SOMAJOR)

define variant
build/$(1)/obj/%.o: src/%.c $$(wildcard src/*.h) include/uswap.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) $$(V_$(1)_CFLAGS) -c $$< -o $$@

build/$(1)/libuswap.a: $$(patsubst src/%.c,build/$(1)/obj/%.o,$$(SRCS))
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/tests/%: tests/%.c tests/test.h build/$(1)/libuswap.a
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

check-deps:
	@scripts/deps.sh

demo: check-deps
	$(MAKE) build/release/demo
	build/release/demo

bench-core: check-deps
	$(MAKE) build/release/bench_core
	build/release/bench_core

test-build:
	$(MAKE) build/test/tests/all build/asan/tests/all build/tsan/tests/all

test: check-deps
	$(MAKE) test-build
	scripts/run-tests.sh test asan tsan

clean:
	rm -rf build
