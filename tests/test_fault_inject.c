/*
 * test_fault_inject.c - the engine under injected faults (issue 5 item 4),
 * beyond the store failures of test_errors and the read errors of
 * test_race6*: nothing is lost, a failed load never maps wrong data, and
 * errors are clear.
 *
 *  - corrupted objects (bit rot in the pool): the checksum turns the load
 *    into -EIO; the faulting thread gets SIGBUS, never the corrupt bytes;
 *    every other page reads back intact;
 *  - a slow backend (2 ms loads, 1 ms stores) under four threads faulting
 *    under a tight limit, on pages of their own and on shared ones: every
 *    byte intact, nobody hangs;
 *  - allocation failures inside the engine, real ones (RLIMIT_AS, not a
 *    mock): uswap_map fails with ENOMEM and the engine goes on serving the
 *    regions it has; with no address space left at all, faults, evictions
 *    and swap-ins still work (the fault path never allocates); uswap_open
 *    fails cleanly with ENOMEM.
 *    (Not under the sanitizers, whose own allocators need the address
 *    space.)
 */
#include <sys/resource.h>

#include "race.h"
#include "fbackend.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static struct uswap *open_faulty(size_t limit, unsigned threads,
				 struct uswap_backend **fbp)
{
	struct uswap_config c;
	struct uswap_zconfig z = { .compressor = USWAP_COMP_LZ4, .lz4_accel = 1 };

	test_config(&c, limit, threads);
	struct uswap_backend *fb = uswap_faulty_backend_create(uswap_zbackend_create(&z),
							       USWAP_FAULTY_OWN_INNER);
	T_ASSERT(fb);
	struct uswap *us = uswap__open_backend(&c, fb, true);
	if (!us)
		T_SKIP("userfaultfd not usable: %s", strerror(errno));
	*fbp = fb;
	return us;
}

static void test_corrupt_load(void)
{
	struct uswap_backend *fb;
	struct uswap *us = open_faulty(64 * MiB, 1, &fb);
	const unsigned n = 64;
	unsigned char *m = uswap_map(us, n * PG);
	struct probe p;

	T_ASSERT(m);
	for (unsigned i = 0; i < n; i++)
		fill_page(m + (size_t)i * PG, i, 3);
	T_EQ(uswap_pageout(us, m, n * PG), n);
	struct uswap_stats s0 = ST(us);

	uswap_faulty_corrupt_loads(fb, 1);		/* the next load: bit rot */
	probe_start(&p, m + 5 * PG);
	T_EQ(probe_join(&p), 1);			/* SIGBUS, not the bytes */
	expect_pte(us, m + 5 * PG, USWAP_T_POISON);
	struct uswap_faulty_counts fc;
	uswap_faulty_counts(fb, &fc);
	T_EQ(fc.corruptions, 1);
	T_EQ(fc.corrupt_loads_eio, 1);
	T_EQ(D(ST(us), s0, load_failures), 1);
	for (unsigned i = 0; i < n; i++)
		if (i != 5)
			T_EQ(check_page(m + (size_t)i * PG, i, 3), 0);
	T_EQ(uswap_discard(us, m + 5 * PG, PG), 0);	/* clears the poison */
	T_ASSERT(page_is_zero(m + 5 * PG));
	test_validate(us);
	printf("corrupt load: SIGBUS, poison, load_failures 1, %u other pages intact\n", n - 1);
	T_EQ(uswap_unmap(us, m, n * PG), 0);
	T_EQ(uswap_close(us), 0);
}

struct slow_arg {
	unsigned char *m;
	unsigned npages, id, rounds;
	uint64_t seed;
	size_t bad;
};

static void *slow_worker(void *arg)
{
	struct slow_arg *a = arg;
	uint64_t x = a->seed;

	for (unsigned r = 0; r < a->rounds; r++) {
		for (unsigned k = 0; k < a->npages / 4; k++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			/* Pages i % 8 < 4 belong to thread i % 8, which writes
			 * them; pages i % 8 >= 4 are read by every thread (the
			 * same pages faulted by several at once). */
			unsigned i = (unsigned)(x >> 33) % a->npages;
			unsigned char *pg = a->m + (size_t)i * PG;

			if (i % 8 == a->id)
				fill_page(pg, i, 10 + r);
			else if (i % 8 >= 4 && check_page(pg, i, 1))
				a->bad++;
		}
	}
	return NULL;
}

