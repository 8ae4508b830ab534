/*
 * test_threads.c - several application threads on one region under a tight
 * limit: 4 threads write, read and verify their own pages (disjoint) and
 * pages they all share (overlapping: each its own word, plus a counter
 * every thread increments), in 64 MiB under an 8 MiB limit with 2 handler
 * threads.  Every page is evicted and faulted back many times, by reads
 * and writes, with readahead and clean drops.  The resident peak never
 * exceeds the limit; the invariant sweep passes at the end.
 */
#include "race.h"

#define NPAGES 16384u			/* 64 MiB */
#define NSHARED 4096u			/* the last 16 MiB: shared by all */
#define NOWN (NPAGES - NSHARED)		/* the rest: page i belongs to i % 4 */
#define NTHREADS 4
#define LIMIT (8 * MiB)
#define W_COUNT 0			/* shared pages: word 0 counts */
#define W_MINE 8			/* shared pages: word 8 + k is thread k's */

static struct uswap *us;
static unsigned char *mem;
static unsigned passes;
static pthread_barrier_t pass_barrier;

static _Atomic uint64_t *sword(uint64_t j, unsigned w)
{
	return (_Atomic uint64_t *)(void *)(mem + (NOWN + j) * PG + w * 8);
}

/* A visiting order that is not sequential (readahead and the clock both
 * see something other than a stream): idx = (start + n * step) mod count. */
static uint64_t perm(uint64_t n, uint64_t count, uint64_t start)
{
	return (start + n * 7919) % count;
}

static void *thread_main(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;
	const uint64_t mine = NOWN / NTHREADS;

	for (unsigned p = 1; p <= passes; p++) {
		/* Own pages: write this pass's version, in a scattered order. */
		for (uint64_t n = 0; n < mine; n++) {
			uint64_t i = perm(n, mine, p * 131 + k) * NTHREADS + k;

			fill_page(mem + i * PG, i, p * 16 + k);
		}
		/* Shared pages: check my word from the last pass, write the
		 * new one, count. */
		for (uint64_t n = 0; n < NSHARED; n++) {
			uint64_t j = (n + k * (NSHARED / NTHREADS)) % NSHARED;
			uint64_t want = p == 1 ? 0 : ((uint64_t)(p - 1) << 32 | j);
			uint64_t got = atomic_load_explicit(sword(j, W_MINE + k), memory_order_relaxed);

			if (got != want)
				T_FAIL("thread %u pass %u: shared page %llu word %u = %llx, want %llx",
				       k, p, (unsigned long long)j, W_MINE + k,
				       (unsigned long long)got, (unsigned long long)want);
			atomic_store_explicit(sword(j, W_MINE + k), (uint64_t)p << 32 | j,
					      memory_order_relaxed);
			atomic_fetch_add_explicit(sword(j, W_COUNT), 1, memory_order_relaxed);
		}
		/* Own pages again: read back, sequentially this time. */
		for (uint64_t n = 0; n < mine; n++) {
			uint64_t i = n * NTHREADS + k;
			size_t bad = check_page(mem + i * PG, i, p * 16 + k);

			if (bad)
				T_FAIL("thread %u pass %u: page %llu word %zu wrong", k, p,
				       (unsigned long long)i, bad - 1);
		}
		pthread_barrier_wait(&pass_barrier);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];
	struct uswap_config c;

	passes = 4 / test_scale();
	if (passes < 1)
		passes = 1;
	test_config(&c, LIMIT, 2);
	us = test_open(&c);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_EQ(pthread_barrier_init(&pass_barrier, NULL, NTHREADS), 0);

	uint64_t t0 = mono_ns();
	for (uintptr_t k = 0; k < NTHREADS; k++)
		T_EQ(pthread_create(&th[k], NULL, thread_main, (void *)k), 0);
	for (int k = 0; k < NTHREADS; k++)
		T_EQ(pthread_join(th[k], NULL), 0);
	double secs = (double)(mono_ns() - t0) / 1e9;

	/* Everything, from the main thread. */
	for (uint64_t i = 0; i < NOWN; i++)
		T_EQ(check_page(mem + i * PG, i, passes * 16 + i % NTHREADS), 0);
	for (uint64_t j = 0; j < NSHARED; j++) {
		T_EQ(atomic_load(sword(j, W_COUNT)), NTHREADS * passes);
		for (unsigned k = 0; k < NTHREADS; k++)
			T_EQ(atomic_load(sword(j, W_MINE + k)), (uint64_t)passes << 32 | j);
	}

	struct uswap_stats s = ST(us);
	printf("threads: %d threads, %u passes in %.1f s; faults %llu swapins %llu swapouts %llu "
	       "clean_drops %llu faults_wp %llu faults_marker %llu faults_evicting %llu "
	       "readahead %llu | peak %.2f MiB (limit %.0f) over_limit %llu direct_reclaims %llu "
	       "evictor_runs %llu\n", NTHREADS, passes, secs,
	       (unsigned long long)s.faults, (unsigned long long)s.swapins,
	       (unsigned long long)s.swapouts, (unsigned long long)s.clean_drops,
	       (unsigned long long)s.faults_wp, (unsigned long long)s.faults_marker,
	       (unsigned long long)s.faults_evicting, (unsigned long long)s.readahead_pages,
	       s.resident_peak_bytes / (double)MiB, LIMIT / (double)MiB,
	       (unsigned long long)s.over_limit, (unsigned long long)s.direct_reclaims,
	       (unsigned long long)s.evictor_runs);
	T_ASSERT(s.resident_peak_bytes <= LIMIT);
	T_EQ(s.over_limit, 0);
	T_ASSERT(s.swapouts > 0 && s.swapins > 0);
	test_validate(us);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(uswap_close(us), 0);
	return 0;
}