static void test_slow_backend(void)
{
	struct uswap_backend *fb;
	const unsigned n = 2048, nt = 4;	/* 8 MiB under 2 MiB */
	struct uswap *us = open_faulty(2 * MiB, 2, &fb);
	unsigned char *m = uswap_map(us, (size_t)n * PG);
	pthread_t th[4];
	struct slow_arg a[4];

	T_ASSERT(m);
	for (unsigned i = 0; i < n; i++)
		fill_page(m + (size_t)i * PG, i, 1);
	uswap_faulty_delay(fb, 2000, 1000);
	uint64_t t0 = mono_ns();
	for (unsigned t = 0; t < nt; t++) {
		a[t] = (struct slow_arg){ m, n, t, 2, 0x1234 + t, 0 };
		T_EQ(pthread_create(&th[t], NULL, slow_worker, &a[t]), 0);
	}
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(th[t], NULL);
		T_EQ(a[t].bad, 0);
	}
	uswap_faulty_delay(fb, 0, 0);
	/* Every page: its index stamped, and a version some round wrote. */
	for (unsigned i = 0; i < n; i++) {
		const uint64_t *w = (const uint64_t *)(m + (size_t)i * PG);
		int ok = 0;

		for (uint64_t v = 1; v <= 11 && !ok; v = v == 1 ? 10 : v + 1)
			ok = check_page(w, i, v) == 0;
		if (!ok)
			T_FAIL("page %u: word0 %llu word1 %llu", i,
			       (unsigned long long)w[0], (unsigned long long)w[1]);
	}
	struct uswap_stats s = ST(us);
	T_ASSERT(s.resident_peak_bytes <= 2 * MiB);
	printf("slow backend: 4 threads, %llu swap-ins, %llu swap-outs in %.1f s, "
	       "peak %llu KiB, every page intact\n", (unsigned long long)s.swapins,
	       (unsigned long long)s.swapouts, (double)(mono_ns() - t0) / 1e9,
	       (unsigned long long)s.resident_peak_bytes >> 10);
	test_validate(us);
	T_EQ(uswap_unmap(us, m, (size_t)n * PG), 0);
	T_EQ(uswap_close(us), 0);
}

/* Incompressible page content: a xorshift stream seeded by the index. */
static void fill_random(unsigned char *pg, uint64_t i)
{
	uint64_t *w = (uint64_t *)pg, x = i * 0x9e3779b97f4a7c15ull + 1;

	for (unsigned k = 0; k < PG / 8; k++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		w[k] = k ? x : i;
	}
}

static int check_random(const unsigned char *pg, uint64_t i)
{
	uint64_t want[PG / 8];

	fill_random((unsigned char *)want, i);
	return memcmp(pg, want, PG) != 0;
}

/* Current address-space size, from /proc/self/statm (pages). */
static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;

	T_ASSERT(f);
	T_ASSERT(fscanf(f, "%lu", &pages) == 1);
	fclose(f);
	return (size_t)pages * PG;
}

static void set_as_limit(rlim_t v)
{
	struct rlimit rl = { .rlim_cur = v, .rlim_max = RLIM_INFINITY };

	T_EQ(setrlimit(RLIMIT_AS, &rl), 0);
}

static void test_alloc_failures(void)
{
	if (SANITIZED) {
		printf("alloc failures: not under the sanitizers (their allocators "
		       "need the address space); checked by the test build\n");
		return;
	}
	struct uswap_config c;
	test_config(&c, 4 * MiB, 1);
	struct uswap *us = test_open(&c);
	const unsigned n = 4096;		/* 16 MiB, 4x the limit */
	unsigned char *m = uswap_map(us, (size_t)n * PG);

	T_ASSERT(m);
	for (unsigned i = 0; i < n / 2; i++)
		fill_page(m + (size_t)i * PG, i, 1);

	/* (a) No address space for a new region's memory or entries. */
	set_as_limit(vm_size() + 8 * MiB);
	errno = 0;
	void *big = uswap_map(us, 512 * MiB);
	int map_errno = errno;
	T_ASSERT(big == NULL);
	T_EQ(map_errno, ENOMEM);

	/* (b) No address space at all: the fault and eviction paths never
	 * allocate (DESIGN.md §10; the pool grows inside an arena reserved at
	 * open), so the other half of the region, incompressible, is touched,
	 * evicted and swapped in with no headroom. */
	set_as_limit(vm_size());
	struct uswap_stats s0 = ST(us);
	for (unsigned i = n / 2; i < n; i++)
		fill_random(m + (size_t)i * PG, i);
	for (unsigned i = 0; i < n; i++)
		T_EQ(i < n / 2 ? (int)check_page(m + (size_t)i * PG, i, 1) :
		     check_random(m + (size_t)i * PG, i), 0);
	struct uswap_stats s1 = ST(us);
	set_as_limit(RLIM_INFINITY);
	printf("alloc failures: uswap_map ENOMEM; with no address space left: "
	       "swap-outs +%lld, swap-ins +%lld, peak %llu KiB, all %u pages intact\n",
	       D(s1, s0, swapouts), D(s1, s0, swapins),
	       (unsigned long long)s1.resident_peak_bytes >> 10, n);
	T_ASSERT(s1.swapouts - s0.swapouts >= n / 2);
	T_ASSERT(s1.swapins - s0.swapins >= n / 4);
	T_ASSERT(s1.resident_peak_bytes <= 4 * MiB);
	test_validate(us);

	/* The engine goes on: room again, everything evicts and reads back. */
	T_ASSERT(uswap_pageout(us, m, (size_t)n * PG) > 0);
	for (unsigned i = 0; i < n; i++)
		T_EQ(i < n / 2 ? (int)check_page(m + (size_t)i * PG, i, 1) :
		     check_random(m + (size_t)i * PG, i), 0);
	test_validate(us);
	T_EQ(uswap_unmap(us, m, (size_t)n * PG), 0);

	/* (c) uswap_open with no room: ENOMEM, nothing left behind. */
	set_as_limit(vm_size() + 256 * 1024);
	errno = 0;
	struct uswap *us2 = uswap_open(&c);
	int open_errno = errno;
	set_as_limit(RLIM_INFINITY);
	T_ASSERT(us2 == NULL);
	T_EQ(open_errno, ENOMEM);
	T_EQ(uswap_close(us), 0);
}

int main(void)
{
	probe_install();
	T_RUN(test_corrupt_load);
	T_RUN(test_slow_backend);
	T_RUN(test_alloc_failures);
	return 0;
}
